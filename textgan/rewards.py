"""Sequence rewards for REINFORCE (DualRL, Luo et al. 2019): a style reward from a classifier trained on
the training text, a content reward from the cycle, and how the two are combined.

    r_style(y)   = p_C(target domain | y)                      a classifier C over piece ids, in [0, 1]
    r_content(y) = exp(1/|x| sum_t log p(x_t | y, x_<t))       how well the back generator rebuilds x from
                                                               y, per token, in [0, 1]  (train.content_reward
                                                               = cycle)
              or = max(cos(e(x), e(y)), eps)                  the semantic similarity of x and y under a
                                                               pretrained sentence encoder e (content_reward
                                                               = e5: multilingual-e5-small, so x and y may be
                                                               in different languages)

    sum:       R = w_s * r_style + w_c * log r_content          (the log-prob form of train.cycle_reward)
    harmonic:  R = (w_s + w_c) / (w_s / r_style + w_c / r_content)
               the weighted harmonic mean (DualRL's, the F-beta form with beta^2 = w_c / w_s): high only
               when both are, so neither can be bought by giving up the other.

C is trained apart from the discriminator and from the evaluator's judges: a small causal Transformer
(the discriminator's architecture) over pieces, trained once on real sentences of each domain before
the adversarial phase and then frozen (`style.safetensors` in the run).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import DiscriminatorConfig
from .data import DomainBatches, pad
from .models.discriminator import TextDiscriminator, last_position


def style_reward(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Whole-sentence class logits (B, k) -> p(target | y), (B,)."""
    return logits.float().softmax(-1)[:, target]


def content_reward(mean_logprob: torch.Tensor) -> torch.Tensor:
    """Mean per-token log p(x | y) (B,) -> the geometric-mean token probability in [0, 1], (B,)."""
    return mean_logprob.exp()


def semantic_content(encoder, sources: list[str], outputs: list[str], eps: float = 1e-4) -> torch.Tensor:
    """log r_content (B,) from the encoder's cosine of each source and its output (an empty output: eps),
    in the log form `combine` takes for the cycle's mean log-prob. Each distinct text is embedded once (the
    reranker repeats a source for each of its candidates, and samples repeat one another)."""
    distinct = list(dict.fromkeys([*sources, *outputs]))
    row = {text: i for i, text in enumerate(distinct)}
    emb = encoder.embed(distinct)
    return log_cosine(emb[[row[s] for s in sources]], emb[[row[o] for o in outputs]],
                      [not o.strip() for o in outputs], eps)


def log_cosine(src: torch.Tensor, out: torch.Tensor, empty: list[bool], eps: float = 1e-4) -> torch.Tensor:
    """log max(cos, eps) (B,) of unit-length embeddings src, out (B, H); eps where `empty` says the output is."""
    cos = (src * out).sum(-1)
    return cos.masked_fill(torch.tensor(empty, dtype=torch.bool, device=cos.device), eps).clamp(min=eps).log()


def combine(r_style: torch.Tensor, mean_logprob: torch.Tensor, w_style: float, w_content: float,
            mix: str = "sum", eps: float = 1e-6) -> torch.Tensor:
    """The sentence reward R (B,) from the style reward and the content log-prob (see the module doc)."""
    if mix == "sum":
        return w_style * r_style + w_content * mean_logprob
    if mix == "harmonic":
        r_content = content_reward(mean_logprob)
        return (w_style + w_content) / (w_style / r_style.clamp(min=eps) + w_content / r_content.clamp(min=eps))
    raise ValueError(f"unknown reward mix {mix!r}; choose sum or harmonic")


class StyleClassifier(torch.nn.Module):
    """p(domain | sentence) over piece ids: the discriminator's causal Transformer, read at the last token."""

    def __init__(self, cfg: DiscriminatorConfig, vocab_size: int, n_domains: int, max_len: int):
        super().__init__()
        self.net = TextDiscriminator(cfg, vocab_size, n_domains, max_len)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, T) -> class logits (B, k)."""
        return last_position(self.net(ids), mask)

    def fit(self, seqs_by_domain: list[list[list[int]]], steps: int, batch_size: int = 64, lr: float = 5e-4,
            seed: int = 0, device="cpu", log=None, progress=None) -> dict:
        """Train on real sentences (one id list per domain, batches balanced across domains); returns
        {"loss": last mean loss}. `log(line)` every 100 steps, `progress(1)` every step (a progress bar's
        update)."""
        streams = [iter(DomainBatches(seqs, batch_size // len(seqs_by_domain), seed=seed + i))
                   for i, seqs in enumerate(seqs_by_domain)]
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
        self.train()
        losses = []
        for step in range(steps):
            batch = [next(s) for s in streams]
            ids, mask = pad([s for part in batch for s in part])
            labels = torch.tensor([d for d, part in enumerate(batch) for _ in part])
            loss = F.cross_entropy(self(ids.to(device), mask.to(device)), labels.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress:
                progress(1)
            if log and (step + 1) % 100 == 0:
                log(f"  style classifier step {step + 1}/{steps}: loss {sum(losses[-100:]) / len(losses[-100:]):.3f}")
        self.eval()
        return {"loss": sum(losses[-50:]) / max(1, len(losses[-50:]))}

    @torch.no_grad()
    def probabilities(self, seqs: list[list[int]], device="cpu", batch_size: int = 256) -> torch.Tensor:
        """p(domain | sentence) of id lists, (N, k), on the CPU."""
        self.eval()
        out = [self(*(t.to(device) for t in pad(seqs[start:start + batch_size]))).float().softmax(-1).cpu()
               for start in range(0, len(seqs), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.net.head.out_features)

    def accuracy(self, seqs_by_domain: list[list[list[int]]], device="cpu", batch_size: int = 256) -> float:
        """Share (%) of sentences put in their own domain."""
        right = sum(int((self.probabilities(seqs, device, batch_size).argmax(-1) == d).sum())
                    for d, seqs in enumerate(seqs_by_domain))
        return 100.0 * right / max(1, sum(len(seqs) for seqs in seqs_by_domain))
