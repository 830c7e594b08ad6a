"""The adversarial phases: discriminator pretraining on the generators' transfers, then the cycle
against the discriminators (d_per_g D steps per G step) with the estimator of train.estimator, the
REINFORCE rewards and baselines. Phase objects reading the trainer as their context (`ctx`: see
training/common.py; here also opt_g/opt_d, sched_g/sched_d, baseline, style)."""

from __future__ import annotations

import torch

from ..losses import (
    ESTIMATORS,
    SAMPLE_MODE,
    AdvOptions,
    discounted_returns,
    discriminator_loss,
    fixed_baseline,
    sequence_logprob,
)
from ..models.generator import straight_through_one_hot
from ..rewards import combine, semantic_content, style_reward
from .common import Stack
from .likelihood import back_translation


class DiscriminatorPretraining:
    """Phase 3: D steps on the generators' sampled transfers, G frozen. `ctx`: the trainer (training/common.py
    StepTools: what every phase reads)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def step(self, seqs_a, seqs_b) -> dict:
        return self.d_step(self.sample_fakes(seqs_a, seqs_b))

    def d_step(self, fakes: dict) -> dict:
        """L_D = sum over domains y of discriminator_loss(real: [real_y, same_y], fake: [fake_y]).

        `fakes[y]` holds (real_y, same_y, fake_y) as produced by the G step, detached: real text, G's
        teacher-forced rewrite of real_y into y (the same form as the fakes: soft distributions or ids),
        and the transfers G(real_x -> y).
        """
        domains = (self.ctx.a, self.ctx.b)
        loss, logs = 0.0, {}
        with self.ctx.acc.autocast():
            for y, (real, same, fake) in fakes.items():
                real_logp, _ = self.ctx.critic.log_probs(real[0], y)
                same_logp, _ = self.ctx.critic.log_probs(same[0], y)
                _, fake_logp = self.ctx.critic.log_probs(fake[0], y)
                part, part_logs = discriminator_loss([(real_logp, real[1]), (same_logp, same[1])],
                                                     [(fake_logp, fake[1])], dense=self.ctx.cfg.train.estimator == "reinforce")
                loss = loss + part
                logs.update({f"{k}_{domains[y]}": v for k, v in part_logs.items()})
        self.ctx._update(loss, self.ctx.opt_d, self.ctx.sched_d, list(self.ctx.critic.parameters()))
        logs["d_loss"] = loss.item()
        return logs

    def same_form(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) -> text of the real domain in the form the fakes take."""
        t = self.ctx.cfg.train
        if t.estimator == "soft":
            probs = (logits.float() / self.ctx.tau()).softmax(-1)
            return straight_through_one_hot(probs, probs.argmax(-1)) if t.straight_through else probs
        if t.estimator == "gumbel":
            return torch.nn.functional.gumbel_softmax(logits.float(), tau=self.ctx.tau(), hard=t.straight_through)
        return ids

    @torch.no_grad()
    def sample_fakes(self, seqs_a, seqs_b) -> dict:
        """Fakes for D steps outside a G step (D pretraining, extra D steps): sampled, no gradient."""
        out: dict = {}
        for stack in self.ctx.transfer_stacks(seqs_a, seqs_b):
            fake = self.ctx.fakes(stack, SAMPLE_MODE[self.ctx.cfg.train.estimator])
            with self.ctx.acc.autocast():
                same_logits = stack.g_back(stack.real, stack.mask, stack.real, stack.back,
                                           self.ctx.words(stack.real, stack.mask))
            for side in stack.sides:
                part, real, mask = fake.select(side.rows), stack.real[side.rows], stack.mask[side.rows]
                out.setdefault(side.tgt, [None, None, None])[2] = (part.inputs(), part.mask)
                out.setdefault(side.src, [None, None, None])[:2] = [
                    (real, mask), (self.same_form(same_logits[side.rows], real), mask)]
        return out


class Adversarial(DiscriminatorPretraining):
    """Phase 4: the G step against frozen discriminators, then D steps; and what REINFORCE needs beside them
    (sequence rewards, baselines). `pair_batches` and `batches` are the trainer's streams: mined pairs
    for train.lambda_pairs, fresh batches for the extra D steps."""

    def __init__(self, ctx, pair_batches=None, batches=None):
        super().__init__(ctx)
        self.pair_batches, self.batches = pair_batches, batches
        self._second_style = None            # (encoder, EmbeddingStyle) of train.semantic_style
        self._content_encoder = None         # train.content_reward's encoder

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
        t, domains = self.ctx.cfg.train, self.ctx.cfg.data.domains
        self.ctx.critic.requires_grad_(False)
        fakes_for_d: dict = {}
        with self.ctx.acc.autocast():
            l_self, l_cycle, l_adv, logs = 0.0, 0.0, 0.0, {}
            for stack in self.ctx.transfer_stacks(seqs_a, seqs_b):
                self_logits = self.ctx.self_reconstruction(stack)
                if t.lambda_adv == 0:   # no adversary: denoising + on-the-fly back-translation (Lample et al. 2018)
                    fake, rec_logits = None, back_translation(self.ctx, stack)
                else:
                    fake = self.ctx.fakes(stack, SAMPLE_MODE[t.estimator])
                    cycle_input = fake.inputs() if t.cycle_through_fake else fake.ids
                    rec_logits = stack.g_back(cycle_input, fake.mask, stack.real, stack.back,
                                              self.ctx.words(stack.real, stack.mask))
                    greedy = t.estimator == "reinforce" and t.baseline == "greedy"
                    baselines = self.greedy_baselines(stack) if greedy else [self.ctx.baseline] * len(stack.sides)
                for side, baseline in zip(stack.sides, baselines if fake is not None else stack.sides):
                    real, mask, src, tgt = stack.real[side.rows], stack.mask[side.rows], domains[side.src], domains[side.tgt]
                    rec, cyc = self.ctx.side_nll(self_logits, stack, side), self.ctx.side_nll(rec_logits, stack, side)
                    l_self, l_cycle = l_self + rec, l_cycle + cyc
                    logs.update({f"self_{src}": rec.item(), f"cycle_{src}": cyc.item()})
                    if fake is None:
                        continue
                    part = fake.select(side.rows)
                    opts = AdvOptions(gamma=t.gamma, baseline=baseline)
                    if t.estimator == "reinforce":
                        opts.seq_reward = self.sequence_reward(part, rec_logits[side.rows].detach(), real, mask,
                                                               side.tgt, logs)
                    adv, adv_logs = ESTIMATORS[t.estimator](part, lambda x, d=side.tgt: self.ctx.critic.log_probs(x, d), opts)
                    l_adv = l_adv + adv
                    logs.update({f"{k}_{tgt}": v for k, v in adv_logs.items()})
                    fakes_for_d.setdefault(side.tgt, [None, None, None])[2] = (part.inputs().detach(), part.mask)
                    fakes_for_d.setdefault(side.src, [None, None, None])[:2] = [
                        (real, mask), (self.same_form(self_logits[side.rows].detach(), real), mask)]
            loss = self.lambda_self() * l_self + t.lambda_cycle * l_cycle + t.lambda_adv * l_adv
            l_latent, latent_logs = self.ctx.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
            if pair_batch is not None and t.lambda_pairs > 0:
                l_pairs, pair_logs = self.ctx.pairs_nll(pair_batch)
                loss = loss + t.lambda_pairs * l_pairs
                logs.update(pair_logs)
        self.ctx._update(loss, self.ctx.opt_g, self.ctx.sched_g, self.ctx.g_params())
        self.ctx.critic.requires_grad_(True)
        logs["g_loss"] = loss.item()
        return logs, fakes_for_d

    def lambda_self(self) -> float:
        """The denoising weight of this adversarial step: lambda_self, or with lambda_self_end >= 0 the linear
        interpolation lambda_self + (lambda_self_end - lambda_self) * progress through the adversarial phase."""
        t = self.ctx.cfg.train
        if t.lambda_self_end < 0:
            return t.lambda_self
        progress = min(1.0, max(0, self.ctx.state.step - self.ctx.starts["adv"]) / max(1, t.adv_steps))
        return t.lambda_self + (t.lambda_self_end - t.lambda_self) * progress

    def sequence_reward(self, fake, rec_logits, real, mask, tgt: int, logs: dict | None = None):
        """REINFORCE's sentence reward (B,) for the transfers `fake` of `real` into domain index tgt:
        rewards.combine of the style classifier's p(tgt | fake) and the content term: the cycle's mean
        log p(real | fake), or with train.content_reward set to an encoder the log of its cosine of the two
        texts (train.style_reward, train.cycle_reward, train.reward_mix); None when both weights are 0."""
        t = self.ctx.cfg.train
        if not (t.cycle_reward or t.style_reward):
            return None
        if t.content_reward == "cycle":
            content = sequence_logprob(rec_logits, real, mask)                   # (B,)
        else:
            content = semantic_content(self.content_encoder(), self.ctx.tok.decode(real.tolist()),
                                       self.ctx.tok.decode(fake.ids.tolist())).to(real.device)
        r_style = (style_reward(self.ctx.style(fake.ids, fake.mask), tgt) if t.style_reward
                   else torch.zeros_like(content))
        if t.semantic_style:                 # min(p_C, p_E): a praise word before a standing complaint fools p_C
            encoder, second = self.second_style()
            emb = encoder.embed(self.ctx.tok.decode(fake.ids.tolist())).to(r_style.device)
            r_style = torch.minimum(r_style, second.probabilities(emb)[:, tgt])
        if logs is not None:
            name = self.ctx.cfg.data.domains[tgt]
            logs[f"r_style_{name}"], logs[f"r_content_{name}"] = r_style.mean().item(), content.exp().mean().item()
        return combine(r_style, content, t.style_reward, t.cycle_reward, t.reward_mix)

    def second_style(self):
        """(decode.encoder, the run's EmbeddingStyle over it) for train.semantic_style, loaded on first use
        (runner.reranker_style fitted it into the run)."""
        if self._second_style is None:
            from ..pretrained.encoder import Encoder
            from ..decoding.style import embedding_style

            encoder = Encoder.load(self.ctx.cfg.decode.encoder, device=self.ctx.acc.device)
            self._second_style = encoder, embedding_style(self.ctx.run_dir, encoder, self.ctx.cfg.data.domains).to(self.ctx.acc.device)
        return self._second_style

    def content_encoder(self):
        """The sentence encoder of train.content_reward, loaded on first use (frozen, on the run's device)."""
        if self._content_encoder is None:
            from ..pretrained.encoder import Encoder

            self._content_encoder = Encoder.load(self.ctx.cfg.train.content_reward, device=self.ctx.acc.device)
        return self._content_encoder

    def greedy_baselines(self, stack: Stack) -> list:
        """Self-critical baselines (Rennie et al. 2017), one per side: the returns the greedy decode of the
        same input gets (with the same sentence reward as the samples when train.cycle_reward or
        train.style_reward is set)."""
        t = self.ctx.cfg.train
        out = []
        with torch.no_grad():
            greedy = self.ctx.fakes(stack, "greedy")
            seq_rewards = t.cycle_reward or t.style_reward
            if seq_rewards:
                rec_logits = stack.g_back(greedy.ids, greedy.mask, stack.real, stack.back,
                                          self.ctx.words(stack.real, stack.mask))
            for side in stack.sides:
                part = greedy.select(side.rows)
                real_logp, _ = self.ctx.critic.log_probs(part.ids, side.tgt)
                returns = discounted_returns(real_logp.exp(), part.mask, t.gamma)
                if seq_rewards:
                    seq = self.sequence_reward(part, rec_logits[side.rows], stack.real[side.rows],
                                               stack.mask[side.rows], side.tgt)
                    returns = returns + seq[:, None] * part.mask.to(returns.dtype)
                out.append(fixed_baseline(returns))
        return out

    def step(self, seqs_a, seqs_b) -> dict:
        """One adversarial step: a G step (with a batch of mined pairs when train.lambda_pairs > 0), then
        train.d_per_g D steps, the first on the G step's own detached fakes, the others on fresh batches."""
        t = self.ctx.cfg.train
        logs, fakes = self.g_step(seqs_a, seqs_b, next(self.pair_batches) if t.lambda_pairs > 0 else None)
        if t.lambda_adv == 0:
            return logs                                       # no discriminator to train
        logs.update(self.d_step(fakes))
        for _ in range(t.d_per_g - 1):
            logs.update(self.d_step(self.sample_fakes(*next(self.batches))))
        return logs
