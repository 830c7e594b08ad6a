"""The evaluator on the toy task: known answers for the input copy and for perfect outputs."""

import json
import shutil

import pytest
from conftest import ROOT

from textgan.cli import main
from textgan.config import load_config
from textgan.evaluate import NEURAL_JUDGE_FILE, NEURAL_JUDGE_SETTINGS, Evaluator, markdown_table, task_directions

@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    cfg = load_config("toy", "cpu")      # tiny evaluator models: configs/toy.yaml's eval section
    return Evaluator.train(cfg, tmp_path_factory.mktemp("eval"), progress=False)


def test_input_copy_scores_zero_style_and_full_self_bleu(evaluator):
    dirs = task_directions(evaluator.cfg)
    assert [d.name for d in dirs] == ["neg2pos", "pos2neg"]
    result = evaluator.score_system({d.name: d.inputs for d in dirs}, dirs)
    mean = result["mean"]
    assert mean["acc"] < 10 and mean["acc_neural"] < 10 and mean["self_bleu"] == pytest.approx(100)
    assert evaluator.info["judge_acc_on_test_inputs"] > 90 and evaluator.info["neural_judge_acc_on_test_inputs"] > 90


def test_the_references_themselves_score_full_style_and_ref_bleu(evaluator):
    dirs = task_directions(evaluator.cfg)
    result = evaluator.score_system({d.name: d.references[0] for d in dirs}, dirs)["mean"]
    assert result["acc"] > 90 and result["acc_neural"] > 90 and result["ref_bleu"] == pytest.approx(100)
    assert result["g"] == pytest.approx((result["acc"] * 100) ** 0.5)
    signature = evaluator.signatures["pos"]
    assert "sacreBLEU" not in signature and "tok:none" in signature


def test_a_repeated_sentence_shows_as_mode_collapse(evaluator):
    dirs = task_directions(evaluator.cfg)
    result = evaluator.score_system({d.name: ["the food was great ."] * len(d.inputs) for d in dirs}, dirs)
    mean = result["mean"]
    assert mean["distinct2"] < 5 and mean["duplicates"] > 95 and mean["self_bleu_outputs"] == pytest.approx(100)


def test_wrong_number_of_outputs_is_a_clear_error(evaluator):
    dirs = task_directions(evaluator.cfg)
    with pytest.raises(ValueError, match="neg2pos: 3 outputs for 50 test inputs"):
        evaluator.score_system({"neg2pos": ["a", "b", "c"], "pos2neg": dirs[1].inputs}, dirs)


def test_cli_scores_output_files_beside_the_input_copy(evaluator, tmp_path, capsys):
    refs = ROOT / "corpora" / "toy"
    out = tmp_path / "report"
    assert main(["evaluate", "--task", "toy", "--evaluator", str(evaluator.path), "--out", str(out),
                 "--outputs", f"human:neg2pos={refs / 'test.neg2pos.ref0'}", f"pos2neg={refs / 'test.pos2neg.ref0'}"]) == 0
    table = capsys.readouterr().out
    assert "| input copy |" in table and "| human |" in table and "tok:none" in table
    report = json.loads((out / "metrics.json").read_text())
    assert report["systems"]["human"]["mean"]["ref_bleu"] == pytest.approx(100)
    assert (out / "metrics.md").read_text() == markdown_table(report)
    assert "| ACC | ACC-nn | ref-BLEU |" in table
    assert "acc_neural" in report["systems"]["human"]["directions"]["neg2pos"]
    assert "Style judge (ACC, the one G uses): NgramJudge" in table
    assert "Second style judge (ACC-nn): NeuralJudge" in table
    assert main(["evaluate", "--task", "toy", "--evaluator", str(evaluator.path),
                 "--outputs", "sideways=x.txt"]) == 1
    assert "DIRECTION=FILE" in capsys.readouterr().err


def test_cli_evaluates_a_run(evaluator, trained_run, capsys):
    assert main(["evaluate", "--task", "toy", "--evaluator", str(evaluator.path), "--model", str(trained_run)]) == 0
    assert f"| {trained_run.name} |" in capsys.readouterr().out


def test_missing_evaluator_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="textgan judge train --task toy"):
        Evaluator.load(load_config("toy", "cpu"), tmp_path)


def test_an_evaluator_trained_with_other_settings_is_refused(evaluator, capsys):
    cfg = evaluator.cfg
    assert Evaluator.load(cfg, evaluator.path).info["settings"]["lm_steps"] == cfg.eval.lm_steps
    with pytest.raises(ValueError, match=r"lm_steps=.* \(config: 7\).*textgan judge train --task toy"):
        Evaluator.load(load_config("toy", "cpu", ["eval.lm_steps=7"]), evaluator.path)
    assert main(["evaluate", "--task", "toy", "--evaluator", str(evaluator.path), "--outputs",
                 f"neg2pos={ROOT / 'corpora' / 'toy' / 'test.neg2pos.ref0'}", "eval.judge_epochs=9"]) == 1
    assert "judge_epochs=" in capsys.readouterr().err


def test_a_system_must_cover_every_direction(evaluator):
    dirs = task_directions(evaluator.cfg)
    with pytest.raises(ValueError, match="no outputs for direction"):
        evaluator.score_system({"neg2pos": dirs[0].inputs}, dirs)


def test_two_systems_with_one_name_are_refused(evaluator, capsys):
    refs = ROOT / "corpora" / "toy"
    pair = [f"x:neg2pos={refs / 'test.neg2pos.ref0'}", f"pos2neg={refs / 'test.pos2neg.ref0'}"]
    assert main(["evaluate", "--task", "toy", "--evaluator", str(evaluator.path),
                 "--outputs", *pair, "--outputs", *pair]) == 1
    assert "two systems named 'x'" in capsys.readouterr().err


def test_the_neural_judges_settings_are_checked(evaluator):
    assert Evaluator.load(evaluator.cfg, evaluator.path).info["settings"]["neural_judge_dim"] == 32
    with pytest.raises(ValueError, match=r"neural_judge_dim=32 \(config: 8\)"):
        Evaluator.load(load_config("toy", "cpu", ["eval.neural_judge_dim=8"]), evaluator.path)


def test_an_evaluator_from_before_the_neural_judge_gets_it_added_without_retraining_its_lms(evaluator, tmp_path,
                                                                                           monkeypatch, capsys):
    old = tmp_path / "old"
    shutil.copytree(evaluator.path, old)
    (old / NEURAL_JUDGE_FILE).unlink()
    info = json.loads((old / "evaluator.json").read_text())
    for key in ("neural_judge", "neural_judge_acc_on_test_inputs", "neural_judge_seconds"):
        del info[key]
    for key in NEURAL_JUDGE_SETTINGS:
        del info["settings"][key]
    (old / "evaluator.json").write_text(json.dumps(info))
    kept = {p: p.read_bytes() for p in sorted(old.rglob("*")) if p.is_file() and p.name != "evaluator.json"}
    assert any(p.parent.name.startswith("lm_") for p in kept)

    def no_lm_training(*args, **kwargs):
        raise AssertionError("the fluency LMs were retrained")

    monkeypatch.setattr("textgan.lm.FluencyLM.train", no_lm_training)
    cfg = load_config("toy", "cpu", ["eval.neural_judge_epochs=1"])     # new keys: not refused, trained as asked
    loaded = Evaluator.load_or_train(cfg, old)
    assert "no neural style judge yet" in capsys.readouterr().err
    assert (old / NEURAL_JUDGE_FILE).is_file()
    assert {p: p.read_bytes() for p in kept} == kept                     # judge.pt and the LMs untouched
    recorded = json.loads((old / "evaluator.json").read_text())
    assert recorded["settings"]["neural_judge_epochs"] == 1 and recorded["neural_judge_acc_on_test_inputs"] > 50
    assert recorded["judge_acc_on_test_inputs"] == evaluator.info["judge_acc_on_test_inputs"]
    dirs = task_directions(cfg)
    assert "acc_neural" in loaded.score_system({d.name: d.inputs for d in dirs}, dirs)["mean"]

    again = Evaluator.load(cfg, old)                                     # now it has one: nothing to train
    assert "neural" not in capsys.readouterr().err and again.info == recorded
    with pytest.raises(ValueError, match=r"neural_judge_epochs=1 \(config: 2\)"):
        Evaluator.load(load_config("toy", "cpu"), old)
