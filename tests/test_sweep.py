"""Test-set discipline: dev slices, the decode sweep (textgan/sweep.py, scripts/sweep_decode.py) and the
append-only test-set log (textgan/testlog.py) that scripts/bench_quality.py writes."""

import json
import subprocess
import sys

import pytest

from textgan import testlog
from textgan.config import load_config
from textgan.evaluate import dev_slice, task_directions
from textgan.sweep import Rule, SweepJudge, parse_grid, parse_rule


def rule_pick(report: dict) -> int:
    """Which dev-b row the sweep's own rule chose (0: the run's decode, 1: the dev-a pick)."""
    return parse_rule("max:gself").pick([r["mean"] for r in report["dev_b"]])

from conftest import ROOT


def test_dev_slices_split_dev_in_two_disjoint_halves_that_keep_a_repeated_sentence_together():
    inputs = [f"sentence {i}" for i in range(200)] + ["sentence 7"]          # a repeat, as Tatoeba has
    refs = [[f"ref {i}" for i in range(201)]]
    a, ra = dev_slice(inputs, refs, "dev-a")
    b, rb = dev_slice(inputs, refs, "dev-b")
    assert len(a) + len(b) == 201 and 70 < len(a) < 130                      # roughly halves
    assert not set(a) & set(b)                                              # the repeat lies in one slice only
    assert all(refs[0][inputs.index(x)] == r for x, r in zip(a, ra[0]) if x != "sentence 7")   # refs follow
    assert dev_slice(list(reversed(inputs)), [list(reversed(refs[0]))], "dev-a")[0] == list(reversed(a))
    with pytest.raises(ValueError, match="one of dev-a, dev-b"):
        dev_slice(inputs, refs, "dev")
    cfg = load_config("toy", "cpu")
    dev = task_directions(cfg, test_set="dev")
    halves = [task_directions(cfg, test_set=s) for s in ("dev-a", "dev-b")]
    for d, da, db in zip(dev, *halves):
        assert sorted(da.inputs + db.inputs) == sorted(d.inputs) and da.tgt == d.tgt


def test_a_grid_is_every_combination_and_a_list_value_stays_whole():
    grid = parse_grid(["decode.style_weight=2,4", "decode.guidance_candidates=[0.6,1.0];[1.0]"])
    assert grid == [{"decode.style_weight": "2", "decode.guidance_candidates": "[0.6,1.0]"},
                    {"decode.style_weight": "2", "decode.guidance_candidates": "[1.0]"},
                    {"decode.style_weight": "4", "decode.guidance_candidates": "[0.6,1.0]"},
                    {"decode.style_weight": "4", "decode.guidance_candidates": "[1.0]"}]
    with pytest.raises(ValueError, match="decode.KEY=V1,V2"):
        parse_grid(["train.lr_g=1,2"])


def test_the_rule_maximises_among_the_points_that_meet_its_minimums():
    rule = parse_rule("max:gself, self_bleu>=50")
    assert rule == Rule("gself", [("self_bleu", 50.0)])
    rows = [{"gself": 70, "self_bleu": 45}, {"gself": 65, "self_bleu": 52}, {"gself": 60, "self_bleu": 58}]
    assert rule.pick(rows) == 1                                 # the best that keeps self-BLEU >= 50
    assert parse_rule("max:gself,self_bleu>=60").pick(rows) == 2  # none meets it: the one missing it least
    assert parse_rule("max:gself").pick(rows) == 0
    with pytest.raises(ValueError, match="max:METRIC"):
        parse_rule("gself")
    with pytest.raises(ValueError, match="METRIC>=NUMBER"):
        parse_rule("max:gself,self_bleu>=high")
    with pytest.raises(ValueError, match="names gsefl, selfbleu"):           # a typo never picks the first row
        parse_rule("max:gsefl,selfbleu>=50").pick(rows)
    with pytest.raises(ValueError, match="no rows"):
        parse_rule("max:gself").pick([])


def test_the_sweep_judge_learns_the_domains_and_survives_save_and_load(tmp_path):
    neg = [f"the {w} was awful and cold ." for w in ("soup", "pasta", "bread", "fish", "tea", "cake")] * 5
    pos = [f"the {w} was lovely and warm ." for w in ("soup", "pasta", "bread", "fish", "tea", "cake")] * 5
    judge = SweepJudge.fit({"neg": neg, "pos": pos})
    assert judge.accuracy(["the rice was awful ."], "neg") == 100 and judge.accuracy(["the rice was lovely ."], "pos") == 100
    judge.save(tmp_path / "judge.pkl")
    again = SweepJudge.load(tmp_path / "judge.pkl")
    texts = neg[:3] + pos[:3] + ["the room was awful but warm ."]
    assert [again.accuracy([t], "pos") for t in texts] == [judge.accuracy([t], "pos") for t in texts]


def test_the_log_numbers_rows_and_counts_earlier_looks_at_the_same_run(tmp_path):
    log = tmp_path / "TESTLOG.md"

    def look(run, test_set="test"):
        return testlog.Look("2026-12-07 10:00", "sentiment", test_set, f"sentiment/{run}", f"{run} @ abc1234",
                            "candidates=4 | odd; beam 1; torch", "ACC 90.0", by="test")

    assert testlog.append(log, look("a"))[0] == 1
    assert testlog.append(log, look("b"))[1].looks_before == 0
    number, row = testlog.append(log, look("a"))
    assert number == 3 and row.looks_before == 1
    assert testlog.append(log, look("a", "wmt21"))[1].looks_before == 0       # another test set: its own count
    rows = testlog.read(log)
    assert [r.results for r in rows] == ["sentiment/a", "sentiment/b", "sentiment/a", "sentiment/a"]
    assert rows[2].looks_before == 1 and rows[0].decode == "candidates=4 / odd; beam 1; torch"
    assert log.read_text().startswith(testlog.HEADER)
    odd = look("c")
    odd.decode = "a\rb\nc\u2028d"                                          # line breaks of every kind: one row
    assert testlog.append(log, odd)[0] == 5 and testlog.read(log)[4].decode == "a b c d"
    log.write_text(log.read_text().replace("| 3 | 2026", "| 3 | broken | 2026"))
    with pytest.raises(ValueError, match="row 3 is damaged"):
        testlog.read(log)


@pytest.mark.slow
def test_a_sweep_freezes_a_decode_on_dev_and_the_benchmark_logs_each_test_look(trained_run, tmp_path):
    """The whole path on the toy run: sweep two decodes on dev-a, hold the pick against the run's decode on
    dev-b, freeze the winner; score test twice with it: TESTLOG gets two rows, the second counting one
    earlier look at the same run, and both results READMEs say which look they were."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    sweep = subprocess.run([sys.executable, "scripts/sweep_decode.py", "--run", str(trained_run), "--name", "k",
                            "--grid", "decode.candidates=1,3", "--rule", "max:gself", "--lines", "20",
                            "--runs-dir", str(runs), "--results-dir", str(results)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    out = results / "toy" / trained_run.name / "sweeps" / "k"
    report = json.loads((out / "sweep.json").read_text())
    assert [r["overrides"] for r in report["dev_a"]] == [{"decode.candidates": "1"}, {"decode.candidates": "3"}]
    assert all(0 <= r["mean"]["acc"] <= 100 and "gself" in r["mean"] for r in report["dev_a"] + report["dev_b"])
    picked = report["dev_a"][report["pick"]]["overrides"]
    assert report["dev_b"][0]["overrides"] == {}                      # the run's decode (candidates 1) on dev-b
    assert [r["overrides"] for r in report["dev_b"][1:]] == ([] if picked == {"decode.candidates": "1"} else [picked])
    frozen = json.loads((out / "decode.json").read_text())["overrides"]
    assert frozen == report["dev_b"][rule_pick(report)]["overrides"]
    assert "no test data" in (out / "README.md").read_text()
    typo = subprocess.run([sys.executable, "scripts/sweep_decode.py", "--run", str(trained_run), "--name", "t",
                           "--grid", "decode.candidates=1,2", "--rule", "max:gsefl", "--results-dir", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert typo.returncode == 2 and "the rule names gsefl" in typo.stderr and not (out.parent / "t").exists()
    (out / "decode.json").write_text(json.dumps({"run": str(trained_run), "overrides": {"decode.candidates": "3"}}))

    bench = [sys.executable, "scripts/bench_quality.py", "--task", "toy", "--run", str(trained_run), "--name", "frozen",
             "--decode-from", str(out / "decode.json"), "--runs-dir", str(runs), "--results-dir", str(results)]
    for _ in range(2):
        done = subprocess.run(bench, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    rows = testlog.read(results / "TESTLOG.md")
    assert [r.looks_before for r in rows] == [0, 1] and all(r.test_set == "test" for r in rows)
    assert "frozen on dev by sweep" in rows[0].decode and rows[0].run.startswith(trained_run.name + " @ ")
    readme = (results / "toy" / "frozen" / "README.md").read_text()
    assert "row 2 of [TESTLOG.md](../../TESTLOG.md)" in readme and "scored on test 1 time(s) before" in readme
    report = json.loads((results / "toy" / "frozen" / "metrics.json").read_text())
    assert report["test_look"] == {"row": 2, "looks_before": 1} and report["decode"]["candidates"] == 3
    plan = report["decode_plan"]                             # what the test transfers decoded by, resolved
    assert plan["candidates"] == 3 and plan["search"]["beam"] == 1 and plan["engine"] == "torch"
    other = subprocess.run([*bench[:5], str(tmp_path), *bench[6:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "the run it was swept on" in other.stderr
    assert "| 1 |" in (results / "toy" / "TABLE.md").read_text().split("[frozen]")[1].splitlines()[0]
