"""The decode plan (textgan/decoding/plan.py): a run's decode section and a request resolved once, into the
record transfer, convert and serve hand over; and decode.KEY=VALUE overrides of a loaded run."""

import pytest

from textgan.config import ConfigError, load_config
from textgan.decoding.plan import Request, Scoring, make_plan
from textgan.decoding.search import Search

TINY = ["generator.d_model=32", "generator.encoder_layers=1", "generator.decoder_layers=1", "generator.heads=2",
        "generator.ffn_dim=64"]


def cfg(*overrides):
    return load_config("toy", "cpu", [*TINY, *overrides])


def test_the_default_plan_is_the_runs_decode_section():
    c = cfg("decode.candidates=4", "decode.temperature=0.7", "decode.seed=3", "decode.nbest=2", "decode.passes=2",
            "decode.style_weight=2.0", "decode.length_penalty=0.5")
    plan = make_plan(c)
    assert (plan.candidates, plan.nbest, plan.passes, plan.temperature, plan.seed) == (4, 2, 2, 0.7, 3)
    assert plan.search == Search(max_len=c.train.max_gen_len) and plan.reranks
    assert plan.scoring == Scoring(style=2.0, content=1.0, length_penalty=0.5)
    assert plan.decodes == 2 * (4 + 2)                        # passes x (greedy + 3 samples + 2 hypotheses)


def test_a_plan_says_in_one_line_what_it_decodes():
    ladder = make_plan(cfg("generator.arch=causal", "generator.init=x", "decode.guidance=0.15",
                           "decode.guidance_candidates=[1.0, 2.0]", "decode.fluency_weight=0.01",
                           "decode.style_weight=4"))
    assert ladder.describe() == ("the best of the greedy rewrite, guidance 0.15; greedy rewrites at guidance 1, 2, "
                                 "scored by style 4, content 1, fluency 0.01; 6 decoder runs per line")
    assert make_plan(cfg(), Request(beam=4)).describe() == "beam search of width 4; 4 decoder run(s) per line"
    nbest = make_plan(cfg("decode.candidates=8", "decode.nbest=5", "decode.style_weight=0"))
    assert nbest.describe().startswith("the best of the greedy rewrite; 7 samples at temperature 0.8; the 5 best of a "
                                       "beam search, scored by content 1")


@pytest.mark.parametrize("request_", [Request(beam=3), Request(sample=True), Request(candidates=1)])
def test_asking_for_one_rewrite_turns_the_competition_off(request_):
    plan = make_plan(cfg("decode.candidates=4", "decode.nbest=2"), request_)
    assert not plan.reranks and (plan.candidates, plan.nbest, plan.ladder) == (1, 0, ())
    assert plan.decodes == request_.beam
    assert plan.search.beam == request_.beam and plan.search.sample == request_.sample


@pytest.mark.parametrize("request_, engine, message", [
    (Request(beam=0), "torch", "beam must be at least 1"),
    (Request(guidance=0.5), "torch", "steers a causal generator"),       # an encoder-decoder run
    (Request(candidates=0), "torch", "candidates must be at least 1"),
    (Request(candidates=3, beam=2), "torch", "does not combine with beam search"),
    (Request(candidates=3), "ctranslate2", "needs the torch engine"),
    (Request(temperature=0), "torch", "temperature must be a number"),
])
def test_requests_a_run_cannot_decode_are_refused_naming_the_run(request_, engine, message):
    with pytest.raises(ValueError, match=message):
        make_plan(cfg(), request_, engine, "runs/toy/x")


def test_a_transfer_takes_a_plan_or_options_not_both(trained_run):
    from textgan.transfer import StyleTransfer

    model = StyleTransfer(trained_run, device="cpu")
    lines = ["the food was cold .", "great staff !"]
    plan = model.plan(beam=2)
    assert model.transfer(lines, to="pos", plan=plan) == model.transfer(lines, to="pos", beam=2)
    with pytest.raises(ValueError, match="either a plan or decode options"):
        model.transfer(lines, to="pos", plan=plan, beam=2)


def test_decode_overrides_change_a_loaded_run_and_nothing_else(trained_run, capsys):
    from textgan.cli import main
    from textgan.transfer import StyleTransfer

    model = StyleTransfer(trained_run, device="cpu", decode=["decode.candidates=3", "decode.seed=5"])
    assert model.plan().candidates == 3 and model.plan().seed == 5
    with pytest.raises(ConfigError, match="did you mean 'candidates'"):
        StyleTransfer(trained_run, device="cpu", decode=["decode.candidate=3"])
    with pytest.raises(ConfigError, match="only the run's decode section"):
        StyleTransfer(trained_run, device="cpu", decode=["train.lr_g=1"])
    with pytest.raises(ConfigError, match="candidates >= 1"):
        StyleTransfer(trained_run, device="cpu", decode=["decode.candidates=0"])
    text = "the food was cold ."
    want = model.transfer([text], to="pos")
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", text, "decode.candidates=3",
                 "decode.seed=5"]) == 0
    assert capsys.readouterr().out.splitlines() == want
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", text, "decode.candidats=3"]) == 2
    assert "did you mean 'candidates'" in capsys.readouterr().err


def test_convert_takes_decode_overrides_and_records_them(trained_run, tmp_path, capsys):
    """`textgan convert IN -o OUT decode.KEY=VALUE`: the file is rewritten as `transfer` rewrites it with the
    same overrides; a resumed conversion must use the same decode section (it is in the settings' record)."""
    from dataclasses import asdict

    from textgan.cli import main
    from textgan.convert import Job, ModelEngine, Settings
    from textgan.transfer import StyleTransfer

    lines = ["the food was cold .", "great staff !", "worst pizza ever ."]
    src = tmp_path / "in.txt"
    src.write_text("".join(line + "\n" for line in lines))
    assert main(["convert", str(src), "-o", str(tmp_path / "out.txt"), "--model", str(trained_run), "--to", "pos",
                 "decode.candidates=3", "decode.seed=2"]) == 0
    assert "decoding by the best of the greedy rewrite; 2 samples at temperature" in capsys.readouterr().err
    model = StyleTransfer(trained_run, device="cpu", decode=["decode.candidates=3", "decode.seed=2"])
    assert (tmp_path / "out.txt").read_text().splitlines() == model.transfer(lines, to="pos")
    plain = StyleTransfer(trained_run, device="cpu")
    records = [Settings(str(src), 1, 0, str(trained_run), Job(to="pos"), plan=asdict(ModelEngine(m, Job(to="pos")).plan))
               for m in (model, plain)]
    assert records[0].fingerprint() != records[1].fingerprint()
