"""The reranker's scores: what it reads of each candidate y, a rewrite of input x (`Features`), and the one
combination of them (`combine`), the DualRL reward used as a selector instead of a training signal:

    r_style(y)   = p_C(target domain | y)                 the run's style classifier (style.safetensors,
                                                          rewards.StyleClassifier; not an evaluator judge)
                or min(p_C, p_E)(target domain | y)       with decode.semantic_style: p_E reads the sentence
                                                          encoder's embedding of y (rewards.EmbeddingStyle),
                                                          a second opinion a rewrite must also convince
    r_content(y) = exp(1/|x| sum_t log p(x_t | y, x_<t)   the back generator rebuilding the input x from y,
                       - beta * max(0, |y| / |x| - 1))    with decode.length_penalty beta (lengths in pieces;
                                                          0 = off): growth beyond the input is charged
    score(y)     = (w_s + w_c) / (w_s / r_style + w_c / r_content)    (rewards.combine, harmonic; w_s > 0)
                or w_c * log r_content                                (w_s = 0: no style term, e.g. translation)
                   + w_e * log cos(e(x), e(y))                        (decode.semantic_weight; 0 = off)
                   + w_f * log p_LM(y)                                (decode.fluency_weight; 0 = off)
                   + w_d * 1/|y| sum_t log p_G(y_t | x, y_<t)         (decode.direct_weight; 0 = off)

    cos(e(x), e(y)) the cosine of x's and y's embeddings by a pretrained sentence encoder (decode.encoder,
                   e.g. multilingual-e5-small: x and y may be in different languages)
    log p_LM(y)  = sum_t log p_LM(y_t | y_<t) over y's pieces and a closing newline, under a pretrained
                   causal LM (decode.fluency_lm, by default the generator's own generator.init, as
                   released, without the run's fine-tuning) read after its end-of-text token
                   (models.prompted.PromptedLM, no prompt): a total, not a mean, so it also prefers the
                   shorter of two equally fluent rewrites. decode.fluency_domains limits it to candidates
                   written into those domains (translation: an English LM scores the English ones only).
    p_G          the generator writing y itself: with the back generator's p(x | y) and the LM's p(y) the
                   three terms of noisy-channel reranking (Yee et al. 2019), direct, channel and prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import pad
from ..losses import sequence_logprob
from ..rewards import combine as mix
from .plan import Scoring


@torch.no_grad()
def content_logprob(back, sources: list[list[int]], outputs: list[list[int]], back_to: int,
                    batch_size: int = 128) -> torch.Tensor:
    """Mean log p(source | output) per pair (N,) under the back generator writing into token `back_to`."""
    device = back.device
    scores = []
    for start in range(0, len(sources), batch_size):
        src, src_mask = pad([y or [] for y in outputs[start:start + batch_size]])
        tgt, tgt_mask = pad(sources[start:start + batch_size])
        logits = back(src.to(device), src_mask.to(device), tgt.to(device), back_to)
        scores.append(sequence_logprob(logits, tgt.to(device), tgt_mask.to(device)).cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def growth(sources: list[list[int]], outputs: list[list[int]]) -> torch.Tensor:
    """|y| / |x| - 1 per pair (N,), in pieces: how much longer than its input each output is."""
    return torch.tensor([len(y) / max(1, len(x)) - 1 for x, y in zip(sources, outputs)])


@dataclass
class Features:
    """What the reranker reads of M candidates, each a rewrite of the input beside it, (M,) each; None for
    a term its Scoring leaves out."""

    content: torch.Tensor                # mean log p(x | y) under the back generator (the channel model)
    growth: torch.Tensor                 # |y| / |x| - 1 in pieces
    style: torch.Tensor | None = None    # p_C(target | y), the run's style classifier
    second_style: torch.Tensor | None = None   # p_E(target | y), the encoder's (decode.semantic_style)
    fluency: torch.Tensor | None = None  # log p_LM(y)
    semantic: torch.Tensor | None = None  # log cos(e(x), e(y))
    direct: torch.Tensor | None = None   # mean log p_G(y | x) under the generator that wrote y


def combine(f: Features, w: Scoring) -> torch.Tensor:
    """The score (M,) of each candidate (module docstring); higher is better."""
    content = f.content
    if w.length_penalty:
        content = content - w.length_penalty * f.growth.clamp(min=0).to(content)
    if w.style:
        r_style = f.style
        if f.second_style is not None:
            r_style = torch.minimum(r_style, f.second_style.reshape(-1).to(r_style))
        scores = mix(r_style, content, w.style, w.content, mix="harmonic")
    else:
        scores = w.content * content
    for extra, weight in [(f.fluency, w.fluency), (f.semantic, w.semantic), (f.direct, w.direct)]:
        if extra is not None and weight:
            scores = scores + weight * extra.reshape(-1).to(scores)
    return scores
