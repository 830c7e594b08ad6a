"""Candidate generation: sentences in, rewrites out, by one `Search` (`decode_texts`), and per input every
candidate one reranking pass lets compete (`drafts`): the greedy rewrite, one greedy rewrite per guidance
weight of the plan's ladder, candidates - 1 samples, the n-best hypotheses of a beam search, and the
training sentences `Retrieval` finds nearest to the input."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data import pad
from ..pretrained.encoder import cached_embeddings, knn
from ..tokenizer import Tokenizer
from .plan import DecodePlan
from .search import Search, generate


def decode_texts(generator, tok: Tokenizer, texts: list[str], to: str, search: Search = Search(),
                 batch_size: int = 256, words: list[int] | None = None, stats: dict | None = None,
                 away: str | None = None) -> list[str]:
    """Normalized sentences -> normalized rewrites in domain `to`, in input order; with `search.nbest` n > 1
    (beam search), the n best of each, text i's at i*n .. i*n + n - 1.

    Sentences are sorted by length so each batch carries little padding; empty inputs give "".
    Length control (a tokenizer with <len_k> tokens): `words[i]` is the length asked of text i (the
    generator reads the request, see models/generator.py); decoding stops at 2 * words + 4 pieces, and
    an output still longer than asked is cut to `words` words, counted in stats["cut"] (how often the
    model needed the cap). search.guidance > 0 (causal generators): classifier-free guidance away from
    domain `away` (search.guided).
    """
    if tok.length_ids and words is None:
        raise ValueError("this model controls length: give the number of words wanted per text")
    device, nbest = generator.device, search.nbest
    encoded = tok.encode(texts, search.max_len)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    outputs = [""] * (len(texts) * nbest)
    todo = [i for i in order if encoded[i]]
    away_id = tok.domain_ids[away] if search.guidance else None
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        src, mask = pad([encoded[i] for i in rows])
        asked = None if words is None else torch.tensor([words[i] for i in rows], dtype=torch.long, device=device)
        budget = search.max_len if words is None else min(search.max_len, 2 * max(words[i] for i in rows) + 4)
        ids = generate(generator, src.to(device), mask.to(device), tok.domain_ids[to], replace(search, max_len=budget),
                       words=asked, away=away_id)
        for at, text in zip([i * nbest + j for i in rows for j in range(nbest)], tok.decode(ids)):
            i = at // nbest
            if words is not None and len(text.split()) > words[i]:
                text = " ".join(text.split()[: words[i]])
                if stats is not None:
                    stats["cut"] = stats.get("cut", 0) + 1
            outputs[at] = text
    return outputs


@dataclass
class Writer:
    """One direction's decoder as a candidate generator: normalized texts -> rewrites into `to`."""

    generator: object
    tok: Tokenizer
    to: str
    away: str                            # the source domain (guidance steers away from it)
    batch_size: int = 256

    def write(self, texts: list[str], search: Search, words: list[int] | None = None,
              stats: dict | None = None) -> list[str]:
        return decode_texts(self.generator, self.tok, texts, self.to, search, self.batch_size, words, stats,
                            self.away)


def drafts(writer: Writer, norm: list[str], plan: DecodePlan, words: list[int] | None, stats: dict | None,
           seed: int, found: list[list[str]] | None = None) -> list[list[str]]:
    """Per input the candidates of one reranking pass, in this order: the greedy rewrite at the plan's
    guidance, one greedy rewrite per ladder weight, candidates - 1 samples at the plan's temperature drawn
    under `seed` (so the same input gives the same output), the plan's nbest beam hypotheses, and `found`
    (retrieved sentences, per input)."""
    n, extra, nbest = len(norm), plan.candidates - 1, plan.nbest
    greedy_at = replace(plan.search, beam=1, nbest=1, sample=False, temperature=1.0)
    greedy = [writer.write(norm, replace(greedy_at, guidance=w), words, stats if k == 0 else None)
              for k, w in enumerate([plan.search.guidance, *plan.ladder])]
    drawn: list[str] = []
    if extra:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            drawn = writer.write([t for t in norm for _ in range(extra)],
                                 replace(greedy_at, sample=True, temperature=plan.temperature),
                                 [w for w in words for _ in range(extra)] if words else None, stats)
    beams = writer.write(norm, replace(greedy_at, beam=nbest, nbest=nbest, guidance=0.0), words) if nbest else []
    found = found or [[] for _ in norm]
    return [[*(g[i] for g in greedy), *drawn[i * extra:(i + 1) * extra], *beams[i * nbest:(i + 1) * nbest],
             *found[i]] for i in range(n)]


class Retrieval:
    """The training sentences of each domain nearest to a query by a sentence encoder's cosine
    (decode.retrieve). `pools` maps a domain to its sentences (normalized, as the generators read them);
    their embeddings are computed once into the cache folder (pretrained.encoder.cached_embeddings, shared
    with the mining miner: a run mined with the same encoder finds them there)."""

    def __init__(self, encoder, pools: dict[str, list[str]], cache: Path):
        self.encoder, self.pools, self.cache = encoder, pools, Path(cache)
        self.emb: dict[str, torch.Tensor] = {}

    def nearest(self, queries: list[str], domain: str, r: int) -> list[list[str]]:
        """The r sentences of `domain` nearest to each (normalized) query, nearest first."""
        pool = self.pools[domain]
        if domain not in self.emb:
            self.emb[domain] = cached_embeddings(self.encoder, pool, self.cache, progress=len(pool) > 4096)
        if not queries or not pool:
            return [[] for _ in queries]
        _, idx = knn(self.encoder.embed(queries), self.emb[domain], min(r, len(pool)))
        return [[pool[int(j)] for j in row] for row in idx]
