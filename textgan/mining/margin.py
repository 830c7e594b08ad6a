"""Pseudo-parallel sentences mined from two monolingual corpora with a pretrained multilingual sentence
encoder (train.bootstrap=mine): bitext mining by the margin score (Artetxe & Schwenk 2019), as CRISS
(Tran et al. 2020) mines its training pairs.

With e(.) the encoder's normalised embeddings and NN_k(x) the k nearest sentences of the other language,

    margin(x, y) = cos(x, y) / ( sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{z in NN_k(y)} cos(y, z) / 2k )

(the ratio margin): a pair whose cosine stands out from both sentences' neighbourhoods scores high, while
a "hub" sentence close to everything does not. A pair is mined when each sentence is the other's best by
margin among its `mine_candidates` nearest by cosine (mutual nearest neighbours) and the margin is at least
`min_margin` (chosen on dev: scripts/bench_mining.py). Alone, the miner is a translator by retrieval:
each sentence replaced by its best neighbour by margin in the other language's whole training text.

Kind of every result that uses it: "no parallel data of ours, pretrained multilingual encoder" (its makers
trained it on text pairs that include translations).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..corpora import cache_dir
from ..pretrained.encoder import Encoder, cached_embeddings, knn
from .pairs import Pairs


class MarginIndex:
    """Margin scores between sentences of language a (rows) and b: each side's mean cosine to its k nearest
    of the other side, and the `candidates` nearest by cosine to rank by margin."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, k: int = 4, candidates: int = 16):
        self.k = k
        self.cand_ab = knn(a, b, max(k, candidates))          # (A, C): b's nearest to each a
        self.cand_ba = knn(b, a, max(k, candidates))          # (B, C)
        self.mean_a = self.cand_ab[0][:, :k].mean(1)          # (A,) neighbourhood of each a in b
        self.mean_b = self.cand_ba[0][:, :k].mean(1)          # (B,)

    def best(self, forward: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(margin, index) of each a's best b by margin (forward) or each b's best a, among the candidates."""
        (sims, idx), own, other = (self.cand_ab, self.mean_a, self.mean_b) if forward else \
            (self.cand_ba, self.mean_b, self.mean_a)
        margin = sims / ((own[:, None] + other[idx]) / 2)     # (N, C)
        score, pos = margin.max(1)
        return score, idx.gather(1, pos[:, None])[:, 0]

    def mutual(self, min_margin: float = 0.0) -> list[tuple[int, int, float]]:
        """(a index, b index, margin) of the mutual best pairs by margin, at least min_margin, best first."""
        ab_score, ab = self.best(True)
        _, ba = self.best(False)
        keep = (ba[ab] == torch.arange(len(ab))) & (ab_score >= min_margin)
        rows = keep.nonzero()[:, 0]
        order = ab_score[rows].argsort(descending=True)
        return [(int(i), int(ab[i]), float(ab_score[i])) for i in rows[order]]


def query_margin(queries: torch.Tensor, pool: torch.Tensor, pool_mean: torch.Tensor, k: int,
                 candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(margin, index) of each new query's best pool sentence: `pool_mean` is each pool sentence's mean
    cosine to its k nearest of the queries' language (MarginIndex.mean_b), computed on the training text."""
    sims, idx = knn(queries, pool, max(k, candidates))
    own = sims[:, :k].mean(1)
    margin = sims / ((own[:, None] + pool_mean[idx]) / 2)
    score, pos = margin.max(1)
    return score, idx.gather(1, pos[:, None])[:, 0]


class MiningMiner:
    """train.bootstrap=mine: mutual nearest neighbours by margin between the two domains' training text
    (see the module docstring); pairs go both ways with the margin as their score."""

    name = "mine"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None, encoder: Encoder | None = None):
        self.cfg, self.log = cfg, log
        self.encoder = encoder
        self.texts: dict[str, list[str]] = {}
        self.emb: dict[str, torch.Tensor] = {}
        self.index: MarginIndex | None = None

    def embeddings(self, texts: list[str], progress: bool = True) -> torch.Tensor:
        if self.encoder is None:
            self.encoder = Encoder.load(self.cfg.encoder)
        return cached_embeddings(self.encoder, texts, cache_dir("embeddings"), progress=progress)

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "MiningMiner":
        started = time.time()
        self.texts = {d: list(t) for d, t in texts_by_domain.items()}
        self.emb = {d: self.embeddings(t) for d, t in self.texts.items()}
        a, b = self.texts
        self.index = MarginIndex(self.emb[a], self.emb[b], self.cfg.margin_k, self.cfg.mine_candidates)
        self.log(f"embedded {' and '.join(f'{len(t)} {d}' for d, t in self.texts.items())} sentences with "
                 f"{self.cfg.encoder} and indexed them ({time.time() - started:.0f} s)")
        return self

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict:
        if self.index is None:
            self.fit(texts_by_domain)
        a, b = self.texts
        found = self.index.mutual(self.cfg.min_margin)
        self.log(f"{len(found)} mutual nearest pairs by margin >= {self.cfg.min_margin} among "
                 f"{len(self.texts[a])} {a} and {len(self.texts[b])} {b} sentences")
        src = [self.texts[a][i] for i, _, _ in found]
        tgt = [self.texts[b][j] for _, j, _ in found]
        scores = [s for _, _, s in found]
        return {(a, b): Pairs(a, b, src, tgt, scores), (b, a): Pairs(b, a, tgt, src, scores)}

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The miner alone as a translator: each text's best sentence by margin in tgt's training text."""
        a, _ = self.texts
        pool_mean = self.index.mean_b if src == a else self.index.mean_a
        queries = self.encoder.embed(texts)
        _, best = query_margin(queries, self.emb[tgt], pool_mean, self.cfg.margin_k, self.cfg.mine_candidates)
        return [self.texts[tgt][int(i)] for i in best]


def translation_hits(src_texts: list[str], tgt_texts: list[str], found: torch.Tensor, pool: list[str]) -> torch.Tensor:
    """(N,) bool: whether pool[found[i]] is a translation of src_texts[i], i.e. (source, found) is one of the
    aligned pairs. Tatoeba repeats sentences (one Chinese sentence with two English translations, on two
    lines), so the line's own partner is not the only right answer."""
    gold = set(zip(src_texts, tgt_texts))
    return torch.tensor([(s, pool[j]) in gold for s, j in zip(src_texts, found.tolist())])
