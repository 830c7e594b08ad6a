import json
import math

import pytest
import torch

from textgan.models import generator
from textgan.checkpoint import CheckpointError, load_run, new_models, save_models
from textgan.decoding.search import Search, generate
from textgan.tokenizer import Tokenizer
from textgan.runner import train

from conftest import ROOT, TINY, train_then_kill


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("estimator", ["soft", "gumbel", "reinforce"])
@pytest.mark.parametrize("shared", [True, False])
def test_every_estimator_trains_without_nan(tmp_path, tiny_cfg, estimator, shared):
    cfg = tiny_cfg(f"train.estimator={estimator}", f"generator.shared={shared}")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    rows = _metrics(run_dir)
    assert rows[-1]["step"] == 10 and rows[-1]["phase"] == "adv"
    values = [v for r in rows for k, v in r.items() if k.startswith("train/")]
    assert values and all(math.isfinite(v) for v in values)
    adv = [r for r in rows if "train/g_loss" in r and r["phase"] == "adv"]
    assert adv and "train/d_loss" in adv[-1] and "train/cycle_neg" in adv[-1]
    expected = ["generator"] if shared else ["generator_ab", "generator_ba"]
    assert sorted(p.name for p in run_dir.glob("generator*")) == expected
    assert (run_dir / "training_curves.png").stat().st_size > 0


@pytest.mark.parametrize("extra", [
    ["train.baseline=greedy", "train.style_reward=1", "train.style_steps=10", "train.cycle_reward=0.5",
     "train.reward_mix=harmonic"],                                   # the cpu preset's kind of step
    ["train.baseline=ema"],
    ["train.lambda_adv=0", "train.bootstrap_self=0.5"],              # back-translation, bootstrap + denoising
])
def test_fused_directions_give_the_same_losses(tmp_path, tiny_cfg, monkeypatch, extra):
    """Both directions in one batch (train.fuse_directions) compute the very losses of one pass per
    direction, step after step, through every phase. Sampling is made deterministic (argmax in place
    of generator.draw; the toy model has no dropout) so the two runs see the same tokens."""
    monkeypatch.setattr(generator, "draw", lambda probs: probs.argmax(-1))
    base = ["train.bootstrap=template", "miner.salience=3", "train.estimator=reinforce", "train.bootstrap_steps=4",
            "train.lambda_pairs=0.5", "train.log_every=1", "train.adv_steps=3", "train.tau_start=1",
            "train.tau_end=1", *extra]
    losses = {}
    for fuse in (True, False):
        run_dir = train(tiny_cfg(*base, f"train.fuse_directions={fuse}"), runs_dir=tmp_path, name=f"fuse-{fuse}")
        losses[fuse] = [(r["step"], r["phase"], r.get("train/g_loss"), r.get("train/d_loss"))
                        for r in _metrics(run_dir) if "train/g_loss" in r or "train/d_loss" in r]
    assert {phase for _, phase, _, _ in losses[True]} >= {"ae", "boot", "adv"}
    assert [row[:2] for row in losses[True]] == [row[:2] for row in losses[False]]
    for fused, separate in zip(losses[True], losses[False]):
        for x, y in zip(fused[2:], separate[2:]):
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, rel=1e-5, abs=1e-6)), (fused, separate)


@pytest.mark.parametrize("extra", [
    ["discriminator.mode=binary", "train.estimator=gumbel", "train.straight_through=true"],
    ["train.estimator=reinforce", "train.baseline=greedy", "train.cycle_reward=0.5", "train.d_per_g=2"],
    # the sentiment presets' setting, and Style Transformer's soft feedback through the decoding loop
    ["train.straight_through=true", "train.cycle_through_fake=true", "train.lr_g_adv=1e-4"],
    ["train.feedback=soft", "train.cycle_through_fake=true"],
    ["train.feedback=soft", "train.estimator=gumbel", "train.straight_through=true"],
])
def test_training_options_pass_the_adversarial_gradient_to_the_generator(tmp_path, tiny_cfg, monkeypatch, extra):
    """With denoising and the cycle loss weighted 0, every adversarial generator update of each option set
    carries a gradient (from L_adv alone: through the soft/Gumbel sentence into D, or REINFORCE's rewards),
    and every discriminator update one of its own."""
    from textgan.trainer import Trainer

    norms = {"g": [], "d": []}
    fit = Trainer.fit

    def fit_recording_gradients(self):
        for key, opt, modules in (("g", self.opt_g, self.generators), ("d", self.opt_d, [self.critic])):
            def step(*args, _step=opt.step, _key=key, _modules=modules, **kwargs):
                if self.phase(self.state.step) == "adv":
                    grads = [p.grad for m in _modules for p in m.parameters() if p.grad is not None]
                    norms[_key].append(float(sum(g.norm() ** 2 for g in grads)) ** 0.5 if grads else 0.0)
                return _step(*args, **kwargs)
            opt.step = step
        fit(self)

    monkeypatch.setattr(Trainer, "fit", fit_recording_gradients)
    train(tiny_cfg(*extra, "train.lambda_self=0", "train.lambda_cycle=0"), runs_dir=tmp_path, name="run")
    d_per_g = 2 if "train.d_per_g=2" in extra else 1
    assert len(norms["g"]) == 4 and len(norms["d"]) == 4 * d_per_g
    assert all(n > 0 for n in norms["g"]), norms
    assert all(n > 0 for n in norms["d"]), norms


def test_run_dir_records_how_it_was_made(trained_run):
    info = json.loads((trained_run / "run.json").read_text())
    assert info["command"] == ["pytest"] and info["seed"] == 1234
    assert {"torch", "transformers", "accelerate"} <= set(info["versions"])
    for name in ("config.yaml", "tokenizer.model", "discriminator.safetensors", "judge.pt", "state"):
        assert (trained_run / name).exists(), name
    assert any((trained_run / "generator").glob("*.safetensors"))


def test_bf16_run_saves_fp32_weights_that_load(tmp_path):
    """`textgan train --mixed-precision bf16` (CPU autocast here) trains under autocast and saves fp32 weights
    that load and decode in fp32. A process of its own: accelerate's precision is fixed once per process."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    import textgan

    out = subprocess.run([sys.executable, "-m", "textgan", "train", "--task", "toy", "--runs-dir", str(tmp_path),
                          "--name", "bf16", "--mixed-precision", "bf16", *TINY, "train.ae_steps=2", "train.d_steps=1",
                          "train.adv_steps=1", "train.style_steps=5"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "toy" / "bf16"
    assert json.loads((run / "run.json").read_text())["mixed_precision"] == "bf16"
    files = [f for f in run.rglob("*.safetensors") if "state" not in f.relative_to(run).parts]
    assert files and all(t.dtype == torch.float32 for f in files for t in load_file(f).values())
    model = textgan.load(run, device="cpu")
    assert all(p.dtype == torch.float32 for g in model.generators for p in g.parameters())
    assert all(isinstance(t, str) for t in model.transfer(["the food was cold .", "great staff"], to="pos"))


def test_save_load_gives_identical_greedy_outputs(tmp_path, tiny_cfg):
    cfg = tiny_cfg()
    lines = ["the food was bad .", "the staff was great ."]
    tok = Tokenizer.train(lines * 20, tmp_path / "tokenizer.model", cfg.data.domains, "ptb_lower", 40)
    torch.manual_seed(3)
    generators, critic = new_models(cfg, tok)
    for m in [*generators, critic]:
        m.eval()
    from textgan.config import save_config
    from textgan.data import pad

    save_config(cfg, tmp_path / "config.yaml")
    save_models(tmp_path, cfg, generators, critic)
    _, _, loaded, loaded_critic = load_run(tmp_path)
    src, mask = pad(tok.encode(lines, 16))
    assert generate(generators[0], src, mask, 4, Search(max_len=10)) == generate(loaded[0], src, mask, 4, Search(max_len=10))
    assert torch.equal(critic.log_probs(src, 0)[0], loaded_critic.log_probs(src, 0)[0])


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, trained_run):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "discriminator.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot load the run in .*broken"):
        load_run(broken)
    with pytest.raises(CheckpointError, match="not a textgan run directory"):
        load_run(tmp_path)


def test_kill_and_resume_continues_the_step_counter(tmp_path):
    """kill -9 a training process after its first checkpoint; --resume continues from that step."""
    run_dir, resume = train_then_kill(tmp_path, "train.ckpt_every=4", "train.adv_steps=2000")
    # no evaluation has run yet (keep_best has no best.json), so the checkpoint wrote the model files
    assert any((run_dir / "generator").glob("*.safetensors")) and not (run_dir / "best.json").exists()
    resumed = resume("train.adv_steps=16")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = int(resumed.stdout.split("at step ")[1].split("/")[0])
    assert start >= 4 and start % 4 == 0
    steps = [r["step"] for r in _metrics(run_dir)]
    assert steps == sorted(steps) and steps[-1] == 4 + 2 + 16


def _state(trainer) -> dict:
    """Copies of what a resumed run must get back: step, weights, both optimizers' moments and steps, the
    learning-rate schedules and the REINFORCE baseline."""
    import copy

    return copy.deepcopy({
        "step": trainer.state.step,
        "models": [m.state_dict() for m in [*trainer.generators, trainer.critic]],
        "optimizers": [o.state_dict() for o in (trainer.opt_g, trainer.opt_d)],
        "schedules": [s.state_dict() for s in (trainer.sched_g, trainer.sched_d)],
        "baseline": trainer.baseline.state_dict()})


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def saved_and_resumed_states(make_cfg, options, tmp_path, monkeypatch) -> tuple[dict, dict]:
    """Train a run of make_cfg(*options) copying the trainer's state at each checkpoint, then resume it with
    the loop replaced by a copy of the state it starts from: ({step: state saved}, state resumed)."""
    from textgan.trainer import Trainer

    saved, resumed = {}, {}
    save = Trainer.save_checkpoint

    def save_and_copy(self):
        save(self)
        saved[self.state.step] = _state(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_and_copy)
    run_dir = train(make_cfg(*options), runs_dir=tmp_path, name="run")
    monkeypatch.setattr(Trainer, "fit", lambda self: resumed.update(_state(self)))
    train(make_cfg(*options, "train.adv_steps=8"), resume=run_dir)
    return saved, resumed


def test_resume_restores_weights_optimizers_schedules_and_baseline(tmp_path, tiny_cfg, monkeypatch):
    """What the last checkpoint held is what --resume starts from, not only its step counter."""
    options = ["train.estimator=reinforce", "train.baseline=ema", "train.warmup_steps=50"]
    saved, resumed = saved_and_resumed_states(tiny_cfg, options, tmp_path, monkeypatch)
    assert sorted(saved) == [10] and resumed["step"] == 10
    assert saved[10]["baseline"]["value"].numel() > 0                   # the baseline has learnt something
    _assert_same(resumed, saved[10])


def test_learning_rates_given_on_resume_take_effect(tmp_path, tiny_cfg):
    """A checkpoint restores its optimizers' learning rates; lr_g / lr_d overrides given on --resume win."""
    run_dir = train(tiny_cfg("train.ae_steps=10", "train.d_steps=0", "train.adv_steps=0", "train.warmup_steps=1",
                             "train.log_every=5", "train.ckpt_every=10"), runs_dir=tmp_path, name="run")
    assert [r["train/lr_g"] for r in _metrics(run_dir) if "train/lr_g" in r][-1] == pytest.approx(5e-4)
    train(tiny_cfg("train.ae_steps=20", "train.d_steps=0", "train.adv_steps=0", "train.warmup_steps=1",
                   "train.log_every=5", "train.ckpt_every=10", "train.lr_g=1e-4"), resume=run_dir)
    rows = [r for r in _metrics(run_dir) if "train/lr_g" in r]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[-1]["train/lr_g"] == pytest.approx(1e-4)
    assert rows[-1]["train/lr_d"] == pytest.approx(5e-4 / 20)     # D never stepped: first of 20 warmup steps


@pytest.mark.parametrize("select_by,prefix", [("style", "dev/style_acc_"), ("judge", "dev/acc_")])
def test_keep_best_saves_the_checkpoint_best_by_the_chosen_judge(tmp_path, tiny_cfg, select_by, prefix):
    """select_by=style scores dev style with the reward's style classifier (which the evaluator never
    uses), select_by=judge with the run's n-gram judge; best.json says which."""
    cfg = tiny_cfg("train.eval_every=2", "train.keep_best=true", f"train.select_by={select_by}")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    best = json.loads((run_dir / "best.json").read_text())
    assert best["step"] > cfg.train.ae_steps + cfg.train.d_steps          # adversarial phase only
    scores = [math.sqrt((r[f"{prefix}neg2pos"] + r[f"{prefix}pos2neg"]) / 2 *
                        (r["dev/self_bleu_neg2pos"] + r["dev/self_bleu_pos2neg"]) / 2)
              for r in _metrics(run_dir) if f"{prefix}neg2pos" in r and r["phase"] == "adv"]
    assert len(scores) == 2 and best["score"] == pytest.approx(max(scores))
    assert ("style classifier" in best["selector"]) == (select_by == "style")
    assert ("twin" in best["selector"]) == (select_by == "judge")
    assert (run_dir / "style.safetensors").exists() == (select_by == "style")   # nothing else needs it here
    assert any((run_dir / "generator").glob("*.safetensors"))


def test_dev_lines_spread_over_a_sorted_dev_set():
    """The periodic dev BLEU reads lines spread over the set, not its first (shortest, if sorted) lines."""
    from textgan.training.evaluation import spread

    assert spread(10, 3) == [0, 3, 6]
    assert spread(1037, 200)[-1] > 1000 and len(set(spread(1037, 200))) == 200
    assert spread(3, 5) == [0, 1, 2]
