"""Losses as pure functions of tensors and masks, each returning (loss, logs).

Notation: real_a is a sentence of domain a, fake_b = G(real_a -> b), rec_a = G(fake_b -> a).
D_b(x) is the discriminator's probability that x is real text of domain b, scored on every prefix x_<=t.

The generator's adversarial term has one signature for every estimator,

    ESTIMATORS[name](fake_b, score_b, opts) -> (loss, logs)

where `score_b(x)` returns per-prefix (log D_b(x), log p_fake(x)), each (B, T), for ids (B, T) or
distributions (B, T, V). The estimators differ in what reaches D and how the gradient gets back:
soft / gumbel backpropagate through relaxed one-hots, reinforce uses the policy gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .models.discriminator import last_position
from .models.generator import Sample

Score = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Token cross-entropy  -1/|m| sum_t m_t log p(target_t | ...);  logits (B, T, V), target/mask (B, T).

    Used for self-reconstruction (denoising autoencoder: noisy real_a -> real_a) and for the cycle
    (fake_b -> rec_a vs real_a).
    """
    ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none",
                         label_smoothing=label_smoothing)                  # (B, T)
    loss = masked_mean(ce, mask)
    return loss, {"nll": loss.item()}


def sequence_logprob(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean log p(target_t) over each row's real tokens: (B,). The DualRL-style cycle reward."""
    logp = logits.float().log_softmax(-1).gather(2, target[..., None]).squeeze(-1)   # (B, T)
    m = mask.float()
    return (logp * m).sum(1) / m.sum(1).clamp(min=1.0)


def sentence_level(logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-prefix scores (B, T) -> the whole sentence's score (B, 1) with an all-True mask."""
    return last_position(logp, mask)[:, None], torch.ones_like(mask[:, :1])


def discriminator_loss(real: list[tuple[torch.Tensor, torch.Tensor]],
                       fake: list[tuple[torch.Tensor, torch.Tensor]], dense: bool = True) -> tuple[torch.Tensor, dict]:
    """L_D = sum_real E_prefix[-log D_b(x)] + sum_fake E_prefix[-log p_fake(x)], every prefix counted
    when `dense` (needed for per-step rewards), else the whole sentences only.

    `real`: (log D_b, mask) pairs of text that is truly of domain b: real_b, and G's own rewrite of
    real_b into b, given to D in the same form as the fakes (Style Transformer, Dai et al. 2019), so
    that D must judge style rather than tell generated text from corpus text. `fake`: (log p_fake,
    mask) of the detached transfers fake_b = G(real_a -> b). Training on prefixes is what lets D hand
    out dense per-step rewards (ScratchGAN).
    """
    if not dense:
        real, fake = [sentence_level(*x) for x in real], [sentence_level(*x) for x in fake]
    real_loss = sum(masked_mean(-logp, mask) for logp, mask in real)
    fake_loss = sum(masked_mean(-logp, mask) for logp, mask in fake)
    return real_loss + fake_loss, {"d_real": float(real_loss.detach()), "d_fake": float(fake_loss.detach())}


def relaxed_adversarial(fake: Sample, score: Score, opts: "AdvOptions") -> tuple[torch.Tensor, dict]:
    """Non-saturating G loss through relaxed one-hots on whole sentences:  L = -E[log D_b(probs(fake_b))].

    soft: probs = softmax(logits / tau)  (Style Transformer's continuous input to D, Dai et al. 2019);
    gumbel: probs = softmax((logits + g) / tau), g ~ Gumbel(0, 1)  (Jang et al. 2017; Kusner &
    Hernandez-Lobato 2016), hard one-hot in the forward pass with straight-through.
    Only the sentence's score counts: asking every prefix to look like domain b (dense rewards) pushes
    G to open every sentence with style words ("very very good ...", measured).
    """
    real_logp = last_position(score(fake.probs)[0], fake.mask)                  # (B,)
    loss = -real_logp.mean()
    return loss, {"adv": loss.item(), "fool": real_logp.exp().mean().item()}


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = sum_{s >= t} gamma^(s - t) r_s over real positions; rewards, mask (B, T) -> (B, T)."""
    rewards = rewards * mask.to(rewards.dtype)
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.size(1) - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


class EMABaseline:
    """b_t: exponential moving average of the mean return at step t (ScratchGAN's baseline)."""

    def __init__(self, decay: float = 0.95):
        self.decay = decay
        self.value = torch.zeros(0)

    def __call__(self, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        mean = (returns * m).sum(0) / m.sum(0).clamp(min=1.0)                # (T,)
        if self.value.numel() < mean.numel():
            self.value = torch.cat([self.value.to(mean.device), mean[self.value.numel():]])
        self.value = self.value.to(mean.device)
        baseline = self.value[: mean.numel()].clone()
        self.value[: mean.numel()] = self.decay * baseline + (1 - self.decay) * mean
        return baseline[None].expand_as(returns)

    def state_dict(self) -> dict:
        return {"value": self.value.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


def fixed_baseline(values: torch.Tensor):
    """A REINFORCE baseline (returns, mask) -> values (B, T'), zero-padded or cut to the returns' width."""
    def baseline(returns, _mask):
        width = returns.size(1)
        return F.pad(values, (0, max(0, width - values.size(1))))[:, :width]

    return baseline


@dataclass
class AdvOptions:
    gamma: float = 0.9
    # reinforce: (returns, mask) -> baseline (B, T); an EMABaseline or the greedy decode's returns.
    baseline: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    seq_reward: torch.Tensor | None = None       # (B,) sentence reward added to every step's return


def reinforce_adversarial(fake: Sample, score: Score, opts: AdvOptions) -> tuple[torch.Tensor, dict]:
    """Policy gradient with dense rewards (ScratchGAN, de Masson d'Autume et al. 2019):

        r_t = D_b(fake_b_<=t),    R_t = sum_{s>=t} gamma^(s-t) r_s  (+ c),    L = -E_t[(R_t - b_t) log pi(y_t | y_<t, x)]

    c = opts.seq_reward is a sentence-level reward given undiscounted to every token of the sentence,
    e.g. the content reward of DualRL (Luo et al. 2019): the mean log-prob of getting real_a back from
    the sample, lambda * log p(real_a | fake_b). (Added at the last step only, gamma^T would leave the
    first tokens, where content is decided, almost without it.) Only `fake.logprobs` carries a
    gradient; D sees the sampled ids.
    """
    with torch.no_grad():
        real_logp, _ = score(fake.ids)
        rewards = real_logp.exp()                                                # (B, T)
        returns = discounted_returns(rewards, fake.mask, opts.gamma)
        if opts.seq_reward is not None:
            returns = returns + opts.seq_reward[:, None] * fake.mask.to(returns.dtype)
        baseline = opts.baseline(returns, fake.mask) if opts.baseline is not None else 0.0
        advantage = returns - baseline
    loss = masked_mean(-advantage * fake.logprobs, fake.mask)
    return loss, {"adv": loss.item(), "fool": masked_mean(rewards, fake.mask).item(),
                  "advantage": masked_mean(advantage.abs(), fake.mask).item()}


ESTIMATORS = {"soft": relaxed_adversarial, "gumbel": relaxed_adversarial, "reinforce": reinforce_adversarial}
SAMPLE_MODE = {"soft": "soft", "gumbel": "gumbel", "reinforce": "multinomial"}
