"""Text discriminators over token ids or soft distributions, with a logit per prefix.

The encoder is causal (each position sees only the tokens before it), so position t scores the prefix
x_<=t: the last real position gives the sequence logit and every position a dense reward for
REINFORCE (ScratchGAN, de Masson d'Autume et al. 2019).

Two set-ups (DomainCritic):
- `multiclass`: one network, classes = the k real domains + "fake" (Style Transformer, Dai et al. 2019);
- `binary`: one network per domain, "is this real text of domain y?" (CycleGAN's D_A, D_B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiscriminatorConfig


def last_position(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """values (B, T, ...) -> the entry at each row's last True of mask (B, T)."""
    last = mask.long().sum(1).clamp(min=1) - 1
    return values[torch.arange(values.size(0), device=values.device), last]


class TextDiscriminator(nn.Module):
    """Causal transformer encoder; returns per-prefix logits (B, T, n_out)."""

    def __init__(self, cfg: DiscriminatorConfig, vocab_size: int, n_out: int, max_len: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, cfg.d_model)
        self.positions = nn.Embedding(max_len + 8, cfg.d_model)
        self.scale = cfg.d_model ** 0.5
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, n_out)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Ids (B, T) or distributions (B, T, V) -> (B, T, H) through the same table and scale."""
        if x.dim() == 2:
            return self.tokens(x) * self.scale
        return (x.to(self.tokens.weight.dtype) @ self.tokens.weight) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.size(1)
        h = self.embed(x) + self.positions(torch.arange(t, device=x.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=x.device, dtype=h.dtype)
        # Padding sits after the real tokens, so the causal mask alone keeps it out of every real prefix.
        h = self.encoder(h, mask=causal, is_causal=True)
        return self.head(self.norm(h))


class DomainCritic(nn.Module):
    """The discriminator(s) of a task, behind one interface used by the losses and the trainer."""

    def __init__(self, cfg: DiscriminatorConfig, vocab_size: int, n_domains: int, max_len: int):
        super().__init__()
        self.mode = cfg.mode
        self.n_domains = n_domains
        if cfg.mode == "multiclass":
            self.nets = nn.ModuleList([TextDiscriminator(cfg, vocab_size, n_domains + 1, max_len)])
        else:
            self.nets = nn.ModuleList([TextDiscriminator(cfg, vocab_size, 1, max_len) for _ in range(n_domains)])

    def log_probs(self, x: torch.Tensor, domain: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-prefix (log p(real text of `domain`), log p(fake)), each (B, T)."""
        if self.mode == "multiclass":
            logp = self.nets[0](x).float().log_softmax(-1)                 # (B, T, k + 1)
            return logp[..., domain], logp[..., self.n_domains]
        logit = self.nets[domain](x).float().squeeze(-1)                    # (B, T)
        return F.logsigmoid(logit), F.logsigmoid(-logit)

    @torch.no_grad()
    def domain_scores(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, k) scores of each real domain for whole sentences, for detecting an input's domain."""
        if self.mode == "multiclass":
            return last_position(self.nets[0](x), mask)[:, : self.n_domains]
        return torch.stack([last_position(net(x), mask).squeeze(-1) for net in self.nets], dim=1)
