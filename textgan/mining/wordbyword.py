"""The `wordbyword` miner (translation): each sentence translated piece by piece through the run's
cross-lingual lexicon (train.crosslingual, crosslingual.py), a target-language n-gram model (extract.py's
NgramLM, over pieces) choosing among each piece's candidates (Kim et al. 2018, "Improving Unsupervised
Word-by-Word Translation with Language Model and Denoising Autoencoder"); the equation is in
WordByWordMiner's docstring. The reverse pairs teach the generator to turn word-by-word output into real
text.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .extract import BOS, EOS, NgramLM
from .pairs import Pairs, rewrite_all


def both_ways(texts_by_domain: dict) -> list[tuple[str, str]]:
    """(a, b) and (b, a) for the two domains."""
    a, b = texts_by_domain
    return [(a, b), (b, a)]


PUNCTUATION = {"。": ".", ".": "。", "、": ","}    # full stops of Chinese and English text, enumeration comma


class WordByWordMiner:
    """Translation: each sentence translated piece by piece through the run's cross-lingual lexicon
    (train.crosslingual), the choice among each piece's candidates made by a target-language n-gram model
    (Kim et al. 2018). A beam search over positions maximises

        sum_i [ log q(y_i | x_i) + lm_weight * log S_LM(y_i | y_<i) ] + lm_weight * log S_LM(</s> | y),
        q(. | x_i) = softmax(CSLS(x_i, .) / temperature) over x_i's `candidates` nearest pieces,

    one output piece per input piece. A piece the target language uses too (digits, punctuation, names)
    may stay itself, at log q = 0; a piece outside the lexicon that the target does not use is dropped.
    Both directions are mined. The bootstrap trains each pair both ways, so the reverse direction learns
    to turn word-by-word output into a real sentence: Kim et al.'s denoising step, learnt by the generator
    itself. The pair's score is the path's score per piece."""

    name = "wordbyword"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None, lexicon=None):
        if segment is None or segment.name != "pieces":
            raise ValueError("the wordbyword miner translates SentencePiece pieces: set miner.units=pieces")
        if lexicon is None:
            raise ValueError("the wordbyword miner needs cross-lingual embeddings: set train.crosslingual")
        self.cfg, self.log, self.segment, self.lexicon = cfg, log, segment, lexicon
        self.lms: dict[str, NgramLM] = {}
        self.options: dict[tuple[str, str], dict[str, list[tuple[str, float]]]] = {}

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "WordByWordMiner":
        started = time.time()
        c, sp = self.cfg, self.segment.sp
        self.lms = {lang: NgramLM([self.segment.split(t) for t in texts], c.lm_order)
                    for lang, texts in texts_by_domain.items()}
        for src, tgt in both_ways(texts_by_domain):
            src_ids, tgt_ids, scores = self.lexicon.candidates(src, tgt, c.candidates)
            logq = torch.log_softmax(scores / c.temperature, dim=1)
            self.options[(src, tgt)] = {
                sp.id_to_piece(int(x)): [(sp.id_to_piece(int(y)), float(q)) for y, q in zip(ys, qs)]
                for x, ys, qs in zip(src_ids, tgt_ids, logq)}
        self.log(f"{c.lm_order}-gram piece models of {', '.join(self.lms)} and {c.candidates} candidates "
                 f"per piece ({time.time() - started:.0f} s)")
        return self

    @staticmethod
    def choices(piece: str, options: dict, lm: NgramLM) -> list[tuple[str, float]]:
        """(target piece, log q) options of one source piece: the lexicon's candidates, plus the piece itself
        or its punctuation counterpart ("。" <-> ".", which NFKC does not unify) at log q = 0 when the
        target language uses it. The bare word-start piece "▁" is dropped: each target piece carries its
        own."""
        if piece == "▁":
            return []
        same = [p for p in (piece, PUNCTUATION.get(piece)) if p and (p,) in lm.counts[1]]
        return [(p, 0.0) for p in same] + [c for c in options.get(piece, []) if c[0] not in same]

    def translate(self, pieces: list[str], src: str, tgt: str) -> tuple[list[str], float]:
        """The best path's pieces and its score per piece (see the class docstring)."""
        lm, options, w = self.lms[tgt], self.options[(src, tgt)], self.cfg.lm_weight
        context = lambda out: tuple(([BOS] * (lm.order - 1) + out)[-(lm.order - 1):])  # noqa: E731
        beam: list[tuple[float, list[str]]] = [(0.0, [])]
        for piece in pieces:
            choices = self.choices(piece, options, lm)
            if not choices:
                continue
            grown = [(score + q + w * lm.logp(context(out), y), out + [y])
                     for score, out in beam for y, q in choices]
            beam = sorted(grown, key=lambda h: -h[0])[: self.cfg.beam]
        score, out = max(((s + w * lm.logp(context(o), EOS), o) for s, o in beam), key=lambda h: h[0])
        return out, score / (len(out) + 1)

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        if not self.lms:
            self.fit(texts_by_domain)
        pairs = {}
        for src, tgt in both_ways(texts_by_domain):
            texts = texts_by_domain[src][: self.cfg.max_sources or None]

            def translation(text: str, src=src, tgt=tgt):
                out, score = self.translate(self.segment.split(text), src, tgt)
                return (self.segment.join(out), score) if out else None

            sources, targets, scores, seconds = rewrite_all(texts, translation, f"word by word {src}->{tgt}",
                                                            progress_factory)
            self.log(f"{src}->{tgt}: {len(sources)} word-by-word translations of {len(texts)} sentences in "
                     f"{seconds:.0f} s ({len(texts) / max(seconds, 1e-9):.0f} sentences/s)")
            pairs[(src, tgt)] = Pairs(src, tgt, sources, targets, scores)
        return pairs

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The miner alone as a translator (a baseline row)."""
        return [self.segment.join(self.translate(self.segment.split(t), src, tgt)[0]) for t in texts]

