"""The maximum-likelihood phases: the denoising autoencoder (phase 1) and the bootstrap on mined
pseudo-parallel pairs (bootstrap.py), plus on-the-fly back-translation, which the adversarial phase
uses in place of the adversary when train.lambda_adv is 0. A mixin of `trainer.Trainer` (see
training/common.py for what it reads)."""

from __future__ import annotations

import torch

from .common import Stack


class LikelihoodSteps:
    """Maximum-likelihood steps: denoising, mined pairs, back-translation."""

    def ae_step(self, seqs_a, seqs_b) -> dict:
        """Phase 1: L_self summed over both domains."""
        with self.acc.autocast():
            loss, logs = self.denoising(seqs_a, seqs_b)
            l_latent, latent_logs = self.latent_term(seqs_a, seqs_b)
            loss, logs = loss + l_latent, {**logs, **latent_logs}
        self._update(loss, self.opt_g, self.sched_g, self.g_params())
        logs["g_loss"] = loss.item()
        return logs

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
