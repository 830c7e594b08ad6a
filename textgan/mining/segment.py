"""How the miners cut text into units (miner.units) and put units back together: a Segmenter has
`split(text) -> units` and `join(units) -> text`.

- `words`: whitespace words, every CJK character a unit of its own (character n-gram markers for Chinese).
- `pieces`: the run's SentencePiece pieces: for Chinese, which has no spaces, the unsupervised segmenter's
  pieces are the nearest thing to words, and markers no longer cut words in half ("垃|圾").
"""

from __future__ import annotations

import re

from ..tokenizer import _CJK, _CJK_GAP, units

_CJK_CHAR = re.compile(f"[{_CJK}]")


def join_units(parts: list[str]) -> str:
    """Units -> text: words joined by spaces, none beside a CJK character (the `zh` form keeps none)."""
    out = ""
    for unit in parts:
        if out and not (_CJK_CHAR.fullmatch(out[-1]) or _CJK_CHAR.fullmatch(unit[0])):
            out += " "
        out += unit
    return out


class WordUnits:
    """miner.units = words: whitespace words, every CJK character a unit (tokenizer.units)."""

    name = "words"

    @staticmethod
    def split(text: str) -> list[str]:
        return units(text)

    @staticmethod
    def join(parts: list[str]) -> str:
        return join_units(parts)


class PieceUnits:
    """miner.units = pieces: the SentencePiece pieces of a tokenizer (a `Tokenizer` or anything with
    `.sp`); joined back by SentencePiece's own rule (U+2581 starts a word), without the spaces a
    word-initial piece leaves between two CJK characters once moved into a Chinese sentence."""

    name = "pieces"

    def __init__(self, tok):
        self.sp = tok.sp

    def split(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    @staticmethod
    def join(parts: list[str]) -> str:
        return _CJK_GAP.sub("", "".join(parts).replace("\u2581", " ").strip())


def segmenter(name: str, tok=None):
    """The Segmenter of miner.units; `pieces` needs the run's tokenizer."""
    if name == "words":
        return WordUnits()
    if tok is None:
        raise ValueError("miner.units=pieces needs the run's tokenizer")
    return PieceUnits(tok)
