"""Text normalization and a SentencePiece vocabulary shared by all domains of a task.

Normalization makes what people type look like the training corpus: Yelp is lowercased and
PTB-tokenized with numbers as `_num_`, so "I feel SO sad!" becomes "i feel so sad !"; Gigaword is
lowercased and PTB-tokenized with brackets as -lrb- and every digit as `#` (Rush et al. 2015). Output
goes the other way (`detokenize`) for people; benchmarks keep the tokenized form.

Tasks with length control (`data.length_tokens` K > 0) get K more control tokens `<len_1>` .. `<len_K>`:
one of them, first in the encoder input, asks for an output of that many words (trainer.py).
"""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

PAD, UNK, BOS, EOS = 0, 1, 2, 3
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"^[+-]?\d[\d,.:/]*$")
_DIGIT = re.compile(r"\d")
_GIGAWORD_TOKEN = {"unk": "UNK", "closingquote": "''"}
_BRACKETS = {"-lrb-", "-rrb-", "-lsb-", "-rsb-", "-lcb-", "-rcb-"}
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"   # CJK characters, punctuation, full width
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")

_FULL_WIDTH = {",": "，", "!": "！", "?": "？", ":": "：", ";": "；", "(": "（", ")": "）"}
_ZH_PUNCT = re.compile(rf"([{_CJK}]\s?)([,!?:;()])")
_UNITS = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def units(text: str) -> list[str]:
    """The units metrics count: whitespace words, with every CJK character (and CJK punctuation) a unit
    of its own, since Chinese is written without spaces. "i feel sad" -> 3 units; "我很难过。" -> 5."""
    return _UNITS.findall(text)


def _treebank():
    from nltk.tokenize.treebank import TreebankWordDetokenizer, TreebankWordTokenizer

    return TreebankWordTokenizer(), TreebankWordDetokenizer()


def normalize(text: str, scheme: str) -> str:
    """Map raw text to the corpus's form. Control characters and tabs become spaces."""
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    if scheme == "ptb_lower":
        tokens = _treebank()[0].tokenize(text.lower())
        text = " ".join("_num_" if _NUMBER.match(t) else t for t in tokens)
    elif scheme == "zh":
        text = unicodedata.normalize("NFKC", text)  # full-width letters, digits, punctuation -> half-width
    elif scheme == "gigaword":   # "#" (an already hidden digit) read as 0 so that "#.#" stays one token;
        # a closing '' already there stays closing (the tokenizer would make any quote after a space ``)
        text = text.lower().replace("#", "0").replace("''", " closingquote ")
        tokens = _treebank()[0].tokenize(text, convert_parentheses=True)
        text = _DIGIT.sub("#", " ".join(_GIGAWORD_TOKEN.get(t.lower(), t.lower()) for t in tokens))
    return _SPACES.sub(" ", text).strip()


def detokenize(text: str, scheme: str) -> str:
    """Tokenized model output -> text for people."""
    if scheme == "gigaword":      # brackets back (the detokenizer knows them upper case), "#" as a digit
        words = [w.upper() if w in _BRACKETS else w.replace("#", "0") for w in text.split()]
        text = _treebank()[1].detokenize(words, convert_parentheses=True).replace("0", "#")
        return text[:1].upper() + text[1:]
    if scheme == "ptb_lower":
        text = _treebank()[1].detokenize(text.split())
        return text[:1].upper() + text[1:]
    if scheme == "zh":   # NFKC made "，！？" ASCII; after a Chinese character they go back to full width
        text = _ZH_PUNCT.sub(lambda m: m.group(1) + _FULL_WIDTH[m.group(2)], text)
        return _CJK_GAP.sub("", text)
    return text


def domain_token(domain: str) -> str:
    return f"<2{domain}>"


def length_token(words: int) -> str:
    return f"<len_{words}>"


class Tokenizer:
    """SentencePiece over normalized text, with one control token per domain (`<2pos>`) and, for length
    control, `<len_1>` .. `<len_K>` (`length_ids[k - 1]` asks for k words)."""

    def __init__(self, model_file: str | Path, domains: list[str], scheme: str):
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.domains = list(domains)
        self.scheme = scheme
        self.domain_ids = {d: self.sp.piece_to_id(domain_token(d)) for d in domains}
        if any(i == UNK for i in self.domain_ids.values()):
            raise ValueError(f"tokenizer {model_file} lacks domain tokens for {domains}")
        self.length_ids: list[int] = []
        while (i := self.sp.piece_to_id(length_token(len(self.length_ids) + 1))) != UNK:
            self.length_ids.append(i)

    @staticmethod
    def train(texts: Iterable[str], model_file: str | Path, domains: list[str], scheme: str,
              vocab_size: int, model_type: str = "unigram", character_coverage: float = 1.0,
              length_tokens: int = 0) -> "Tokenizer":
        """Train on already-normalized text of every domain (one shared vocabulary)."""
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage, hard_vocab_limit=False,
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            control_symbols=[domain_token(d) for d in domains] + [length_token(k + 1) for k in range(length_tokens)],
            minloglevel=2,
        )
        Path(model_file).write_bytes(model.getvalue())
        return Tokenizer(model_file, domains, scheme)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def normalize(self, text: str) -> str:
        return normalize(text, self.scheme)

    def encode(self, normalized: list[str], max_len: int) -> list[list[int]]:
        """Normalized sentences -> ids (no EOS), cut to `max_len` tokens."""
        return [ids[:max_len] for ids in self.sp.encode(normalized)]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Ids -> normalized (tokenized) text; stops at EOS, skips control tokens."""
        cut = [seq[: seq.index(EOS)] if EOS in seq else seq for seq in ids]
        return self.sp.decode(cut)

    def detokenize(self, text: str) -> str:
        return detokenize(text, self.scheme)

    def word_starts(self) -> list[bool]:
        """Per id: does the piece begin a word ("▁")? Counting them in an id sequence counts its words."""
        return [self.sp.id_to_piece(i).startswith("▁") for i in range(self.vocab_size)]
