"""The training loop on Hugging Face Accelerate.

Phases, by global step (each phase's step lives in its module under training/):
    [0, ae_steps)                    denoising autoencoder: G learns to rewrite a sentence into its own domain
                                     (training/likelihood.py)
    [.., + bootstrap_steps)          bootstrap: maximum likelihood on mined pseudo-parallel pairs (mining/;
                                     training/likelihood.py)
    [.., + d_steps)                  discriminator pretraining on G's transfers (training/adversarial.py)
    [.., + adv_steps)                adversarial cycle: one G step, then d_per_g D steps (training/adversarial.py)

Each phase is an object (training/) owning its step; what every step uses (batches, stacks of both
directions, length control, the update) is training/common.py's StepTools, the base of `Trainer`, which the
phases read as their context; the dev evaluation and the kept checkpoint are training/evaluation.py's.
`Trainer` builds the models and optimizers, runs the loop, checkpoints and resumes.

Each step draws an unaligned batch from each domain. Gradients are averaged across processes
explicitly (`_average_gradients`) instead of through DDP: GAN training calls generator methods other
than `forward` (the sampling loop), which DDP's forward hooks would not see.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from . import checkpoint
from .config import Config, ConfigError
from .crosslingual import CrossLingual
from .distributed import same_weights
from .losses import EMABaseline
from .models.judge import NgramJudge
from .models.latent import LatentCritic
from .rewards import StyleClassifier
from .tokenizer import Tokenizer
from .training.adversarial import Adversarial, DiscriminatorPretraining
from .training.common import StepTools, TrainState, warmup
from .training.evaluation import DevEvaluation
from .training.likelihood import Autoencoder, Bootstrap


class Trainer(StepTools):
    """The models, their optimizers and schedules, the loop over phases, checkpoints and resume. Each phase
    is an object under training/ that owns its step and reads this trainer as its context (`phases`); the
    tools every phase shares (batches, stacks, likelihood terms, the update) are StepTools'."""

    def __init__(self, cfg: Config, run_dir: Path, accelerator: Accelerator, tok: Tokenizer,
                 train_ids: dict[str, list[list[int]]], dev_texts: dict[str, list[str]], judge: NgramJudge | None,
                 xl: CrossLingual | None = None, pairs: dict[str, list] | None = None,
                 style: StyleClassifier | None = None):
        self.cfg, self.run_dir, self.acc, self.tok = cfg, run_dir, accelerator, tok
        self.dev_texts, self.judge = dev_texts, judge
        self.dev_pairs: dict = {}                  # direction name -> evaluate.Direction with references
        self.a, self.b = cfg.data.domains
        self.dom = tok.domain_ids                                   # domain -> decoder start token id
        self.dom_ids = [self.dom[d] for d in cfg.data.domains]      # domain index -> decoder start token id
        t = cfg.train
        if cfg.data.length_tokens and len(tok.length_ids) != cfg.data.length_tokens:
            raise ConfigError(f"data.length_tokens is {cfg.data.length_tokens} but the tokenizer has "
                              f"{len(tok.length_ids)} length tokens")
        if cfg.generator.words_left and not cfg.data.length_tokens:
            raise ConfigError("generator.words_left needs length control (data.length_tokens > 0)")
        self.generators, self.critic = checkpoint.new_models(cfg, tok, run_dir)
        self.controls_length = bool(cfg.data.length_tokens)
        self.default_words = checkpoint.default_words(run_dir) if cfg.data.length_tokens else {}
        self.wordbyword: dict = {}                 # (src, tgt) -> [vocab] id table, from cross-lingual embeddings
        if xl is not None:
            self.use_crosslingual(xl)
        # the encoder's domain critic (train.latent_adv) learns in the generator's optimizer: its loss and the
        # encoder's are one term (models/latent.py)
        self.latent = LatentCritic(cfg.generator.d_model, len(cfg.data.domains), t.latent_pool) if t.latent_adv > 0 else None
        for module in [*self.generators, self.critic, *([self.latent] if self.latent else [])]:
            module.to(accelerator.device).train()
            if accelerator.num_processes > 1:
                same_weights(module)
        self.g_ab, self.g_ba = self.generators[0], self.generators[-1]
        opt_g = torch.optim.AdamW(self.g_params(), lr=t.lr_g, betas=(0.9, 0.98), weight_decay=0.01)
        opt_d = torch.optim.AdamW(self.critic.parameters(), lr=t.lr_d, betas=(0.5, 0.999), weight_decay=0.01)
        self.opt_g, self.opt_d = accelerator.prepare(opt_g, opt_d)
        self.state = TrainState()
        self.saved_step: int | None = None         # the step of the checkpoint in state/ (None: none yet)
        adv_scale = t.lr_g_adv / t.lr_g if t.lr_g_adv > 0 else 1.0
        g_warmup = warmup(t.warmup_steps)
        self.starts = {"ae": 0, "boot": t.ae_steps, "d": t.ae_steps + t.bootstrap_steps,
                       "adv": t.ae_steps + t.bootstrap_steps + t.d_steps}          # first step of each phase
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(
            # called after each G update: every G update after the last bootstrap step is adversarial
            opt_g, lambda s: g_warmup(s) * (adv_scale if self.state.step + 1 >= self.starts["d"] else 1.0))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, warmup(t.d_warmup_steps))
        self.baseline = EMABaseline(t.ema_decay)
        for obj in [*self.generators, self.critic, self.sched_g, self.sched_d, self.state, self.baseline,
                    *([self.latent] if self.latent else [])]:
            accelerator.register_for_checkpointing(obj)
        self.train_ids = train_ids
        self.pairs = pairs or {}                   # target domain -> [(source ids, target ids)], both ways
        # config.check refuses these without train.bootstrap; what is left to see is the data itself
        if (t.bootstrap_steps or t.lambda_pairs) and not any(self.pairs.values()):
            raise ConfigError("train.bootstrap_steps / train.lambda_pairs train on mined pairs, and the trainer was "
                              "given none: no pair was mined, or the pair filters kept none (<run>/pairs/kept.json)")
        self.style = style.to(accelerator.device).eval().requires_grad_(False) if style is not None else None
        if t.style_reward and self.style is None:
            raise ConfigError("train.style_reward needs the style classifier (train.style_steps > 0)")
        self.total = self.starts["adv"] + t.adv_steps
        self.noise_rng = random.Random()           # re-seeded every step (seed_noise)
        self.evaluation = DevEvaluation(self)

    def phases(self, batches, pair_batches) -> dict:
        """Each phase's object by name, over the trainer's batch streams (pair_batches: mined pairs, or None)."""
        adversarial = Adversarial(self, pair_batches, batches)
        return {"ae": Autoencoder(self), "boot": Bootstrap(self, pair_batches),
                "d": DiscriminatorPretraining(self), "adv": adversarial}

    def g_params(self) -> list:
        """What the generator's optimizer updates: the generators and, with train.latent_adv, the latent critic."""
        return [p for m in [*self.generators, *([self.latent] if self.latent else [])] for p in m.parameters()]

    def use_crosslingual(self, xl: CrossLingual) -> None:
        """Start the token embeddings from the aligned piece vectors (train.xl_init_embeddings) and keep
        the word-by-word tables for the first back-translation steps."""
        if self.cfg.train.xl_init_embeddings:
            for g in self.generators:
                weight = g.model.get_input_embeddings().weight
                rows, has = xl.embedding_init(weight.size(0), g.model.config.init_std)
                if rows.size(1) != weight.size(1):
                    raise ConfigError(f"cross-lingual vectors have {rows.size(1)} dims, the generator {weight.size(1)}")
                with torch.no_grad():
                    weight[has] = rows[has].to(weight.dtype)
        vocab = self.tok.vocab_size
        self.wordbyword = {(s, t): xl.table(s, t, vocab).to(self.acc.device)
                           for s, t in [(self.a, self.b), (self.b, self.a)]}

    def phase(self, step: int) -> str:
        return next(name for name in ("adv", "d", "boot", "ae") if step >= self.starts[name])

    # ---------------------------------------------------------------- checkpoints, logs
    def save_checkpoint(self) -> None:
        """Resume state (accelerate save_state) and the inference files, each swapped in atomically."""
        tmp = self.run_dir / "state.tmp"
        if self.acc.is_main_process:       # what a process killed while saving left
            shutil.rmtree(tmp, ignore_errors=True)
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            checkpoint.replace_dir(tmp, self.run_dir / "state")
            # At once, not after the barrier below: a peer lost meanwhile fails that barrier, and the line
            # naming what is kept must name this step, which state/ now holds (it named the step before, and
            # the relaunch resumed later than it said: tests/test_distributed.py under load).
            self.saved_step = self.state.step
            if not self.evaluation.keeps_best() or not (self.run_dir / "best.json").exists():
                checkpoint.save_models(self.run_dir, self.cfg, self.generators, self.critic)
        self.acc.wait_for_everyone()
        self.saved_step = self.state.step

    def load_checkpoint(self) -> None:
        state = self.run_dir / "state"
        if self.acc.is_main_process:
            checkpoint.recover_dir(state)
        self.acc.wait_for_everyone()
        if not state.is_dir():
            raise checkpoint.CheckpointError(f"{self.run_dir} has no checkpoint to resume from (no state/ dir)")
        try:
            self.acc.load_state(str(state))
        except Exception as err:  # noqa: BLE001 - any failure means this checkpoint cannot be used
            raise checkpoint.CheckpointError(f"checkpoint {state} is unreadable ({type(err).__name__}: {err}); "
                                             f"delete it to start over") from err
        self.saved_step = self.state.step

    def apply_config_lrs(self) -> None:
        """After loading a checkpoint: the optimizers and schedulers come back with the learning rates the run
        started with; the config's lr_g / lr_d (overrides given on --resume included) replace them, at the
        same point of their schedules."""
        t = self.cfg.train
        for opt, sched, lr in ((self.opt_g, self.sched_g, t.lr_g), (self.opt_d, self.sched_d, t.lr_d)):
            sched.base_lrs = [lr] * len(opt.param_groups)
            for group, factor in zip(opt.param_groups, sched.lr_lambdas):
                group["initial_lr"], group["lr"] = lr, lr * factor(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in opt.param_groups]

    def log(self, values: dict, phase: str) -> None:
        if not self.acc.is_main_process:
            return
        row = {"step": self.state.step, "phase": phase, "time": round(time.time(), 1), **values}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self.acc.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=self.state.step)

    # ---------------------------------------------------------------- loop
    def fit(self) -> None:
        t = self.cfg.train
        bar = tqdm(total=self.total, initial=self.state.step, disable=not self.acc.is_main_process,
                   desc="train", dynamic_ncols=True)
        running: dict[str, list[float]] = {}
        if self.total == 0:            # nothing to train (e.g. a pretrained generator used as it starts)
            self.save_checkpoint()
        batches = self.batches()
        phases = self.phases(batches, self.batches(self.pairs) if self.pairs else None)
        try:
            while self.state.step < self.total:
                phase = self.phase(self.state.step)
                seqs_a, seqs_b = next(batches)
                self.seed_noise()
                with self.acc.accumulate(*self.generators, self.critic):
                    logs = phases[phase].step(seqs_a, seqs_b)
                if any(math.isnan(v) for v in logs.values()):
                    raise FloatingPointError(f"NaN loss at step {self.state.step} ({phase}): {logs}")
                self.state.step += 1
                bar.update(1)
                for k, v in logs.items():
                    running.setdefault(k, []).append(v)
                if self.state.step % t.log_every == 0 or self.state.step == self.total:
                    means = {f"train/{k}": sum(v) / len(v) for k, v in running.items()}
                    running.clear()
                    if phase == "adv":
                        means["train/tau"] = self.tau()
                    means["train/lr_g"], means["train/lr_d"] = self.sched_g.get_last_lr()[0], self.sched_d.get_last_lr()[0]
                    self.log(means, phase)
                    short = {k.split("/")[1]: f"{v:.3g}" for k, v in means.items()
                             if k.split("/")[1] in ("g_loss", "d_loss", "fool_neg", "fool_pos", "tau")}
                    bar.set_postfix(phase=phase, **short)
                if self.evaluation.eval_due(phase):
                    if self.acc.is_main_process:
                        tqdm.write(f"step {self.state.step} ({phase}):")
                        results = self.evaluation.evaluate()
                        self.log(results, phase)
                        if self.evaluation.keeps_best() and phase in ("boot", "adv"):
                            self.evaluation.keep_if_best(results)
                    self.acc.wait_for_everyone()
                if t.bootstrap_steps and self.state.step == self.starts["d"] and self.acc.is_main_process:
                    checkpoint.snapshot(self.run_dir, "after-bootstrap", self.cfg, self.generators, self.critic)
                if self.state.step % t.ckpt_every == 0 or self.state.step == self.total:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            self.save_checkpoint()
            raise
        finally:
            bar.close()            # before any error line: not on the bar's line
