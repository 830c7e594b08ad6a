"""The maximum-likelihood phases: the denoising autoencoder (phase 1) and the bootstrap on mined
pseudo-parallel pairs (mining/), plus on-the-fly back-translation, which the adversarial phase uses
in place of the adversary when train.lambda_adv is 0. Phase objects reading the trainer as their
context (`ctx`: see training/common.py)."""

from __future__ import annotations

import torch

from .common import Stack


class Autoencoder:
    """Phase 1: the denoising autoencoder."""

    def __init__(self, ctx):
        self.ctx = ctx

    def step(self, seqs_a, seqs_b) -> dict:
        """Phase 1: L_self summed over both domains."""
        with self.ctx.acc.autocast():
            loss, logs = self.ctx.denoising(seqs_a, seqs_b)
            l_latent, latent_logs = self.ctx.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
        self.ctx._update(loss, self.ctx.opt_g, self.ctx.sched_g, self.ctx.g_params())
        logs["g_loss"] = loss.item()
        return logs


class Bootstrap:
    """Phase 2: maximum likelihood on the mined pairs (`pair_batches`: the trainer's stream of them)."""

    def __init__(self, ctx, pair_batches):
        self.ctx, self.pair_batches = ctx, pair_batches

    def step(self, seqs_a, seqs_b) -> dict:
        """Bootstrap phase: L = L_pairs + bootstrap_self * L_self (the denoising term keeps G able to rebuild
        a sentence, which the cycle of the adversarial phase needs)."""
        t = self.ctx.cfg.train
        with self.ctx.acc.autocast():
            loss, logs = self.ctx.pairs_nll(next(self.pair_batches))
            if t.bootstrap_self > 0:
                part, self_logs = self.ctx.denoising(seqs_a, seqs_b)
                loss, logs = loss + t.bootstrap_self * part, {**logs, **self_logs}
            l_latent, latent_logs = self.ctx.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
        self.ctx._update(loss, self.ctx.opt_g, self.ctx.sched_g, self.ctx.g_params())
        logs["g_loss"] = loss.item()
        return logs


def back_translation(ctx, stack: Stack) -> torch.Tensor:
    """Logits (N, T, V) of NLL(real | G_back(greedy G(real -> tgt)) -> src): the forward translation is
    decoded greedily without a graph (dropout off), so only the back direction learns from this pair.
    In the first train.bt_wordbyword_steps steps the forward translation is word by word instead
    (tables from the cross-lingual embeddings): a first model that does not just copy its input
    (Lample et al. 2018). `ctx`: the trainer."""
    t, domains = ctx.cfg.train, ctx.cfg.data.domains
    if ctx.wordbyword and ctx.state.step < ctx.starts["adv"] + t.bt_wordbyword_steps:
        fake_ids = torch.cat([ctx.wordbyword[(domains[s.src], domains[s.tgt])][stack.real[s.rows]]
                              for s in stack.sides])
        fake_mask = stack.mask
    else:
        stack.g.eval()
        try:
            with torch.no_grad():
                fake = stack.g.sample(stack.real, stack.mask, stack.to, mode="greedy",
                                      max_len=ctx.budget(stack, per_source=2), words=stack.want)
        finally:
            stack.g.train()
        fake_ids, fake_mask = fake.ids, fake.mask
    return stack.g_back(fake_ids, fake_mask, stack.real, stack.back, ctx.words(stack.real, stack.mask))
