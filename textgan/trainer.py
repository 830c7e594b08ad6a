"""The training loop on Hugging Face Accelerate.

Phases, by global step:
    [0, ae_steps)                    denoising autoencoder: G learns to rewrite a sentence into its own domain
    [ae_steps, + d_steps)            discriminator pretraining on G's (still copy-like) transfers
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
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm

from . import checkpoint, metrics
from .config import Config, ConfigError, save_config
from .corpora import CorpusError, load_card
from .crosslingual import CrossLingual
from .data import DomainBatches, add_noise, encode_split, pad, prepare_data
from .evaluate import BLEU_TOKENIZE, NgramJudge, bleu, task_directions
from .losses import (
    ESTIMATORS,
    SAMPLE_MODE,
    AdvOptions,
    EMABaseline,
    discounted_returns,
    discriminator_loss,
    reconstruction_loss,
    sequence_logprob,
)
from .models.generator import straight_through_one_hot
from .tokenizer import Tokenizer
from .transfer import transfer_normalized


class TrainState:
    """The step counter, saved with the checkpoint so a resumed run continues the same count."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def mixed_precision(cfg: Config) -> str:
    if cfg.train.mixed_precision != "auto":
        return cfg.train.mixed_precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def warmup(steps: int):
    return lambda step: min(1.0, (step + 1) / max(1, steps))


def plot_curves(metrics_file: Path, png: Path) -> None:
    """Training curves (losses, dev style accuracy and self-BLEU) from metrics.jsonl into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r if k not in ("step", "phase", "time")})
    loss_keys = [k for k in keys if k.startswith("train/") and not k.startswith("train/lr_")]   # (lr: not a loss)
    eval_keys = [k for k in keys if k.startswith("dev/")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, group, title in [(axes[0], loss_keys, "training losses"), (axes[1], eval_keys, "dev evaluation")]:
        for key in group:
            pts = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*pts), label=key.split("/", 1)[1], marker="o" if group is eval_keys else None,
                    markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        if group:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, accelerator: Accelerator, tok: Tokenizer,
                 train_ids: dict[str, list[list[int]]], dev_texts: dict[str, list[str]], judge: NgramJudge | None,
                 xl: CrossLingual | None = None):
        self.cfg, self.run_dir, self.acc, self.tok = cfg, run_dir, accelerator, tok
        self.dev_texts, self.judge = dev_texts, judge
        self.dev_pairs: dict = {}                  # direction name -> evaluate.Direction with references
        self.a, self.b = cfg.data.domains
        self.dom = tok.domain_ids                                   # domain -> decoder start token id
        t = cfg.train
        if cfg.data.length_tokens and len(tok.length_ids) != cfg.data.length_tokens:
            raise ConfigError(f"data.length_tokens is {cfg.data.length_tokens} but the tokenizer has "
                              f"{len(tok.length_ids)} length tokens")
        if cfg.generator.words_left and not cfg.data.length_tokens:
            raise ConfigError("generator.words_left needs length control (data.length_tokens > 0)")
        self.generators, self.critic = checkpoint.new_models(cfg, tok)
        self.controls_length = bool(cfg.data.length_tokens)
        self.default_words = checkpoint.default_words(run_dir) if cfg.data.length_tokens else {}
        self.wordbyword: dict = {}                 # (src, tgt) -> [vocab] id table, from cross-lingual embeddings
        if xl is not None:
            self.use_crosslingual(xl)
        for module in [*self.generators, self.critic]:
            module.to(accelerator.device).train()
        self.g_ab, self.g_ba = self.generators[0], self.generators[-1]
        g_params = [p for g in self.generators for p in g.parameters()]
        opt_g = torch.optim.AdamW(g_params, lr=t.lr_g, betas=(0.9, 0.98), weight_decay=0.01)
        opt_d = torch.optim.AdamW(self.critic.parameters(), lr=t.lr_d, betas=(0.5, 0.999), weight_decay=0.01)
        self.opt_g, self.opt_d = accelerator.prepare(opt_g, opt_d)
        self.state = TrainState()
        adv_scale = t.lr_g_adv / t.lr_g if t.lr_g_adv > 0 else 1.0
        g_warmup = warmup(t.warmup_steps)
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(
            # called after each G update: every G update after the last autoencoder step is adversarial
            opt_g, lambda s: g_warmup(s) * (adv_scale if self.state.step + 1 >= t.ae_steps else 1.0))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, warmup(t.d_warmup_steps))
        self.baseline = EMABaseline(t.ema_decay)
        for obj in [*self.generators, self.critic, self.sched_g, self.sched_d, self.state, self.baseline]:
            accelerator.register_for_checkpointing(obj)
        self.train_ids = train_ids
        self.total = t.ae_steps + t.d_steps + t.adv_steps
        self.noise_rng = random.Random(t.seed + accelerator.process_index)

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
    def batches(self):
        """Endless (real_a, real_b) pairs; re-seeded from the step so a resumed run draws fresh batches."""
        t = self.cfg.train
        seed = t.seed + self.state.step
        streams = [iter(DomainBatches(self.train_ids[d], t.batch_size, self.cfg.data.bucket_batches, seed + i,
                                      self.acc.process_index, self.acc.num_processes))
                   for i, d in enumerate((self.a, self.b))]
        while True:
            yield [next(s) for s in streams]

    def to_device(self, seqs):
        ids, mask = pad(seqs)
        return ids.to(self.acc.device), mask.to(self.acc.device)

    def noisy(self, seqs):
        """Denoising inputs: words dropped, blanked and locally shuffled; with length control, a share
        (data.length_mix) gets the batch's next sentence appended: the target is still the first alone."""
        d = self.cfg.data
        noised = add_noise(seqs, d.word_drop, d.word_blank, d.shuffle_k, self.noise_rng)
        if self.controls_length and d.length_mix > 0:
            noised = [(s + seqs[(i + 1) % len(seqs)])[: d.max_len] if self.noise_rng.random() < d.length_mix else s
                      for i, s in enumerate(noised)]
        return self.to_device(noised)

    def tau(self) -> float:
        """Temperature, annealed geometrically from tau_start to tau_end over the adversarial phase."""
        t = self.cfg.train
        progress = min(1.0, max(0, self.state.step - t.ae_steps - t.d_steps) / max(1, t.adv_steps))
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

    def gen_len(self, real, words) -> int:
        """Decoding budget of a transfer: about the source length, or twice the asked words (+4)."""
        if words is None:
            return min(self.cfg.train.max_gen_len, real.size(1) + 4)
        return min(self.cfg.train.max_gen_len, 2 * int(words.max()) + 4)

    # ---------------------------------------------------------------- losses
    def self_reconstruction(self, seqs, real, mask, g_back, domain: str):
        """L_self = NLL(real | noise(real), to its own domain): the denoising autoencoder term.

        Returns (loss, logits (B, T, V)); g_back is the generator that writes `domain`.
        """
        logits = g_back(*self.noisy(seqs), real, self.dom[domain], self.words(real, mask))
        loss, _ = reconstruction_loss(logits, real, mask, self.cfg.train.label_smoothing)
        return loss, logits

    def fakes(self, real, mask, g, to: str, mode: str, words=None):
        """G(real -> to) as a Sample (of `words` words each, with length control). Under `feedback: hard`
        (and always without a graph) the decoding loop runs without autograd and `Generator.relax`
        rebuilds the differentiable parts in one teacher-forced pass; `feedback: soft` backpropagates
        through the loop itself (Style Transformer).
        """
        t = self.cfg.train
        max_len = self.gen_len(real, words)
        if t.feedback == "soft" or mode == "greedy":
            return g.sample(real, mask, self.dom[to], mode=mode, tau=self.tau(), max_len=max_len,
                            straight_through=t.straight_through, words=words)
        decode_mode, decode_tau = {"soft": ("greedy", 1.0), "gumbel": ("multinomial", 1.0),
                                   "multinomial": ("multinomial", self.tau())}[mode]
        # Dropout off for both passes: the relaxed outputs / log-probs must be those of the very
        # distribution the tokens were drawn from (on-policy REINFORCE, consistent Gumbel noise).
        g.eval()
        try:
            with torch.no_grad():
                drawn = g.sample(real, mask, self.dom[to], mode=decode_mode, tau=decode_tau, max_len=max_len,
                                 words=words)
            return g.relax(real, mask, self.dom[to], drawn, mode, tau=self.tau(), straight_through=t.straight_through,
                           words=words)
        finally:
            g.train()

    def directions(self, real_a, mask_a, real_b, mask_b):
        """(real, mask, forward generator, backward generator, source domain index, target domain index,
        words asked of the transfers or None)."""
        want_b, want_a = self.wanted(real_b, mask_b, real_a.size(0)), self.wanted(real_a, mask_a, real_b.size(0))
        return [(real_a, mask_a, self.g_ab, self.g_ba, 0, 1, want_b), (real_b, mask_b, self.g_ba, self.g_ab, 1, 0, want_a)]

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
    def sample_fakes(self, real_a, mask_a, real_b, mask_b) -> dict:
        """Fakes for D steps outside a G step (D pretraining, extra D steps): sampled, no gradient."""
        domains, out = (self.a, self.b), {}
        for real, mask, g, g_back, src, tgt, want in self.directions(real_a, mask_a, real_b, mask_b):
            fake = self.fakes(real, mask, g, domains[tgt], SAMPLE_MODE[self.cfg.train.estimator], want)
            with self.acc.autocast():
                same_logits = g_back(real, mask, real, self.dom[domains[src]], self.words(real, mask))
            out.setdefault(tgt, [None, None, None])[2] = (fake.inputs(), fake.mask)
            out.setdefault(src, [None, None, None])[:2] = [(real, mask), (self.same_form(same_logits, real), mask)]
        return out

    def g_step(self, seqs_a, seqs_b, real_a, mask_a, real_b, mask_b) -> tuple[dict, dict]:
        """L_G = lambda_self * L_self + lambda_cycle * L_cycle + lambda_adv * L_adv, summed over directions:

            L_self  = NLL(real_a | noise(real_a), to a)              (denoising autoencoder)
            L_cycle = NLL(real_a | G_ba(fake_b), to a),  fake_b = G_ab(real_a, to b)   (and b -> a -> b)
                      (fake_b's ids, i.e. back-translation, unless cycle_through_fake)
            L_adv   = ESTIMATORS[estimator](fake_b, D_b)              (losses.py)

        D is frozen here; under `soft`/`gumbel` gradients reach G_ab through D and through the cycle.
        Returns the logs and the detached fakes for the D step that follows (as in CycleGAN).
        """
        t = self.cfg.train
        domains = (self.a, self.b)
        self.critic.requires_grad_(False)
        fakes_for_d: dict = {}
        with self.acc.autocast():
            l_self, l_cycle, l_adv, logs = 0.0, 0.0, 0.0, {}
            for (real, mask, g, g_back, src, tgt, want), seqs in zip(
                    self.directions(real_a, mask_a, real_b, mask_b), (seqs_a, seqs_b)):
                rec, self_logits = self.self_reconstruction(seqs, real, mask, g_back, domains[src])
                if t.lambda_adv == 0:   # no adversary: denoising + on-the-fly back-translation (Lample et al. 2018)
                    cyc = self.back_translation(real, mask, g, g_back, domains[src], domains[tgt], want)
                    l_self, l_cycle = l_self + rec, l_cycle + cyc
                    logs.update({f"self_{domains[src]}": rec.item(), f"cycle_{domains[src]}": cyc.item()})
                    continue
                fake = self.fakes(real, mask, g, domains[tgt], SAMPLE_MODE[t.estimator], want)
                cycle_input = fake.inputs() if t.cycle_through_fake else fake.ids
                rec_logits = g_back(cycle_input, fake.mask, real, self.dom[domains[src]], self.words(real, mask))
                cyc, _ = reconstruction_loss(rec_logits, real, mask, t.label_smoothing)
                opts = AdvOptions(gamma=t.gamma, baseline=self.baseline)
                if t.estimator == "reinforce":
                    if t.cycle_reward > 0:
                        opts.seq_reward = t.cycle_reward * sequence_logprob(rec_logits.detach(), real, mask)
                    if t.baseline == "greedy":
                        opts.baseline = self.greedy_baseline(real, mask, g, g_back, src, tgt, want)
                adv, adv_logs = ESTIMATORS[t.estimator](fake, lambda x, d=tgt: self.critic.log_probs(x, d), opts)
                l_self, l_cycle, l_adv = l_self + rec, l_cycle + cyc, l_adv + adv
                logs.update({f"self_{domains[src]}": rec.item(), f"cycle_{domains[src]}": cyc.item()})
                logs.update({f"{k}_{domains[tgt]}": v for k, v in adv_logs.items()})
                fakes_for_d.setdefault(tgt, [None, None, None])[2] = (fake.inputs().detach(), fake.mask)
                fakes_for_d.setdefault(src, [None, None, None])[:2] = [
                    (real, mask), (self.same_form(self_logits.detach(), real), mask)]
            loss = t.lambda_self * l_self + t.lambda_cycle * l_cycle + t.lambda_adv * l_adv
        g_params = [p for g in self.generators for p in g.parameters()]
        self._update(loss, self.opt_g, self.sched_g, g_params)
        self.critic.requires_grad_(True)
        logs["g_loss"] = loss.item()
        return logs, fakes_for_d

    def back_translation(self, real, mask, g, g_back, src: str, tgt: str, want=None) -> torch.Tensor:
        """NLL(real | G_back(greedy G(real -> tgt)) -> src): the forward translation is decoded greedily
        without a graph (dropout off), so only the back direction learns from this pair. In the first
        train.bt_wordbyword_steps steps the forward translation is word by word instead (tables from the
        cross-lingual embeddings): a first model that does not just copy its input (Lample et al. 2018)."""
        t = self.cfg.train
        if self.wordbyword and self.state.step < t.ae_steps + t.d_steps + t.bt_wordbyword_steps:
            fake_ids, fake_mask = self.wordbyword[(src, tgt)][real], mask
        else:
            g.eval()
            try:
                with torch.no_grad():
                    budget = min(t.max_gen_len, 2 * real.size(1) + 4) if want is None else self.gen_len(real, want)
                    fake = g.sample(real, mask, self.dom[tgt], mode="greedy", max_len=budget, words=want)
            finally:
                g.train()
            fake_ids, fake_mask = fake.ids, fake.mask
        logits = g_back(fake_ids, fake_mask, real, self.dom[src], self.words(real, mask))
        return reconstruction_loss(logits, real, mask, self.cfg.train.label_smoothing)[0]

    def greedy_baseline(self, real, mask, g, g_back, src: int, tgt: int, want=None):
        """Self-critical baseline (Rennie et al. 2017): the returns the greedy decode of the same input gets
        (with the same cycle reward as the samples when train.cycle_reward > 0)."""
        t = self.cfg.train
        with torch.no_grad():
            greedy = self.fakes(real, mask, g, self.cfg.data.domains[tgt], "greedy", want)
            real_logp, _ = self.critic.log_probs(greedy.ids, tgt)
            greedy_returns = discounted_returns(real_logp.exp(), greedy.mask, t.gamma)
            if t.cycle_reward > 0:
                rec_logits = g_back(greedy.ids, greedy.mask, real, self.dom[self.cfg.data.domains[src]],
                                    self.words(real, mask))
                content = t.cycle_reward * sequence_logprob(rec_logits, real, mask)
                greedy_returns = greedy_returns + content[:, None] * greedy.mask.to(greedy_returns.dtype)

        def baseline(returns, _mask):
            width = returns.size(1)
            padded = torch.nn.functional.pad(greedy_returns, (0, max(0, width - greedy_returns.size(1))))
            return padded[:, :width]

        return baseline

    def ae_step(self, seqs_a, seqs_b, real_a, mask_a, real_b, mask_b) -> dict:
        """Phase 1: L_self summed over both domains."""
        domains, loss, logs = (self.a, self.b), 0.0, {}
        with self.acc.autocast():
            for (real, mask, _, g_back, src, _, _), seqs in zip(
                    self.directions(real_a, mask_a, real_b, mask_b), (seqs_a, seqs_b)):
                part, _ = self.self_reconstruction(seqs, real, mask, g_back, domains[src])
                loss = loss + part
                logs[f"self_{domains[src]}"] = part.item()
        g_params = [p for g in self.generators for p in g.parameters()]
        self._update(loss, self.opt_g, self.sched_g, g_params)
        logs["g_loss"] = loss.item()
        return logs

    def eval_due(self, phase: str) -> bool:
        """After this step: the dev evaluation? Every eval_every steps (ae_eval_every in the autoencoder
        phase), none while D pretrains, and always at the end of the autoencoder phase and of the run."""
        t, step = self.cfg.train, self.state.step
        if step in (t.ae_steps, self.total):
            return True
        every = {"ae": t.ae_eval_every or t.eval_every, "d": 0, "adv": t.eval_every}[phase]
        return every > 0 and step % every == 0

    def phase(self, step: int) -> str:
        t = self.cfg.train
        return "ae" if step < t.ae_steps else "d" if step < t.ae_steps + t.d_steps else "adv"

    # ---------------------------------------------------------------- evaluation, checkpoints
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev transfers in both directions: style accuracy by the independent judge, self-BLEU, samples."""
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
        return self.cfg.train.keep_best and self.judge is not None

    def dev_score(self, results: dict) -> tuple[float, str] | None:
        """The model-selection score of a dev evaluation and its formula: with dev references (summaries,
        translations) the mean dev ROUGE-L (eval.rouge) or BLEU against them; without, sqrt(mean style
        ACC * mean self-BLEU). None when the evaluation lacks its parts."""
        def mean(prefix):
            values = [v for k, v in results.items() if k.startswith(prefix)]
            return sum(values) / len(values) if values else None

        reference = mean("dev/rougeL_") if self.cfg.eval.rouge else mean("dev/bleu_")
        if reference is not None:
            return reference, "dev ROUGE-L" if self.cfg.eval.rouge else "dev BLEU"
        acc, self_bleu = mean("dev/acc_"), mean("dev/self_bleu_")
        if acc is None or self_bleu is None:
            return None
        return math.sqrt(acc * self_bleu), "sqrt(ACC * self-BLEU)"

    def keep_if_best(self, results: dict) -> None:
        """Save the inference files when the dev score (`dev_score`) beats best.json's."""
        scored = self.dev_score(results)
        if scored is None:
            return
        score, formula = scored
        best_file = self.run_dir / "best.json"
        best = json.loads(best_file.read_text())["score"] if best_file.exists() else -1.0
        if score > best:
            checkpoint.save_models(self.run_dir, self.cfg, self.generators, self.critic)
            best_file.write_text(json.dumps({"step": self.state.step, "score": score, "formula": formula, **results},
                                            indent=2) + "\n")
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
        try:
            while self.state.step < self.total:
                phase = self.phase(self.state.step)
                seqs_a, seqs_b = next(batches)
                real_a, mask_a = self.to_device(seqs_a)
                real_b, mask_b = self.to_device(seqs_b)
                with self.acc.accumulate(*self.generators, self.critic):
                    if phase == "ae":
                        logs = self.ae_step(seqs_a, seqs_b, real_a, mask_a, real_b, mask_b)
                    elif phase == "d":
                        logs = self.d_step(self.sample_fakes(real_a, mask_a, real_b, mask_b))
                    else:
                        logs, fakes = self.g_step(seqs_a, seqs_b, real_a, mask_a, real_b, mask_b)
                        if t.lambda_adv == 0:
                            fakes = None                       # no discriminator to train
                        else:
                            logs.update(self.d_step(fakes))
                        for _ in range(t.d_per_g - 1 if fakes else 0):
                            extra_a, extra_b = (self.to_device(s) for s in next(batches))
                            logs.update(self.d_step(self.sample_fakes(*extra_a, *extra_b)))
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
                        if self.keeps_best() and phase == "adv":
                            self.keep_if_best(results)
                    self.acc.wait_for_everyone()
                if self.state.step % t.ckpt_every == 0 or self.state.step == self.total:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            self.save_checkpoint()
            raise
        bar.close()


def crosslingual_embeddings(cfg: Config, run_dir: Path, tok: Tokenizer, train_ids, accelerator,
                            data_dir=None) -> CrossLingual | None:
    """The run's cross-lingual piece embeddings (train.crosslingual), learnt once by the main process into
    crosslingual.pt (+ .json: settings and, where CC-CEDICT is found, lexicon induction precision)."""
    method = cfg.train.crosslingual
    if method == "none":
        if cfg.train.bt_wordbyword_steps:
            raise ConfigError("train.bt_wordbyword_steps needs cross-lingual embeddings: set train.crosslingual")
        return None
    path = run_dir / "crosslingual.pt"
    if accelerator.is_main_process and not path.exists():
        tqdm.write(f"learning cross-lingual piece embeddings ({method})")
        xl = CrossLingual.learn(train_ids, cfg.generator.d_model, method, tok, data_dir=data_dir, log=tqdm.write)
        try:
            xl.info.update(xl.evaluate_bli(tok, data_dir))
        except CorpusError as err:
            xl.info["bli"] = f"not measured: {err}"
        tqdm.write(f"  {xl.info}")
        xl.save(path)
    accelerator.wait_for_everyone()
    return CrossLingual.load(path)


def train(cfg: Config, runs_dir=None, name: str | None = None, resume: str | Path | None = None,
          data_dir=None, command: list[str] | None = None) -> Path:
    """Train a task end to end (or resume a run) and return its run directory."""
    # cpu=True without CUDA is what makes Accelerate form a gloo process group from torchrun's variables.
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(cfg),
                              gradient_accumulation_steps=cfg.train.grad_accum,
                              log_with="tensorboard", project_dir=str(runs_dir or "runs"))
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    set_seed(cfg.train.seed)
    train_split, dev_split = prepare_data(cfg, data_dir)   # every process loads (cached after the first)

    if resume:
        run_dir = Path(resume)
    else:
        holder = [None]
        if accelerator.is_main_process:
            run_dir = checkpoint.create_run_dir(cfg.task, runs_dir, name)
            checkpoint.write_run_info(run_dir, cfg, command or [], str(accelerator.device), accelerator.num_processes)
            texts = [t for d in cfg.data.domains for t in list(train_split[d]["text"])[: cfg.tokenizer.sample_lines]]
            Tokenizer.train(texts, run_dir / "tokenizer.model", cfg.data.domains, cfg.data.normalize,
                            cfg.tokenizer.vocab_size, cfg.tokenizer.model_type, cfg.tokenizer.character_coverage,
                            cfg.data.length_tokens)
            by_domain = {d: list(train_split[d]["text"]) for d in cfg.data.domains}
            NgramJudge(cfg.data.domains).fit(by_domain).save(run_dir / "judge.pt")
            if cfg.data.length_tokens:
                checkpoint.write_lengths(run_dir, by_domain)
            holder = [str(run_dir)]
        broadcast_object_list(holder)
        run_dir = Path(holder[0])
    accelerator.project_configuration.set_directories(str(run_dir))
    accelerator.project_configuration.logging_dir = str(run_dir)      # TensorBoard events: <run>/tensorboard/
    tok = Tokenizer(run_dir / "tokenizer.model", cfg.data.domains, cfg.data.normalize)
    judge = NgramJudge.load(run_dir / "judge.pt") if (run_dir / "judge.pt").exists() else None
    train_ids = encode_split(train_split, tok, cfg.data.max_len)
    dev_texts = {d: list(dev_split[d]["text"]) for d in cfg.data.domains}
    xl = crosslingual_embeddings(cfg, run_dir, tok, train_ids, accelerator, data_dir)
    trainer = Trainer(cfg, run_dir, accelerator, tok, train_ids, dev_texts, judge, xl)
    card = load_card(cfg.data.corpus)
    if "dev" in card.multiref or "dev" in card.references:   # dev sources with references: dev BLEU, not self-BLEU
        trainer.dev_pairs = {d.name: d for d in task_directions(cfg, data_dir, "dev") if d.references}
    if resume:
        trainer.load_checkpoint()
        trainer.apply_config_lrs()
        if accelerator.is_main_process:
            print(f"resuming {run_dir} at step {trainer.state.step}/{trainer.total}")
            save_config(cfg, run_dir / "config.yaml")       # overrides given on resume are part of the run
            metrics = run_dir / "metrics.jsonl"
            if metrics.exists():  # drop rows logged after the checkpoint we resume from
                keep = [r for r in metrics.read_text().splitlines() if r and json.loads(r)["step"] <= trainer.state.step]
                metrics.write_text("".join(r + "\n" for r in keep))
    accelerator.init_trackers("tensorboard")
    trainer.fit()
    accelerator.end_training()
    if accelerator.is_main_process:
        plot_curves(run_dir / "metrics.jsonl", run_dir / "training_curves.png")
    return run_dir
