"""The `extract` miner (summarization): unsupervised sentence summarization by word extraction.

Each sentence of the first domain (articles) is summarised into the second (headlines) by the search
below; k is drawn from the headlines' lengths, so the pairs also teach the length request. One direction
is mined; the bootstrap trains the reverse (pseudo summary -> article) as back-translation.

For an article x = x_1 .. x_n and a length k, search for the k of its words, kept in order, that a
headline language model finds fluent and that stay close to the article in meaning (Schumann et al.
2020, "Discrete Optimization for Unsupervised Sentence Summarization with Word-Level Extraction"):

    J(s) = 1/(k+1) * sum_{i=1..k+1} log S(s_i | s_{i-2} s_{i-1})  +  gamma * log cos(v(s), v(x))

    S      a word trigram model of the headline text with stupid backoff (Brants et al. 2007):
           S(w | u v) = c(u v w) / c(u v) if c(u v w) > 0, else alpha * S(w | v), ..., and at the bottom
           (c(w) + 1) / (N + V + 1); s_{k+1} = </s>, so the summary must also end well.
    v(.)   bag of words weighted by IDF (over the articles), so the summary keeps the article's rare words.
    gamma  miner.sim_weight.

Hill climbing: start from the first k words (news leads put the point first), try every move that swaps
one chosen word for one unchosen word (k * (n - k) candidates, scored in one batch: the LM's trigrams
through a per-article cache, the cosines as one matrix product), take the best while it improves J, at
most miner.search_steps steps; miner.restarts more starts from random subsets, the best end kept.
J rises at every step taken (a test checks it).

With a pretrained LM (miner.rescore_lm), the search ends with one more step: the end point and its swaps,
the miner.rescore_top best by J, are scored again as

    J_LM(s) = J(s) + w * 1/|s| log p_LM(s | prompt(x))      (models.prompted.PromptedLM; w = miner.rescore_weight)

and the best by J_LM is the summary: the pretrained LM reads the article, which the trigram model cannot.
Scoring every move of the climb this way costs too much on a CPU (~k (n - k) LM calls a step).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from .pairs import Pairs, rewrite_all

BOS, EOS = "<s>", "</s>"


class NgramLM:
    """Word n-gram model with stupid backoff (a score, not a normalized probability)."""

    def __init__(self, sentences: list[list[str]], order: int = 3, backoff: float = 0.4):
        self.order, self.log_backoff = order, math.log(backoff)
        self.counts: list[Counter] = [Counter() for _ in range(order + 1)]     # counts[m]: m-grams
        self.contexts: list[Counter] = [Counter() for _ in range(order + 1)]   # contexts[m]: (m-1)-word prefixes of m-grams
        for words in sentences:
            padded = [BOS] * (order - 1) + words + [EOS]
            for m in range(1, order + 1):
                for i in range(order - m, len(padded) - m + 1):          # every m-gram that ends on a real word or </s>
                    gram = tuple(padded[i:i + m])
                    self.counts[m][gram] += 1
                    self.contexts[m][gram[:-1]] += 1
        self.tokens = self.contexts[1][()]
        self.vocab = len(self.counts[1])

    def logp(self, context: tuple[str, ...], word: str) -> float:
        """log S(word | context), context the order - 1 words before (BOS-padded)."""
        penalty = 0.0
        for m in range(self.order - 1, 0, -1):
            ctx = context[len(context) - m:]
            joint = self.counts[m + 1].get(ctx + (word,), 0)
            if joint:
                return penalty + math.log(joint / self.contexts[m + 1][ctx])
            penalty += self.log_backoff
        return penalty + math.log((self.counts[1].get((word,), 0) + 1) / (self.tokens + self.vocab + 1))

    def fluency(self, words: list[str]) -> float:
        """Mean log S per token of `words` + </s>."""
        padded = [BOS] * (self.order - 1) + words + [EOS]
        scores = [self.logp(tuple(padded[i - self.order + 1:i]), padded[i]) for i in range(self.order - 1, len(padded))]
        return sum(scores) / len(scores)


def idf_weights(documents: list[list[str]]) -> dict[str, float]:
    """log((1 + D) / (1 + df)) + 1, as scikit-learn's smooth IDF."""
    df = Counter(w for doc in documents for w in set(doc))
    return {w: math.log((1 + len(documents)) / (1 + c)) + 1 for w, c in df.items()}


class Extractor:
    """The search of the module docstring for one article at a time."""

    def __init__(self, lm: NgramLM, idf: dict[str, float], sim_weight: float = 1.0, steps: int = 30,
                 restarts: int = 0, seed: int = 0, rescorer=None, rescore_top: int = 24,
                 rescore_weight: float = 0.5):
        self.lm, self.idf, self.sim_weight, self.steps, self.restarts = lm, idf, sim_weight, steps, restarts
        self.rescorer, self.rescore_top, self.rescore_weight = rescorer, rescore_top, rescore_weight
        self.rng = random.Random(seed)
        self.default_idf = max(idf.values(), default=1.0)

    def objective(self, words: list[str], chosen: np.ndarray, cache: dict | None = None) -> np.ndarray:
        """J of each row of `chosen` (c, k): sorted positions into `words`. Returns (c,)."""
        cache = {} if cache is None else cache
        order = self.lm.order
        token = lambda p: BOS if p == -1 else EOS if p == -2 else words[p]  # noqa: E731
        fluency = np.empty(len(chosen))
        for r, row in enumerate(chosen.tolist()):
            positions = [-1] * (order - 1) + row + [-2]               # -1: <s>, -2: </s>
            total = 0.0
            for i in range(order - 1, len(positions)):
                key = tuple(positions[i - order + 1:i + 1])
                if key not in cache:
                    cache[key] = self.lm.logp(tuple(token(p) for p in key[:-1]), token(key[-1]))
                total += cache[key]
            fluency[r] = total / (len(positions) - order + 1)
        # cos(v(s), v(x)) over the article's distinct words: counts (c, u) @ idf^2 weights
        vocab = {w: j for j, w in enumerate(dict.fromkeys(words))}
        column = np.array([vocab[w] for w in words])
        weight = np.array([self.idf.get(w, self.default_idf) for w in vocab])          # (u,)
        article = np.bincount(column, minlength=len(vocab)) * weight                    # (u,)
        counts = np.zeros((len(chosen), len(vocab)))
        np.add.at(counts, (np.repeat(np.arange(len(chosen)), chosen.shape[1]), column[chosen.ravel()]), 1.0)
        summary = counts * weight                                                        # (c, u)
        cos = summary @ article / (np.linalg.norm(summary, axis=1) * np.linalg.norm(article) + 1e-12)
        return fluency + self.sim_weight * np.log(np.maximum(cos, 1e-9))

    def search(self, words: list[str], k: int) -> tuple[list[int], float, list[float]]:
        """(chosen positions, J, J after each step of the best start) for a k-word summary of `words`."""
        n = len(words)
        if k >= n:
            return list(range(n)), float(self.objective(words, np.arange(n)[None])[0]), []
        cache: dict = {}
        starts = [list(range(k))] + [sorted(self.rng.sample(range(n), k)) for _ in range(self.restarts)]
        best = None
        for start in starts:
            chosen = np.array(start)
            score = float(self.objective(words, chosen[None], cache)[0])
            trace = [score]
            for _ in range(self.steps):
                candidates = self.swaps(chosen, n)
                scores = self.objective(words, candidates, cache)
                top = int(scores.argmax())
                if scores[top] <= score + 1e-9:
                    break
                chosen, score = candidates[top], float(scores[top])
                trace.append(score)
            if best is None or score > best[1]:
                best = (chosen.tolist(), score, trace)
        return self.rescored(words, best, cache) if self.rescorer is not None else best

    def rescored(self, words: list[str], best: tuple, cache: dict) -> tuple[list[int], float, list[float]]:
        """The last step of the module docstring: (chosen, J_LM, trace) among the end point's neighbourhood."""
        end = np.array(best[0])
        candidates = np.unique(np.concatenate([end[None], self.swaps(end, len(words))]), axis=0)
        scores = self.objective(words, candidates, cache)
        top = np.argsort(-scores, kind="stable")[: self.rescore_top]
        sums, counts = self.rescorer.logprob([" ".join(words[i] for i in row) for row in candidates[top]], " ".join(words))
        rescored = scores[top] + self.rescore_weight * np.array(sums) / np.maximum(np.array(counts), 1)
        pick = int(rescored.argmax())
        return candidates[top[pick]].tolist(), float(rescored[pick]), best[2]

    @staticmethod
    def swaps(chosen: np.ndarray, n: int) -> np.ndarray:
        """Every subset that swaps one chosen position for one unchosen one, sorted: (k * (n - k), k)."""
        out = np.setdiff1d(np.arange(n), chosen)
        k = len(chosen)
        candidates = np.repeat(chosen[None], k * len(out), axis=0)             # (k (n-k), k)
        candidates[np.arange(len(candidates)), np.repeat(np.arange(k), len(out))] = np.tile(out, k)
        return np.sort(candidates, axis=1)


class ExtractMiner:
    """Pseudo summaries by word-extraction search (see the module docstring). The pair's score is the
    search objective J."""

    name = "extract"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None):
        if segment is not None and segment.name != "words":
            raise ValueError("the extract miner works on words: set miner.units=words")
        self.cfg, self.log = cfg, log
        self.extractor: Extractor | None = None
        self.lengths: list[int] = []

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "ExtractMiner":
        started = time.time()
        articles, headlines = ([t.split() for t in texts] for texts in texts_by_domain.values())
        c = self.cfg
        rescorer = None
        if c.rescore_lm:
            from ..models.prompted import PromptedLM

            rescorer = PromptedLM.load(c.rescore_lm, template=c.rescore_prompt)
        self.extractor = Extractor(NgramLM(headlines, c.lm_order), idf_weights(articles), c.sim_weight,
                                   c.search_steps, c.restarts, rescorer=rescorer, rescore_top=c.rescore_top,
                                   rescore_weight=c.rescore_weight)
        self.lengths = [len(h) for h in headlines if h]
        self.log(f"headline {c.lm_order}-gram model and article IDF ({time.time() - started:.0f} s)")
        return self

    def summarize(self, words: list[str], k: int) -> tuple[list[str], float]:
        chosen, score, _ = self.extractor.search(words, k)
        return [words[i] for i in chosen], score

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        if self.extractor is None:
            self.fit(texts_by_domain)
        src, tgt = list(texts_by_domain)
        articles = texts_by_domain[src][: self.cfg.max_sources or None]
        lengths = iter(np.random.default_rng(0).choice(self.lengths, len(articles)))

        def summary(text: str):
            words, k = text.split(), int(next(lengths))
            if len(words) < 2:
                return None
            chosen, score = self.summarize(words, min(k, len(words) - 1))
            return " ".join(chosen), score

        sources, targets, scores, seconds = rewrite_all(articles, summary, f"extract {src}->{tgt}", progress_factory)
        self.log(f"{src}->{tgt}: {len(sources)} pseudo summaries of {len(articles)} articles in {seconds:.0f} s "
                 f"({len(articles) / max(seconds, 1e-9):.0f} articles/s)")
        return {(src, tgt): Pairs(src, tgt, sources, targets, scores)}

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The search alone as a summarizer: miner.words words of each text (all of a shorter one)."""
        out = []
        for text in texts:
            words = text.split()
            out.append(" ".join(self.summarize(words, min(self.cfg.words, len(words)))[0]) if words else "")
        return out
