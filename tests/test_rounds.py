"""Self-training rounds (`textgan refine`) and distillation (`textgan distill`): pairs a trained run writes
(training/teacher.py), filtered, learnt from by a copy of the run or by a student run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY

from textgan.config import ConfigError, load_config
from textgan.mining import Pairs
from textgan.training.teacher import TeacherMiner, repeats, verdict

TEACHER = [*TINY, "train.ae_steps=40", "train.bootstrap=template", "train.bootstrap_steps=60",
           "train.bootstrap_self=0.5", "train.d_steps=0", "train.adv_steps=0", "train.lr_g=3e-3"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A toy run bootstrapped on the template miner's pairs: it writes rewrites (a few seconds)."""
    from textgan.runner import train

    return train(load_config("toy", "cpu", TEACHER), runs_dir=tmp_path_factory.mktemp("runs"), name="teacher",
                 command=["pytest"])


def test_a_rewrite_that_is_empty_a_copy_or_repeats_itself_is_no_pair():
    assert repeats("great great food .") == {("great",)}
    assert repeats("the food . the food . the food") >= {("the", "food", ".")}
    assert verdict("the food was bad .", "") == "empty"
    assert verdict("the food was bad .", "the  food was bad .") == "copy"
    assert verdict("the food was bad .", "the food was great great .") == "repeats"
    assert verdict("so so bad .", "so so good .") is None          # the input repeats it too
    assert verdict("the food was bad .", "the food was great .") is None


class CountingModel:
    """Stands in for a StyleTransfer: writes "<text> !" and counts the lines it decoded."""

    def __init__(self):
        self.decoded = 0

    def transfer(self, texts, to, plan=None, tokenized=False, normalized=False, batch_size=64):
        self.decoded += len(texts)
        return [f"{t} {to} !" for t in texts]


def test_rewrites_go_on_from_what_a_killed_run_had_written(tmp_path):
    """The partial file's whole lines are kept, a line the kill cut is decoded again, nothing twice."""
    from textgan.config import TeacherConfig

    sources = [f"line {i} ." for i in range(10)]
    written = [json.dumps(f"line {i} . pos !") for i in range(3)]
    (tmp_path / "teacher.neg2pos.jsonl").write_text("\n".join(written) + '\n"line 3 . po')
    miner = TeacherMiner(TeacherConfig(run="unused", batch_size=4), tmp_path)
    model = CountingModel()
    out = miner.rewrites(model, None, sources, "pos", "neg2pos", None)
    assert out == [f"line {i} . pos !" for i in range(10)] and model.decoded == 7
    lines = (tmp_path / "teacher.neg2pos.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == out
    again = CountingModel()
    assert miner.rewrites(again, None, sources, "pos", "neg2pos", None) == out and again.decoded == 0


def test_a_refine_round_learns_from_the_runs_own_accepted_rewrites(teacher_run, tmp_path):
    from textgan.checkpoint import load_run_config
    from textgan.transfer import StyleTransfer
    from textgan.training.rounds import refine

    before = json.loads((teacher_run / "best.json").read_text())["score"]
    out = refine(teacher_run, rounds=1, lines=40, steps=6, eval_every=3, runs_dir=tmp_path, name="refined",
                 overrides=["teacher.batch_size=16"])
    record = json.loads((out / "refine.json").read_text())
    (entry,) = record["rounds"]
    assert entry["done"] and entry["from_step"] == 100 and entry["to_step"] == 106
    assert entry["dev_score_before"] == before and record["teacher"] == str(teacher_run)
    steps = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 106                                   # trained on from the teacher's last step
    assert (out / "rounds" / "0" / "mining.json").exists()     # the template pairs it learnt from before
    mining = json.loads((out / "pairs" / "mining.json").read_text())
    assert mining["miner"] == "teacher" and mining["settings"]["offset"] == 0
    for name in ("neg2pos", "pos2neg"):
        src, tgt = name.split("2")
        rewrites = [json.loads(x) for x in (out / "pairs" / f"teacher.{name}.jsonl").read_text().splitlines()]
        assert len(rewrites) == 40
        pairs = Pairs.load(out / "pairs" / f"{name}.tsv")
        assert (pairs.src, pairs.tgt) == (src, tgt)
        usable = [y for y in rewrites if y.strip()]
        assert set(pairs.targets) <= set(usable) and all(verdict(x, y) is None
                                                         for x, y in zip(pairs.sources, pairs.targets))
        assert all(0 < s <= 1 for s in pairs.scores)            # r_content, a probability per piece
        assert mining["report"][name]["rewritten"] == 40
    cfg = load_run_config(out)
    assert cfg.train.bootstrap == "teacher" and cfg.teacher.run == str(out)
    assert cfg.decode.candidates == 1 and cfg.decode.guidance == 0 and "decode_of_rounds" in record
    assert json.loads((out / "run.json").read_text())["refined_from"] == str(teacher_run)
    assert StyleTransfer(out, "cpu").transfer(["the food was bad ."], to="pos")[0].strip()
    # the same command again: nothing more to do, the record unchanged
    assert refine(teacher_run, rounds=1, lines=40, steps=6, eval_every=3, runs_dir=tmp_path, name="refined") == out
    assert json.loads((out / "refine.json").read_text())["rounds"] == record["rounds"]


def test_only_rewrites_the_style_classifier_accepts_become_pairs(teacher_run, tmp_path, monkeypatch):
    """A classifier that rejects every rewrite leaves no pair, and the run says so; one that accepts the
    even-length ones keeps exactly those."""
    import torch

    from textgan.rewards import StyleClassifier
    from textgan.training.rounds import refine

    def rejects_all(self, seqs, device="cpu", batch_size=256):
        return torch.zeros(len(seqs), 2)

    monkeypatch.setattr(StyleClassifier, "probabilities", rejects_all)
    with pytest.raises(ConfigError, match="no mined pair of neg2pos, pos2neg is left after the filters"):
        refine(teacher_run, rounds=1, lines=40, steps=2, eval_every=2, runs_dir=tmp_path, name="none",
               overrides=["train.pairs_min_style=0.5"])

    def even_only(self, seqs, device="cpu", batch_size=256):
        return torch.tensor([[float(len(s) % 2 == 0)] * 2 for s in seqs])

    monkeypatch.setattr(StyleClassifier, "probabilities", even_only)
    out = refine(teacher_run, rounds=1, lines=40, steps=2, eval_every=2, runs_dir=tmp_path, name="some",
                 overrides=["train.pairs_min_style=0.5", "teacher.min_content=0"])
    from textgan.checkpoint import load_run_config
    from textgan.transfer import StyleTransfer

    tok, max_len = StyleTransfer(out, "cpu").tok, load_run_config(out).data.max_len
    kept = json.loads((out / "pairs" / "kept.json").read_text())
    for name in ("neg2pos", "pos2neg"):
        pairs = Pairs.load(out / "pairs" / f"{name}.tsv")
        even = sum(len(ids) % 2 == 0 and len(x) > 0
                   for ids, x in zip(tok.encode(pairs.targets, max_len), tok.encode(pairs.sources, max_len)))
        assert kept[name] == {"mined": len(pairs), "kept": even} and 0 < even < len(pairs)


def test_a_refine_killed_while_it_trains_goes_on(teacher_run, tmp_path):
    """kill -9 inside a round's training, then the same command: the round ends where it would have, and
    the teacher's rewrites are read back, not decoded again."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "textgan", "refine", str(teacher_run), "--runs-dir", str(tmp_path), "--name",
            "killed", "--rounds", "1", "--lines", "40", "--steps", "400", "--eval-every", "100"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "toy" / "killed"
    metrics, deadline = out / "metrics.jsonl", time.time() + 240

    def trained_past(step: int) -> bool:
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        return any(json.loads(r)["step"] > step for r in rows if r.strip())

    while not trained_past(100) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the round ended before the kill"
    rewrites = out / "pairs" / "teacher.neg2pos.jsonl"
    stamp = rewrites.stat().st_mtime_ns
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (entry,) = json.loads((out / "refine.json").read_text())["rounds"]
    assert entry["done"] and entry["to_step"] == 500
    steps = [json.loads(r)["step"] for r in metrics.read_text().splitlines()]
    assert max(steps) == 500 and steps == sorted(steps)
    assert rewrites.stat().st_mtime_ns == stamp


def test_a_student_learns_from_the_teacher_and_loads_in_every_entry_point(teacher_run, tmp_path):
    import textgan
    from fastapi.testclient import TestClient

    from textgan.cli import main
    from textgan.convert import Job, convert
    from textgan.serve import Limits, create_app, load_models
    from textgan.training.rounds import distill

    student = distill(teacher_run, preset="cpu", lines=40, runs_dir=tmp_path, name="student",
                      overrides=[*TINY, "train.bootstrap_steps=4"])
    assert json.loads((student / "run.json").read_text())["teacher"] == str(teacher_run)
    assert json.loads((student / "pairs" / "mining.json").read_text())["miner"] == "teacher"
    torch_out = textgan.load(student, device="cpu").transfer(["the food was bad ."], to="pos")
    fast_out = textgan.load(student, device="cpu", engine="ctranslate2").transfer(["the food was bad ."], to="pos")
    assert len(torch_out) == len(fast_out) == 1
    assert main(["transfer", "--model", str(student), "--to", "pos", "the food was bad ."]) == 0
    src = tmp_path / "in.txt"
    src.write_text("the food was bad .\nthe staff was great .\n")
    convert(src, tmp_path / "out.txt", student, Job(to="pos"), show_progress=False)
    assert len((tmp_path / "out.txt").read_text().splitlines()) == 2
    models = load_models([str(student)])
    with TestClient(create_app(models, Limits())) as c:
        r = c.post("/v1/transfer", json={"task": "toy", "texts": ["the food was bad ."], "to": "pos"})
        assert r.status_code == 200 and r.json()["results"][0]["outputs"] == torch_out


def test_convert_says_the_speed_to_expect_and_the_fast_path():
    from textgan.convert import expected_speed
    from textgan.decoding.plan import DecodePlan

    slow = expected_speed(2.0, 1200, DecodePlan(ladder=(0.6, 1.0)), "torch")
    assert slow.startswith("first chunk: 2.0 lines/s; the 1200 lines left should take about 10 min")
    assert "--candidates 1" in slow and "--engine ctranslate2" in slow and "textgan distill" in slow
    assert expected_speed(40.0, 400, DecodePlan(), "torch") == ("first chunk: 40.0 lines/s; the 400 lines left "
                                                                 "should take about 0 min")


def test_train_rounds_refine_the_run_in_place(tmp_path):
    """train.rounds (the cpu-long preset's): `textgan train` ends with self-training rounds in the run itself."""
    from textgan.training.rounds import train_with_rounds

    cfg = load_config("toy", "cpu", [*TEACHER, "train.rounds=1", "train.round_lines=30", "train.round_steps=4",
                                     "train.round_eval_every=2"])
    run = train_with_rounds(cfg, runs_dir=tmp_path, name="long")
    (entry,) = json.loads((run / "refine.json").read_text())["rounds"]
    assert entry["done"] and (entry["from_step"], entry["to_step"]) == (100, 104)
    assert json.loads((run / "pairs" / "mining.json").read_text())["report"]["neg2pos"]["rewritten"] == 30
    with pytest.raises(ConfigError, match="train.rounds must be at least 0"):
        load_config("toy", "cpu", ["train.rounds=-1"])
