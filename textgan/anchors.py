"""Seed pairs for aligning two languages' pieces without any bilingual dictionary.

Self-learning (crosslingual.py) needs a first dictionary. `train.crosslingual: anchors` builds it from
what two languages share on the surface (Søgaard et al. 2018; Artetxe et al. 2017), all labelled "no
bilingual dictionary":

- identical strings: pieces frequent in both languages' text (digits, punctuation, Latin names written
  inside Chinese text, "Tom");
- numerals: a Chinese piece that cn2an reads as a number and an English piece that word2number reads as
  the same number (三 ~ three, 二十 ~ twenty);
- transliterated names: a Chinese piece's romanization (pypinyin, tones dropped) against an English name
  (a capitalized piece seen mostly inside sentences), matched by a consonant skeleton in which the sounds
  transliteration merges are one letter (r/l, p/b, t/d, k/g, ...), and by frequency: 波士顿 boshidun ~
  Boston, 伦敦 lundun ~ London.

Each function takes piece strings (SentencePiece's, "▁" for a word start) and counts, and returns pairs of
positions in the two lists, so it can be tested on toy text.
"""

from __future__ import annotations

import difflib
import math
import re

_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
_NAME = re.compile(r"^▁[A-Z][a-z]{2,}$")
# sounds that transliteration merges, applied in order (digraphs first)
_MERGE = [("ph", "f"), ("th", "t"), ("ck", "k"), ("sh", "s"), ("ch", "c"), ("zh", "j"), ("x", "s"), ("q", "c"),
          ("r", "l"), ("p", "b"), ("t", "d"), ("k", "g"), ("c", "g"), ("v", "f"), ("w", "f"), ("z", "s"),
          ("j", "y")]
# English number words word2number knows (it reads other words too, e.g. "point", which are not numerals)
_NUMBER_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                 "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
                 "thousand", "million", "billion"}


def identical(pieces_x: list[str], pieces_z: list[str], counts_x: list[int], counts_z: list[int],
              min_count: int = 5) -> list[tuple[int, int]]:
    """(i, j) with pieces_x[i] == pieces_z[j], seen at least min_count times in each language."""
    where = {p: j for j, p in enumerate(pieces_z) if counts_z[j] >= min_count}
    return [(i, where[p]) for i, p in enumerate(pieces_x) if counts_x[i] >= min_count and p in where]


def chinese_number(piece: str):
    """The number a piece of Chinese numerals stands for (cn2an, strict), else None."""
    import cn2an

    text = piece.lstrip("▁")
    if not text or not _HAN.match(text):
        return None
    try:
        return cn2an.cn2an(text, "strict")
    except (ValueError, KeyError):
        return None


def english_number(piece: str):
    """The number an English number word stands for (word2number), else None."""
    from word2number import w2n

    word = piece.lstrip("▁").lower()
    if word not in _NUMBER_WORDS:
        return None
    try:
        return w2n.word_to_num(word)
    except ValueError:
        return None


def numerals(pieces_zh: list[str], pieces_en: list[str]) -> list[tuple[int, int]]:
    """(i, j): a Chinese and an English piece read as the same number (the first piece of each value)."""
    zh, en = {}, {}
    for i, p in enumerate(pieces_zh):
        value = chinese_number(p)
        if value is not None:
            zh.setdefault(value, i)
    for j, p in enumerate(pieces_en):
        value = english_number(p)
        if value is not None:
            en.setdefault(value, j)
    return [(i, en[v]) for v, i in zh.items() if v in en]


def merged(word: str) -> str:
    """Lower case, the sounds transliteration merges written as one letter: "Boston" -> "bosdon"."""
    word = word.lower()
    for a, b in _MERGE:
        word = word.replace(a, b)
    return word


def skeleton(word: str) -> str:
    """The consonants of `merged` (vowels and y dropped): "Boston" -> "bsdn"."""
    return re.sub(r"[aeiouy]", "", merged(word))


def romanize(piece: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(piece.lstrip("▁")))


def names(pieces_zh: list[str], pieces_en: list[str], counts_zh: list[int], counts_en: list[int],
          inside_en: list[int], ratio: float = 4.0, min_consonants: int = 3,
          min_similarity: float = 0.6) -> list[tuple[int, int]]:
    """(i, j): a Chinese piece of two or more characters whose romanization has the consonant skeleton of an
    English name, of at least min_consonants consonants (shorter skeletons match by chance). A name is a capitalized piece of 3+ letters seen inside a sentence (inside_en: its count
    not at a sentence's start) at least half the time. The two frequencies, each relative to its language's
    total, must be within `ratio` of each other, and the spellings (`merged`) at least min_similarity alike
    (difflib's ratio); each piece keeps its best match, and only mutual best matches are kept."""
    total_zh, total_en = max(1, sum(counts_zh)), max(1, sum(counts_en))
    english = [j for j, p in enumerate(pieces_en)
               if _NAME.match(p) and inside_en[j] >= 0.5 * counts_en[j] and counts_en[j] > 0]
    keys = {j: skeleton(pieces_en[j][1:]) for j in english}
    scores = {}
    for i, p in enumerate(pieces_zh):
        text = p.lstrip("▁")
        if len(text) < 2 or not _HAN.match(text) or counts_zh[i] == 0:
            continue
        roman = romanize(text)
        key = skeleton(roman)
        for j in english:
            if len(key) < min_consonants or keys[j] != key:
                continue
            if abs(math.log(counts_zh[i] / total_zh) - math.log(counts_en[j] / total_en)) > math.log(ratio):
                continue
            score = difflib.SequenceMatcher(None, merged(roman), merged(pieces_en[j][1:])).ratio()
            if score >= min_similarity:
                scores[(i, j)] = score
    best_i, best_j = {}, {}
    for (i, j), s in scores.items():
        if s > scores.get((i, best_i.get(i, -1)), -1):
            best_i[i] = j
        if s > scores.get((best_j.get(j, -1), j), -1):
            best_j[j] = i
    return sorted((i, j) for i, j in best_i.items() if best_j.get(j) == i)
