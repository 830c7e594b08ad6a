"""A shared latent space: a domain critic that reads the encoder's states, and the encoder trained to fool it.

Lample et al. (2018) train the encoder of an unsupervised translation model against a discriminator that
guesses the language from its states, so that both languages are encoded into one space ("projection to a
common space"). `train.latent_adv` (the weight lambda_lat) adds this to every generator update of any task:

    critic:   min_C  L_C = CE(C(h), d)              h = encoder states of real sentences of domain d
    encoder:  reversal        min_enc  -lambda_lat * L_C     (gradient reversal, Ganin & Lempitsky 2015:
                                                              one backward pass, the gradient sign flipped)
              nonsaturating   min_enc  lambda_lat * CE(C(h), other domains uniform)   (C held fixed)

C reads the states mean-pooled over the sentence (`pool: mean`) or each position alone (`pool: tokens`, the
loss a mean over positions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("reversal", "nonsaturating")
POOLS = ("mean", "tokens")


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; backward multiplies the gradient by -scale."""
    return _Reverse.apply(x, scale)


class LatentCritic(nn.Module):
    """p(domain | encoder states): a two-layer MLP over pooled (B, H) or per-position (B, S, H) states."""

    def __init__(self, d_model: int, domains: int, pool: str = "mean", hidden: int = 256):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown latent pooling {pool!r}; choose from {POOLS}")
        self.pool = pool
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, domains))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (B, S, H), mask (B, S) -> (logits (B, D) or (B, S, D), weights (B,) or (B, S) of each)."""
        mask = mask.to(states.dtype)
        if self.pool == "mean":
            pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            return self.net(pooled), torch.ones_like(mask[:, 0])
        return self.net(states), mask


def latent_losses(critic: LatentCritic, states: torch.Tensor, mask: torch.Tensor, domain: torch.Tensor,
                  loss: str, weight: float) -> tuple[torch.Tensor, dict]:
    """The critic's and the encoder's terms as one loss to add to the generator's (see the module doc):
    its backward trains C to tell the domains (B,) apart and the encoder, scaled by `weight`, to hide them."""
    if loss not in LOSSES:
        raise ValueError(f"unknown latent adversarial loss {loss!r}; choose from {LOSSES}")

    def ce(logits, target, w):
        per = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1, *target.shape[w.dim():]),
                              reduction="none")
        return (per * w.reshape(-1)).sum() / w.sum().clamp(min=1)

    def targets(w, labels):
        return labels.view(-1, *[1] * (w.dim() - 1)).expand_as(w)

    n = critic.net[-1].out_features
    if loss == "reversal":
        logits, w = critic(grad_reverse(states, weight), mask)
        l_critic = ce(logits, targets(w, domain), w)
        total = l_critic
    else:
        logits, w = critic(states.detach(), mask)
        l_critic = ce(logits, targets(w, domain), w)
        frozen = {k: v.detach() for k, v in critic.named_parameters()}
        fooled, _ = torch.func.functional_call(critic, frozen, (states, mask))
        other = (1 - F.one_hot(domain, n).float()) / max(1, n - 1)                  # (B, D)
        other = other.view(other.size(0), *[1] * (w.dim() - 1), n).expand(*w.shape, n)
        total = l_critic + weight * ce(fooled, other, w)
    accuracy = ((logits.argmax(-1) == targets(w, domain)).float() * w).sum() / w.sum().clamp(min=1)
    return total, {"latent_critic": l_critic.item(), "latent_acc": accuracy.item()}
