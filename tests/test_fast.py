"""The CTranslate2 engine (textgan/fast.py): export, equal outputs, refusals, convert and the CLI."""

import pytest

import textgan
from textgan.cli import main
from textgan.fast import ExportError, export

SENTENCES = ["the food was cold and the staff rude .", "i love this place !", "great pizza , friendly people .",
             "the service was slow", "", "worst meal ever , never again ."]


def test_export_then_greedy_and_beam_equal_the_torch_engine(trained_run):
    """float32 weights: the same outputs as torch, greedy and beam; int8: stated agreement (toy model)."""
    out = export(trained_run, "float32")
    assert (out / "generator" / "model.bin").is_file() and out.name == "ct2-float32"
    torch_model = textgan.load(trained_run, device="cpu")
    fast = textgan.load(trained_run, device="cpu", engine="ctranslate2", quantization="float32")
    for beam in (1, 3):
        assert fast.transfer(SENTENCES, tokenized=True, beam=beam) == torch_model.transfer(SENTENCES, tokenized=True, beam=beam)
    int8 = textgan.load(trained_run, device="cpu", engine="ctranslate2", quantization="int8")
    outputs = int8.transfer(SENTENCES, to="pos", tokenized=True)
    assert len(outputs) == len(SENTENCES) and outputs[4] == ""
    same = sum(a == b for a, b in zip(outputs, torch_model.transfer(SENTENCES, to="pos", tokenized=True)))
    assert same >= len(SENTENCES) // 2              # int8 rounding may change a few greedy choices


def test_export_is_cached_and_forced(trained_run):
    first = export(trained_run, "int8")
    stamp = (first / "generator" / "model.bin").stat().st_mtime_ns
    assert export(trained_run, "int8") == first
    assert (first / "generator" / "model.bin").stat().st_mtime_ns == stamp
    export(trained_run, "int8", force=True)
    assert (first / "generator" / "model.bin").stat().st_mtime_ns != stamp


@pytest.fixture
def sum_run(tmp_path):
    """A summarization run directory as far as the refusal reads it: its config (words_left, extract_to)."""
    from textgan.config import load_config, save_config

    run = tmp_path / "sum"
    run.mkdir()
    save_config(load_config("summarization", "cpu"), run / "config.yaml")
    return run


def test_models_ctranslate2_cannot_run_exactly_are_refused(sum_run, trained_run, capsys):
    from textgan.config import load_config
    from textgan.fast import check_exportable

    with pytest.raises(ExportError, match="extraction constraint"):
        check_exportable(load_config("summarization", "cpu", ["generator.words_left=false"]))
    with pytest.raises(ExportError, match="target vocabulary"):
        check_exportable(load_config("translation", "cpu", ["generator.target_vocab=true"]))
    with pytest.raises(ExportError, match="words left"):
        export(sum_run, "int8")
    assert main(["transfer", "--model", str(sum_run), "--engine", "ctranslate2", "a sentence ."]) == 1
    assert "words left" in capsys.readouterr().err and not (sum_run / "ct2-int8").exists()
    assert main(["export", str(trained_run), "--quantization", "int4"]) == 1
    assert "unknown quantization 'int4'" in capsys.readouterr().err


def test_cli_export_transfer_and_convert_with_the_ctranslate2_engine(trained_run, tmp_path, capsys):
    assert main(["export", str(trained_run), "--quantization", "int16"]) == 0
    assert "ct2-int16" in capsys.readouterr().out
    assert main(["transfer", "--model", str(trained_run), "--engine", "ctranslate2", "--to", "pos",
                 "the food was bad ."]) == 0
    expected = textgan.load(trained_run, device="cpu", engine="ctranslate2").transfer(["the food was bad ."], to="pos")
    assert capsys.readouterr().out == expected[0] + "\n"
    src = tmp_path / "in.txt"
    src.write_text("".join(s + "\n" for s in SENTENCES))
    for engine in ("torch", "ctranslate2"):
        assert main(["convert", str(src), "-o", str(tmp_path / f"{engine}.txt"), "--model", str(trained_run),
                     "--to", "pos", "--engine", engine, "--quantization", "float32", "--quiet"]) == 0
    assert (tmp_path / "ctranslate2.txt").read_text() == (tmp_path / "torch.txt").read_text()
