"""The training loop on Hugging Face Accelerate.

Phases, by global step:
    [0, ae_steps)                    denoising autoencoder: G learns to rewrite a sentence into its own domain
    [.., + bootstrap_steps)          bootstrap: maximum likelihood on mined pseudo-parallel pairs (bootstrap.py)
    [.., + d_steps)                  discriminator pretraining on G's transfers
    [.., + adv_steps)                adversarial cycle: d_per_g D steps, then one G step

Each step draws an unaligned batch from each domain. Gradients are averaged across processes
explicitly (`_average_gradients`) instead of through DDP: GAN training calls generator methods other
than `forward` (the sampling loop), which DDP's forward hooks would not see.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from . import checkpoint, metrics
from .config import Config, ConfigError
from .crosslingual import CrossLingual
from .data import DomainBatches, add_noise, pad
from .evaluate import BLEU_TOKENIZE, bleu
from .losses import (
    ESTIMATORS,
    SAMPLE_MODE,
    AdvOptions,
    EMABaseline,
    fixed_baseline,
    discounted_returns,
    discriminator_loss,
    reconstruction_loss,
    sequence_logprob,
)
from .models.generator import Generator, straight_through_one_hot
from .models.judge import NgramJudge
from .models.latent import LatentCritic, latent_losses
from .rewards import StyleClassifier, combine, style_reward
from .tokenizer import EOS, Tokenizer
from .transfer import transfer_normalized


class TrainState:
    """The step counter, saved with the checkpoint so a resumed run continues the same count."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


class Side(NamedTuple):
    """One direction's rows in a Stack: sentences of domain index src, rewritten into tgt."""
    src: int
    tgt: int
    rows: slice


@dataclass
class Stack:
    """The rows that one generator pass handles (Trainer.stacks): one direction's batch, or both
    directions' batches at once (a shared generator with train.fuse_directions), each row with its own
    domain tokens. Losses stay means per side."""
    sides: list[Side]
    seqs: list[list[int]]
    real: torch.Tensor              # (N, T) ids, EOS included, PAD after
    mask: torch.Tensor              # (N, T)
    to: torch.Tensor                # (N,) the domain token each row is rewritten into (its side's tgt)
    back: torch.Tensor              # (N,) the domain token of each row's own domain (its side's src)
    g: Generator                    # writes the transfers
    g_back: Generator               # writes the rows' own domain: self-reconstruction and the cycle
    want: torch.Tensor | None = None    # (N,) words asked of each transfer (length control)


def warmup(steps: int):
    return lambda step: min(1.0, (step + 1) / max(1, steps))


class Trainer:
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
        self.g_ab, self.g_ba = self.generators[0], self.generators[-1]
        opt_g = torch.optim.AdamW(self.g_params(), lr=t.lr_g, betas=(0.9, 0.98), weight_decay=0.01)
        opt_d = torch.optim.AdamW(self.critic.parameters(), lr=t.lr_d, betas=(0.5, 0.999), weight_decay=0.01)
        self.opt_g, self.opt_d = accelerator.prepare(opt_g, opt_d)
        self.state = TrainState()
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
        if (t.bootstrap_steps or t.lambda_pairs) and not self.pairs:
            raise ConfigError("train.bootstrap_steps / train.lambda_pairs need mined pairs: set train.bootstrap")
        self.style = style.to(accelerator.device).eval().requires_grad_(False) if style is not None else None
        if t.style_reward and self.style is None:
            raise ConfigError("train.style_reward needs the style classifier (train.style_steps > 0)")
        self.total = self.starts["adv"] + t.adv_steps
        self.noise_rng = random.Random()           # re-seeded every step (seed_noise)

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

    # ---------------------------------------------------------------- batches
    def batches(self, source=None):
        """Endless (batch of a, batch of b); re-seeded from the step so a resumed run draws fresh batches.
        `source`: {domain: items} (default: the training sentences; the mined pairs by target domain)."""
        t = self.cfg.train
        source = source or self.train_ids
        seed = t.seed + self.state.step
        key = len if source is self.train_ids else (lambda pair: len(pair[0]))
        streams = [iter(DomainBatches(source[d], t.batch_size, self.cfg.data.bucket_batches, seed + i,
                                      self.acc.process_index, self.acc.num_processes, key))
                   for i, d in enumerate((self.a, self.b))]
        while True:
            yield [next(s) for s in streams]

    def seed_noise(self) -> None:
        """The denoising noise of a step is a function of (seed, process, step) alone, so a resumed run
        noises a batch as the uninterrupted run would have (its batches are drawn afresh, see `batches`)."""
        self.noise_rng.seed(f"{self.cfg.train.seed}/{self.acc.process_index}/{self.state.step}")

    def to_device(self, seqs):
        ids, mask = pad(seqs)
        return ids.to(self.acc.device), mask.to(self.acc.device)

    def noisy(self, seqs: list[list[int]]) -> list[list[int]]:
        """Denoising inputs: words dropped, blanked and locally shuffled; with length control, a share
        (data.length_mix) gets the batch's next sentence appended: the target is still the first alone."""
        d = self.cfg.data
        noised = add_noise(seqs, d.word_drop, d.word_blank, d.shuffle_k, self.noise_rng)
        if self.controls_length and d.length_mix > 0:
            noised = [(s + seqs[(i + 1) % len(seqs)])[: d.max_len] if self.noise_rng.random() < d.length_mix else s
                      for i, s in enumerate(noised)]
        return noised

    def tau(self) -> float:
        """Temperature, annealed geometrically from tau_start to tau_end over the adversarial phase."""
        t = self.cfg.train
        progress = min(1.0, max(0, self.state.step - self.starts["adv"]) / max(1, t.adv_steps))
        return t.tau_start * (t.tau_end / t.tau_start) ** progress

    # ---------------------------------------------------------------- length control
    def words(self, ids, mask):
        """Words per row (pieces that begin with "▁"), (B,); None for tasks without length control."""
        if not self.controls_length:
            return None
        return (self.g_ab.word_start[ids] & mask.bool()).sum(1)      # the generator's (V,) word-start table

    def wanted(self, real_other, mask_other, n: int):
        """Lengths asked of n transfers into the other domain: drawn from that domain's real batch, so
        the requests follow its length distribution. None without length control."""
        lengths = self.words(real_other, mask_other)
        if lengths is None:
            return None
        return lengths[torch.randint(len(lengths), (n,), device=lengths.device)]

    def budget(self, stack: Stack, per_source: int = 1) -> torch.Tensor:
        """Decoding budget of each row's transfer (N,): per_source x its side's longest sentence + 4, or
        twice the most words asked of its side + 4 (length control); at most train.max_gen_len."""
        out = torch.empty(len(stack.seqs), dtype=torch.long, device=stack.real.device)
        for side in stack.sides:
            if stack.want is None:
                n = per_source * int(stack.mask[side.rows].sum(1).max()) + 4
            else:
                n = 2 * int(stack.want[side.rows].max()) + 4
            out[side.rows] = min(self.cfg.train.max_gen_len, n)
        return out

    # ---------------------------------------------------------------- batches of both directions
    def stacks(self, parts: list[tuple[int, int, list]]) -> list[Stack]:
        """[(source domain index, target domain index, id lists)] -> the Stacks of one step. A shared
        generator with train.fuse_directions runs all parts as one batch, each row with its own domain
        tokens: half the passes, twice as large, the same losses (tests/test_training.py); otherwise one
        Stack per part."""
        fuse = self.cfg.train.fuse_directions and len(self.generators) == 1
        out, device = [], self.acc.device
        for group in ([parts] if fuse else [[p] for p in parts]):
            sides, seqs, to, back = [], [], [], []
            for src, tgt, part in group:
                sides.append(Side(src, tgt, slice(len(seqs), len(seqs) + len(part))))
                seqs, to, back = seqs + list(part), to + [self.dom_ids[tgt]] * len(part), back + [self.dom_ids[src]] * len(part)
            first = group[0][0]
            out.append(Stack(sides, seqs, *self.to_device(seqs), torch.tensor(to, device=device),
                             torch.tensor(back, device=device), self.generators[0 if first == 0 else -1],
                             self.generators[-1 if first == 0 else 0]))
        return out

    def transfer_stacks(self, seqs_a, seqs_b) -> list[Stack]:
        """The real batches of a (to b) and b (to a) as Stacks, with the words asked of their transfers
        under length control (drawn from the other domain's batch: requests follow its lengths)."""
        stacks = self.stacks([(0, 1, seqs_a), (1, 0, seqs_b)])
        if self.controls_length:
            (ids_a, mask_a), (ids_b, mask_b) = self.to_device(seqs_a), self.to_device(seqs_b)
            want = torch.cat([self.wanted(ids_b, mask_b, len(seqs_a)), self.wanted(ids_a, mask_a, len(seqs_b))])
            start = 0
            for stack in stacks:
                stack.want, start = want[start:start + len(stack.seqs)], start + len(stack.seqs)
        return stacks

    # ---------------------------------------------------------------- losses
    def self_reconstruction(self, stack: Stack) -> torch.Tensor:
        """Logits (N, T, V) of L_self = NLL(real | noise(real), to its own domain): the denoising
        autoencoder term, written by g_back; `side_nll` gives each side's loss."""
        noised = [s for side in stack.sides for s in self.noisy(stack.seqs[side.rows])]
        return stack.g_back(*self.to_device(noised), stack.real, stack.back, self.words(stack.real, stack.mask))

    def side_nll(self, logits: torch.Tensor, stack: Stack, side: Side) -> torch.Tensor:
        """Token NLL of one side's real sentences under teacher-forced logits (N, T, V) of its stack."""
        rows = side.rows
        return reconstruction_loss(logits[rows], stack.real[rows], stack.mask[rows], self.cfg.train.label_smoothing)[0]

    def fakes(self, stack: Stack, mode: str):
        """G(real -> to) of every row as a Sample (of the words asked, with length control). Under
        `feedback: hard` (and always without a graph) the decoding loop runs without autograd and
        `Generator.relax` rebuilds the differentiable parts in one teacher-forced pass; `feedback: soft`
        backpropagates through the loop itself (Style Transformer).
        """
        t, g = self.cfg.train, stack.g
        max_len = self.budget(stack)
        if t.feedback == "soft" or mode == "greedy":
            return g.sample(stack.real, stack.mask, stack.to, mode=mode, tau=self.tau(), max_len=max_len,
                            straight_through=t.straight_through, words=stack.want)
        decode_mode, decode_tau = {"soft": ("greedy", 1.0), "gumbel": ("multinomial", 1.0),
                                   "multinomial": ("multinomial", self.tau())}[mode]
        # Dropout off for both passes: the relaxed outputs / log-probs must be those of the very
        # distribution the tokens were drawn from (on-policy REINFORCE, consistent Gumbel noise).
        g.eval()
        try:
            with torch.no_grad():
                drawn = g.sample(stack.real, stack.mask, stack.to, mode=decode_mode, tau=decode_tau, max_len=max_len,
                                 words=stack.want)
            return g.relax(stack.real, stack.mask, stack.to, drawn, mode, tau=self.tau(),
                           straight_through=t.straight_through, words=stack.want)
        finally:
            g.train()

    # ---------------------------------------------------------------- steps
    def _average_gradients(self, params) -> None:
        if self.acc.num_processes > 1 and self.acc.sync_gradients:
            for p in params:
                if p.requires_grad:
                    grad = p.grad if p.grad is not None else torch.zeros_like(p)
                    p.grad = self.acc.reduce(grad, reduction="mean")

    def _update(self, loss, optimizer, scheduler, params) -> None:
        self.acc.backward(loss)
        self._average_gradients(params)
        if self.acc.sync_gradients and self.cfg.train.grad_clip > 0:
            self.acc.clip_grad_norm_(params, self.cfg.train.grad_clip)
        optimizer.step()
        if self.acc.sync_gradients:
            scheduler.step()
        optimizer.zero_grad()

    def d_step(self, fakes: dict) -> dict:
        """L_D = sum over domains y of discriminator_loss(real: [real_y, same_y], fake: [fake_y]).

        `fakes[y]` holds (real_y, same_y, fake_y) as produced by the G step, detached: real text, G's
        teacher-forced rewrite of real_y into y (the same form as the fakes: soft distributions or ids),
        and the transfers G(real_x -> y).
        """
        domains = (self.a, self.b)
        loss, logs = 0.0, {}
        with self.acc.autocast():
            for y, (real, same, fake) in fakes.items():
                real_logp, _ = self.critic.log_probs(real[0], y)
                same_logp, _ = self.critic.log_probs(same[0], y)
                _, fake_logp = self.critic.log_probs(fake[0], y)
                part, part_logs = discriminator_loss([(real_logp, real[1]), (same_logp, same[1])],
                                                     [(fake_logp, fake[1])], dense=self.cfg.train.estimator == "reinforce")
                loss = loss + part
                logs.update({f"{k}_{domains[y]}": v for k, v in part_logs.items()})
        self._update(loss, self.opt_d, self.sched_d, list(self.critic.parameters()))
        logs["d_loss"] = loss.item()
        return logs

    def same_form(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) -> text of the real domain in the form the fakes take."""
        t = self.cfg.train
        if t.estimator == "soft":
            probs = (logits.float() / self.tau()).softmax(-1)
            return straight_through_one_hot(probs, probs.argmax(-1)) if t.straight_through else probs
        if t.estimator == "gumbel":
            return torch.nn.functional.gumbel_softmax(logits.float(), tau=self.tau(), hard=t.straight_through)
        return ids

    @torch.no_grad()
    def sample_fakes(self, seqs_a, seqs_b) -> dict:
        """Fakes for D steps outside a G step (D pretraining, extra D steps): sampled, no gradient."""
        out: dict = {}
        for stack in self.transfer_stacks(seqs_a, seqs_b):
            fake = self.fakes(stack, SAMPLE_MODE[self.cfg.train.estimator])
            with self.acc.autocast():
                same_logits = stack.g_back(stack.real, stack.mask, stack.real, stack.back,
                                           self.words(stack.real, stack.mask))
            for side in stack.sides:
                part, real, mask = fake.select(side.rows), stack.real[side.rows], stack.mask[side.rows]
                out.setdefault(side.tgt, [None, None, None])[2] = (part.inputs(), part.mask)
                out.setdefault(side.src, [None, None, None])[:2] = [
                    (real, mask), (self.same_form(same_logits[side.rows], real), mask)]
        return out

    def g_step(self, seqs_a, seqs_b, pair_batch=None) -> tuple[dict, dict]:
        """L_G = lambda_self * L_self + lambda_cycle * L_cycle + lambda_adv * L_adv (+ lambda_pairs * L_pairs),
        summed over directions:

            L_self  = NLL(real_a | noise(real_a), to a)              (denoising autoencoder)
            L_cycle = NLL(real_a | G_ba(fake_b), to a),  fake_b = G_ab(real_a, to b)   (and b -> a -> b)
                      (fake_b's ids, i.e. back-translation, unless cycle_through_fake)
            L_adv   = ESTIMATORS[estimator](fake_b, D_b)              (losses.py)
            L_pairs = NLL on a batch of mined pairs (pairs_nll), when train.lambda_pairs > 0

        D is frozen here; under `soft`/`gumbel` gradients reach G_ab through D and through the cycle.
        Each term is a mean per direction; the generator passes run on Stacks (both directions at once
        when fused). Returns the logs and the detached fakes for the D step that follows (as in CycleGAN).
        """
        t, domains = self.cfg.train, self.cfg.data.domains
        self.critic.requires_grad_(False)
        fakes_for_d: dict = {}
        with self.acc.autocast():
            l_self, l_cycle, l_adv, logs = 0.0, 0.0, 0.0, {}
            for stack in self.transfer_stacks(seqs_a, seqs_b):
                self_logits = self.self_reconstruction(stack)
                if t.lambda_adv == 0:   # no adversary: denoising + on-the-fly back-translation (Lample et al. 2018)
                    fake, rec_logits = None, self.back_translation(stack)
                else:
                    fake = self.fakes(stack, SAMPLE_MODE[t.estimator])
                    cycle_input = fake.inputs() if t.cycle_through_fake else fake.ids
                    rec_logits = stack.g_back(cycle_input, fake.mask, stack.real, stack.back,
                                              self.words(stack.real, stack.mask))
                    greedy = t.estimator == "reinforce" and t.baseline == "greedy"
                    baselines = self.greedy_baselines(stack) if greedy else [self.baseline] * len(stack.sides)
                for side, baseline in zip(stack.sides, baselines if fake is not None else stack.sides):
                    real, mask, src, tgt = stack.real[side.rows], stack.mask[side.rows], domains[side.src], domains[side.tgt]
                    rec, cyc = self.side_nll(self_logits, stack, side), self.side_nll(rec_logits, stack, side)
                    l_self, l_cycle = l_self + rec, l_cycle + cyc
                    logs.update({f"self_{src}": rec.item(), f"cycle_{src}": cyc.item()})
                    if fake is None:
                        continue
                    part = fake.select(side.rows)
                    opts = AdvOptions(gamma=t.gamma, baseline=baseline)
                    if t.estimator == "reinforce":
                        opts.seq_reward = self.sequence_reward(part, rec_logits[side.rows].detach(), real, mask,
                                                               side.tgt, logs)
                    adv, adv_logs = ESTIMATORS[t.estimator](part, lambda x, d=side.tgt: self.critic.log_probs(x, d), opts)
                    l_adv = l_adv + adv
                    logs.update({f"{k}_{tgt}": v for k, v in adv_logs.items()})
                    fakes_for_d.setdefault(side.tgt, [None, None, None])[2] = (part.inputs().detach(), part.mask)
                    fakes_for_d.setdefault(side.src, [None, None, None])[:2] = [
                        (real, mask), (self.same_form(self_logits[side.rows].detach(), real), mask)]
            loss = self.lambda_self() * l_self + t.lambda_cycle * l_cycle + t.lambda_adv * l_adv
            l_latent, latent_logs = self.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
            if pair_batch is not None and t.lambda_pairs > 0:
                l_pairs, pair_logs = self.pairs_nll(pair_batch)
                loss = loss + t.lambda_pairs * l_pairs
                logs.update(pair_logs)
        self._update(loss, self.opt_g, self.sched_g, self.g_params())
        self.critic.requires_grad_(True)
        logs["g_loss"] = loss.item()
        return logs, fakes_for_d

    def lambda_self(self) -> float:
        """The denoising weight of this adversarial step: lambda_self, or with lambda_self_end >= 0 the linear
        interpolation lambda_self + (lambda_self_end - lambda_self) * progress through the adversarial phase."""
        t = self.cfg.train
        if t.lambda_self_end < 0:
            return t.lambda_self
        progress = min(1.0, max(0, self.state.step - self.starts["adv"]) / max(1, t.adv_steps))
        return t.lambda_self + (t.lambda_self_end - t.lambda_self) * progress

    def latent_term(self, seqs_a, seqs_b) -> tuple[torch.Tensor | float, dict]:
        """train.latent_adv's term on the encoder states of the real batches (models/latent.py: the critic's
        loss and the encoder's adversarial loss in one), summed over the step's Stacks; 0 when off."""
        t = self.cfg.train
        if self.latent is None:
            return 0.0, {}
        total, parts = 0.0, []
        for stack in self.stacks([(0, 1, seqs_a), (1, 0, seqs_b)]):
            states = stack.g.encode(stack.real, stack.mask).last_hidden_state           # (N, S, H)
            domain = torch.empty(len(stack.seqs), dtype=torch.long, device=states.device)
            for side in stack.sides:
                domain[side.rows] = side.src
            part, part_logs = latent_losses(self.latent, states, stack.mask, domain, t.latent_loss, t.latent_adv)
            total, parts = total + part, parts + [part_logs]
        return total, {k: sum(p[k] for p in parts) / len(parts) for k in parts[0]}

    def back_translation(self, stack: Stack) -> torch.Tensor:
        """Logits (N, T, V) of NLL(real | G_back(greedy G(real -> tgt)) -> src): the forward translation is
        decoded greedily without a graph (dropout off), so only the back direction learns from this pair.
        In the first train.bt_wordbyword_steps steps the forward translation is word by word instead
        (tables from the cross-lingual embeddings): a first model that does not just copy its input
        (Lample et al. 2018)."""
        t, domains = self.cfg.train, self.cfg.data.domains
        if self.wordbyword and self.state.step < self.starts["adv"] + t.bt_wordbyword_steps:
            fake_ids = torch.cat([self.wordbyword[(domains[s.src], domains[s.tgt])][stack.real[s.rows]]
                                  for s in stack.sides])
            fake_mask = stack.mask
        else:
            stack.g.eval()
            try:
                with torch.no_grad():
                    fake = stack.g.sample(stack.real, stack.mask, stack.to, mode="greedy",
                                          max_len=self.budget(stack, per_source=2), words=stack.want)
            finally:
                stack.g.train()
            fake_ids, fake_mask = fake.ids, fake.mask
        return stack.g_back(fake_ids, fake_mask, stack.real, stack.back, self.words(stack.real, stack.mask))

    def sequence_reward(self, fake, rec_logits, real, mask, tgt: int, logs: dict | None = None):
        """REINFORCE's sentence reward (B,) for the transfers `fake` of `real` into domain index tgt:
        rewards.combine of the style classifier's p(tgt | fake) and the cycle's mean log p(real | fake)
        (train.style_reward, train.cycle_reward, train.reward_mix); None when both weights are 0."""
        t = self.cfg.train
        if not (t.cycle_reward or t.style_reward):
            return None
        content = sequence_logprob(rec_logits, real, mask)                       # (B,)
        r_style = (style_reward(self.style(fake.ids, fake.mask), tgt) if t.style_reward
                   else torch.zeros_like(content))
        if logs is not None:
            name = self.cfg.data.domains[tgt]
            logs[f"r_style_{name}"], logs[f"r_content_{name}"] = r_style.mean().item(), content.exp().mean().item()
        return combine(r_style, content, t.style_reward, t.cycle_reward, t.reward_mix)

    def greedy_baselines(self, stack: Stack) -> list:
        """Self-critical baselines (Rennie et al. 2017), one per side: the returns the greedy decode of the
        same input gets (with the same sentence reward as the samples when train.cycle_reward or
        train.style_reward is set)."""
        t = self.cfg.train
        out = []
        with torch.no_grad():
            greedy = self.fakes(stack, "greedy")
            seq_rewards = t.cycle_reward or t.style_reward
            if seq_rewards:
                rec_logits = stack.g_back(greedy.ids, greedy.mask, stack.real, stack.back,
                                          self.words(stack.real, stack.mask))
            for side in stack.sides:
                part = greedy.select(side.rows)
                real_logp, _ = self.critic.log_probs(part.ids, side.tgt)
                returns = discounted_returns(real_logp.exp(), part.mask, t.gamma)
                if seq_rewards:
                    seq = self.sequence_reward(part, rec_logits[side.rows], stack.real[side.rows],
                                               stack.mask[side.rows], side.tgt)
                    returns = returns + seq[:, None] * part.mask.to(returns.dtype)
                out.append(fixed_baseline(returns))
        return out

    def pairs_nll(self, pair_batch) -> tuple[torch.Tensor, dict]:
        """L_pairs = sum over domains y of NLL(t | s, to y) on a batch of mined pairs (s, t) whose target
        t is in y: real sentences of the other domain with their pseudo targets, and pseudo sources with
        the real sentences they were mined from (the pairs both ways, see bootstrap_pairs)."""
        loss, logs = 0.0, {}
        for stack in self.stacks([(1 - y, y, [p[0] for p in batch]) for y, batch in enumerate(pair_batch)]):
            tgt, tgt_mask = self.to_device([p[1] for side in stack.sides for p in pair_batch[side.tgt]])
            logits = stack.g(stack.real, stack.mask, tgt, stack.to, self.words(tgt, tgt_mask))
            for side in stack.sides:
                rows = side.rows
                part, _ = reconstruction_loss(logits[rows], tgt[rows], tgt_mask[rows], self.cfg.train.label_smoothing)
                loss = loss + part
                logs[f"pairs_{self.cfg.data.domains[side.tgt]}"] = part.item()
        return loss, logs

    def denoising(self, seqs_a, seqs_b) -> tuple[torch.Tensor, dict]:
        """L_self summed over both domains, and its logs."""
        loss, logs = 0.0, {}
        for stack in self.transfer_stacks(seqs_a, seqs_b):
            logits = self.self_reconstruction(stack)
            for side in stack.sides:
                part = self.side_nll(logits, stack, side)
                loss = loss + part
                logs[f"self_{self.cfg.data.domains[side.src]}"] = part.item()
        return loss, logs

    def boot_step(self, seqs_a, seqs_b, pair_batch) -> dict:
        """Bootstrap phase: L = L_pairs + bootstrap_self * L_self (the denoising term keeps G able to rebuild
        a sentence, which the cycle of the adversarial phase needs)."""
        t = self.cfg.train
        with self.acc.autocast():
            loss, logs = self.pairs_nll(pair_batch)
            if t.bootstrap_self > 0:
                part, self_logs = self.denoising(seqs_a, seqs_b)
                loss, logs = loss + t.bootstrap_self * part, {**logs, **self_logs}
            l_latent, latent_logs = self.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
        self._update(loss, self.opt_g, self.sched_g, self.g_params())
        logs["g_loss"] = loss.item()
        return logs

    def ae_step(self, seqs_a, seqs_b) -> dict:
        """Phase 1: L_self summed over both domains."""
        with self.acc.autocast():
            loss, logs = self.denoising(seqs_a, seqs_b)
            l_latent, latent_logs = self.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
        self._update(loss, self.opt_g, self.sched_g, self.g_params())
        logs["g_loss"] = loss.item()
        return logs

    def eval_due(self, phase: str) -> bool:
        """After this step: the dev evaluation? Every eval_every steps (ae_eval_every in the autoencoder and
        bootstrap phases), none while D pretrains, and always at the end of the autoencoder phase, of the
        bootstrap phase and of the run."""
        t, step = self.cfg.train, self.state.step
        if step in (t.ae_steps, self.starts["d"], self.total):
            return True
        every = {"ae": t.ae_eval_every or t.eval_every, "boot": t.ae_eval_every or t.eval_every, "d": 0,
                 "adv": t.eval_every}[phase]
        return every > 0 and step % every == 0

    def phase(self, step: int) -> str:
        return next(name for name in ("adv", "d", "boot", "ae") if step >= self.starts[name])

    # ---------------------------------------------------------------- evaluation, checkpoints
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev transfers in both directions: style accuracy by the run's n-gram judge (dev/acc_*) and by the
        reward's style classifier when the run has one (dev/style_acc_*), self-BLEU, samples."""
        for g in self.generators:
            g.eval()
        scheme = self.cfg.data.normalize
        results = {}
        n = self.cfg.train.eval_lines
        for src, tgt, g in [(self.a, self.b, self.g_ab), (self.b, self.a, self.g_ba)]:
            paired = self.dev_pairs.get(f"{src}2{tgt}")       # dev sources with references (translation, summaries)
            inputs = paired.inputs[:n] if paired else self.dev_texts[src][:n]
            words = [self.default_words[tgt]] * len(inputs) if self.controls_length else None
            stats: dict = {}
            outputs = transfer_normalized(g, self.tok, inputs, tgt, max_len=self.cfg.train.max_gen_len, words=words,
                                          stats=stats)
            tokenize = self.cfg.eval.bleu_tokenize.get(tgt, BLEU_TOKENIZE.get(scheme, "13a"))
            if self.judge is not None:
                results[f"dev/acc_{src}2{tgt}"] = self.judge.accuracy(outputs, tgt)
            if self.style is not None:
                results[f"dev/style_acc_{src}2{tgt}"] = self.style_accuracy(outputs, tgt)
            if paired:
                references = [r[:n] for r in paired.references]
                results[f"dev/bleu_{src}2{tgt}"] = bleu(outputs, references, tokenize).score
                if self.cfg.eval.rouge:
                    results[f"dev/rougeL_{src}2{tgt}"] = metrics.rouge(outputs, references[0])["rougeL"]
            else:
                results[f"dev/self_bleu_{src}2{tgt}"] = bleu(outputs, [inputs], tokenize).score
            if words is not None:          # output length, and the share the cap cut to the request
                results[f"dev/words_{src}2{tgt}"] = metrics.mean_words(outputs)
                results[f"dev/cut_{src}2{tgt}"] = 100 * stats.get("cut", 0) / max(1, len(inputs))
            for x, y in list(zip(inputs, outputs))[:2]:
                tqdm.write(f"  [{src}->{tgt}] {x}\n         -> {y}")
        tqdm.write("  " + "  ".join(f"{k.split('/')[1]}={v:.1f}" for k, v in results.items()))
        for g in self.generators:
            g.train()
        return results

    def style_accuracy(self, texts: list[str], domain: str) -> float:
        """Share (%) of normalized `texts` that the reward's style classifier puts in `domain`."""
        ids = [x or [EOS] for x in self.tok.encode(texts, self.cfg.data.max_len)]
        probs = self.style.probabilities(ids, self.acc.device)                  # (N, k)
        return 100.0 * float((probs.argmax(-1) == self.cfg.data.domains.index(domain)).float().mean())

    def save_checkpoint(self) -> None:
        """Resume state (accelerate save_state) and the inference files, each swapped in atomically."""
        tmp = self.run_dir / "state.tmp"
        self.acc.save_state(str(tmp))
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            checkpoint.replace_dir(tmp, self.run_dir / "state")
            if not self.keeps_best() or not (self.run_dir / "best.json").exists():
                checkpoint.save_models(self.run_dir, self.cfg, self.generators, self.critic)
        self.acc.wait_for_everyone()

    def keeps_best(self) -> bool:
        return self.cfg.train.keep_best

    def dev_score(self, results: dict) -> tuple[float, str, str] | None:
        """The model-selection score of a dev evaluation, its formula and what judged style: with dev
        references (summaries, translations) the mean dev ROUGE-L (eval.rouge) or BLEU against them;
        without, sqrt(mean style ACC * mean self-BLEU), the ACC of train.select_by's classifier (`style`:
        the reward's style classifier, which the evaluator never uses; `judge`: the run's n-gram judge, the
        evaluator's ACC judge's twin). None when the evaluation lacks its parts."""
        def mean(prefix):
            values = [v for k, v in results.items() if k.startswith(prefix)]
            return sum(values) / len(values) if values else None

        reference = mean("dev/rougeL_") if self.cfg.eval.rouge else mean("dev/bleu_")
        if reference is not None:
            metric = "dev ROUGE-L" if self.cfg.eval.rouge else "dev BLEU"
            return reference, metric, f"{metric} against the dev references (no style judge)"
        if self.cfg.train.select_by == "style":
            acc, formula = mean("dev/style_acc_"), "sqrt(style-classifier ACC * self-BLEU)"
            selector = "the reward's style classifier (style.safetensors), which the evaluator does not use"
        else:
            acc, formula = mean("dev/acc_"), "sqrt(ACC * self-BLEU)"
            selector = "the run's n-gram judge (judge.pt), the test judge's twin: test ACC is optimistic"
        self_bleu = mean("dev/self_bleu_")
        if acc is None or self_bleu is None:
            return None
        return math.sqrt(acc * self_bleu), formula, selector

    def keep_if_best(self, results: dict) -> None:
        """Save the inference files when the dev score (`dev_score`) beats best.json's."""
        scored = self.dev_score(results)
        if scored is None:
            return
        score, formula, selector = scored
        best_file = self.run_dir / "best.json"
        best = json.loads(best_file.read_text())["score"] if best_file.exists() else -1.0
        if score > best:
            checkpoint.save_models(self.run_dir, self.cfg, self.generators, self.critic)
            best_file.write_text(json.dumps({"step": self.state.step, "score": score, "formula": formula,
                                             "selector": selector, **results}, indent=2) + "\n")
            tqdm.write(f"  best dev score so far ({score:.1f} = {formula}): model saved")

    def load_checkpoint(self) -> None:
        state = self.run_dir / "state"
        if not state.is_dir():
            raise checkpoint.CheckpointError(f"{self.run_dir} has no checkpoint to resume from (no state/ dir)")
        try:
            self.acc.load_state(str(state))
        except Exception as err:  # noqa: BLE001 - any failure means this checkpoint cannot be used
            raise checkpoint.CheckpointError(f"checkpoint {state} is unreadable ({type(err).__name__}: {err}); "
                                             f"delete it to start over") from err

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
        batches = self.batches()
        pair_batches = self.batches(self.pairs) if self.pairs else None
        try:
            while self.state.step < self.total:
                phase = self.phase(self.state.step)
                seqs_a, seqs_b = next(batches)
                self.seed_noise()
                with self.acc.accumulate(*self.generators, self.critic):
                    if phase == "ae":
                        logs = self.ae_step(seqs_a, seqs_b)
                    elif phase == "boot":
                        logs = self.boot_step(seqs_a, seqs_b, next(pair_batches))
                    elif phase == "d":
                        logs = self.d_step(self.sample_fakes(seqs_a, seqs_b))
                    else:
                        logs, fakes = self.g_step(seqs_a, seqs_b, next(pair_batches) if t.lambda_pairs > 0 else None)
                        if t.lambda_adv == 0:
                            fakes = None                       # no discriminator to train
                        else:
                            logs.update(self.d_step(fakes))
                        for _ in range(t.d_per_g - 1 if fakes else 0):
                            logs.update(self.d_step(self.sample_fakes(*next(batches))))
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
                if self.eval_due(phase):
                    if self.acc.is_main_process:
                        tqdm.write(f"step {self.state.step} ({phase}):")
                        results = self.evaluate()
                        self.log(results, phase)
                        if self.keeps_best() and phase in ("boot", "adv"):
                            self.keep_if_best(results)
                    self.acc.wait_for_everyone()
                if t.bootstrap_steps and self.state.step == self.starts["d"] and self.acc.is_main_process:
                    checkpoint.snapshot(self.run_dir, "after-bootstrap", self.cfg, self.generators, self.critic)
                if self.state.step % t.ckpt_every == 0 or self.state.step == self.total:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            self.save_checkpoint()
            raise
        bar.close()
