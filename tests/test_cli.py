import io
import os
import subprocess
import sys
import time

import pytest

from textgan.cli import main

from conftest import ROOT


def test_transfer_prints_one_rewrite_per_input(trained_run, capsys):
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", "the food was bad .", "so rude"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2


def test_transfer_without_to_detects_and_says_so(trained_run, capsys):
    assert main(["transfer", "--model", str(trained_run), "the food was terrible ."]) == 0
    captured = capsys.readouterr()
    assert "[detected " in captured.err and len(captured.out.splitlines()) == 1


def test_transfer_samples_at_a_temperature_and_refuses_one_out_of_range(trained_run, capsys):
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", "--sample", "--temperature", "2",
                 "the food was bad ."]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", "--sample", "--temperature", "0",
                 "the food was bad ."]) != 0
    err = capsys.readouterr().err
    assert "temperature must be a number in [0.01, 10]; got 0.0" in err and "Traceback" not in err


def test_transfer_stderr_holds_only_textgan_lines(trained_run):
    """No deprecation warnings, no "Loading weights" bar: a user sees what textgan says, nothing else.
    (A fresh process, so warnings that Python shows once per process are not hidden by earlier tests.)"""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "textgan", "transfer", "--model", str(trained_run), "the soup was cold ."],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1
    assert [line for line in done.stderr.splitlines() if not line.startswith("[detected ")] == []
    code = f"import textgan; textgan.load({str(trained_run)!r}).transfer(['the soup was cold .'], to='pos')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""


def test_transfer_reads_stdin(trained_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("worst service ever\nthe staff was rude .\n"))
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", "--tokenized"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_newest_run_of_the_task_is_found(runs_of_three_ages, capsys):
    """--task without --model rewrites with the most recently modified run that has a generator: not the
    one whose name sorts last, not the oldest, not an unfinished one.
    Fails if latest_run picks by name instead of mtime."""
    import textgan

    runs = runs_of_three_ages
    expected = textgan.load(runs.newer, device="cpu").transfer(["great pizza ."], to="neg")
    assert expected != textgan.load(runs.older, device="cpu").transfer(["great pizza ."], to="neg")
    assert main(["transfer", "--task", "toy", "--runs-dir", str(runs.runs_dir), "--to", "neg", "great pizza ."]) == 0
    assert capsys.readouterr().out == expected[0] + "\n"


def test_python_api(trained_run):
    import textgan

    model = textgan.load(trained_run)
    out = model.transfer(["the food was great .", ""], to="neg")
    assert len(out) == 2 and out[1] == ""
    assert model.transfer(["the food was great ."], to="neg") == out[:1]   # greedy is deterministic
    with pytest.raises(ValueError, match="unknown domain 'happy'"):
        model.transfer(["x"], to="happy")


@pytest.mark.parametrize("argv, code, message", [
    (["train", "--task", "toy", "train.lrr=1"], 2, "unknown config key 'train.lrr'"),
    (["train", "--task", "nope"], 2, "unknown task 'nope'"),
    (["train", "--resume", "/nonexistent/run"], 1, "not a run directory"),
    (["transfer", "--model", "/nonexistent/run", "hi"], 1, "not a textgan run directory"),
    (["transfer", "--task", "toy", "--runs-dir", "/nonexistent", "hi"], 1, "no trained run of task 'toy'"),
    (["data", "where", "nonexistent"], 1, "no corpus card 'nonexistent'"),
])
def test_errors_are_one_line_with_an_exit_code(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_domain_exit_code(trained_run, capsys):
    assert main(["transfer", "--model", str(trained_run), "--to", "happy", "hi"]) == 1
    assert "unknown domain 'happy'" in capsys.readouterr().err


def test_console_script_and_module_entry_points(tmp_path):
    out = subprocess.run(["textgan", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "transfer" in out.stdout
    env = {**os.environ, "TEXTGAN_RUNS": str(tmp_path)}           # no trained run there
    bad = subprocess.run([sys.executable, "-m", "textgan", "transfer", "good food"], cwd=ROOT, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, env=env)
    assert bad.returncode == 1 and "no trained run of task 'sentiment'" in bad.stderr


def test_overrides_may_follow_options(monkeypatch):
    """`textgan judge train --task toy eval.lm_steps=5`: KEY=VALUE after an option is still an override."""
    seen = {}
    monkeypatch.setattr("textgan.cli._judge", lambda args: seen.update(overrides=args.overrides) or 0)
    assert main(["judge", "train", "--task", "toy", "eval.lm_steps=5"]) == 0
    assert seen["overrides"] == ["eval.lm_steps=5"]
    with pytest.raises(SystemExit):
        main(["judge", "train", "--task", "toy", "--bogus"])


@pytest.mark.slow
def test_progress_lines_reach_a_redirected_log_while_training_runs(tmp_path):
    """`textgan train > train.log` (a batch job): the style classifier's progress lines are in the log while
    the run is still going, not held back in stdout's 8 KiB buffer until it ends."""
    from conftest import TINY

    log = tmp_path / "train.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    args = [sys.executable, "-m", "textgan", "train", "--task", "toy", "--runs-dir", str(tmp_path), "--name", "log",
            *TINY, "train.style_reward=1.0", "train.style_steps=200", "train.ae_steps=100000"]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while "style classifier step 200/200" not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before its log showed progress"
        assert "style classifier step 100/200" in log.read_text()
    finally:
        proc.kill()
        proc.wait()


def test_resume_overrides_are_checked_as_a_new_runs_are(trained_run, capsys):
    """`train --resume RUN key=value`: overrides that do not go together are refused before any training,
    with the message a new run gets (config.check), exit 2."""
    assert main(["train", "--resume", str(trained_run), "train.pairs_min_style=0.5"]) == 2
    assert "set train.bootstrap" in capsys.readouterr().err
