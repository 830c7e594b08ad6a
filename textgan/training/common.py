"""What every training phase's step uses: the batches (drawn, noised, stacked into one generator pass per
direction or both at once), length control, the denoising and pair likelihoods, the transfers a step
decodes (`fakes`), and the optimizer update. `StepTools` is the base of `trainer.Trainer`, the context
every phase object reads (`ctx`); Trainer's `__init__` sets what it reads: cfg, acc, tok, generators
(g_ab, g_ba), critic, latent, state, starts, dom_ids, controls_length, train_ids, noise_rng.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..data import DomainBatches, add_noise, pad
from ..losses import reconstruction_loss
from ..models.generator import Generator
from ..models.latent import latent_losses


class TrainState:
    """The step counter and the batches drawn from each stream of `StepTools.batches`, saved with the
    checkpoint so a resumed run continues the same count with the batches the uninterrupted run draws.
    `drawn` is None after loading a checkpoint written before the streams were counted."""

    def __init__(self):
        self.step = 0
        self.drawn: dict[str, int] | None = {}

    def state_dict(self) -> dict:
        return {"step": self.step, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.drawn = dict(state["drawn"]) if state.get("drawn") is not None else None


class Side(NamedTuple):
    """One direction's rows in a Stack: sentences of domain index src, rewritten into tgt."""
    src: int
    tgt: int
    rows: slice


@dataclass
class Stack:
    """The rows that one generator pass handles (StepTools.stacks): one direction's batch, or both
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


class StepTools:
    """Batches, stacks, length control, the likelihood terms, decoded transfers and the update."""

    # ---------------------------------------------------------------- batches
    def batches(self, source=None):
        """Endless (batch of a, batch of b), each process from its own shard. `source`: {domain: items}
        (default: the training sentences; the mined pairs by target domain). The stream is a function of
        the seed alone and counts its batches in the state, so a resumed run skips those the checkpoint's
        run drew and goes on with the very batches the uninterrupted run draws (a checkpoint without the
        counts: re-seeded from the step, fresh batches)."""
        t = self.cfg.train
        name = "train" if source is None else "pairs"
        source = source or self.train_ids
        counted = self.state.drawn is not None
        seed = t.seed if counted else t.seed + self.state.step
        key = len if source is self.train_ids else (lambda pair: len(pair[0]))
        streams = [iter(DomainBatches(source[d], t.batch_size, self.cfg.data.bucket_batches, seed + i,
                                      self.acc.process_index, self.acc.num_processes, key))
                   for i, d in enumerate((self.a, self.b))]
        for _ in range(self.state.drawn.get(name, 0) if counted else 0):
            for s in streams:
                next(s)
        while True:
            if counted:
                self.state.drawn[name] = self.state.drawn.get(name, 0) + 1
            yield [next(s) for s in streams]

    def seed_noise(self) -> None:
        """The denoising noise of a step is a function of (seed, process, step) alone, so a resumed run
        noises a batch as the uninterrupted run would have."""
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

    # ---------------------------------------------------------------- likelihood terms
    def self_reconstruction(self, stack: Stack) -> torch.Tensor:
        """Logits (N, T, V) of L_self = NLL(real | noise(real), to its own domain): the denoising
        autoencoder term, written by g_back; `side_nll` gives each side's loss."""
        noised = [s for side in stack.sides for s in self.noisy(stack.seqs[side.rows])]
        return stack.g_back(*self.to_device(noised), stack.real, stack.back, self.words(stack.real, stack.mask))

    def side_nll(self, logits: torch.Tensor, stack: Stack, side: Side) -> torch.Tensor:
        """Token NLL of one side's real sentences under teacher-forced logits (N, T, V) of its stack."""
        rows = side.rows
        return reconstruction_loss(logits[rows], stack.real[rows], stack.mask[rows], self.cfg.train.label_smoothing)[0]

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

    # ---------------------------------------------------------------- decoding, updates
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
