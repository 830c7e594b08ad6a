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

    def __init__(self, model_file: str | Path | None, domains: list[str], scheme: str, pieces=None):
        # pieces: a PretrainedPieces (a pretrained model's tokenizer) in place of a SentencePiece model
        self.sp = pieces if pieces is not None else spm.SentencePieceProcessor(model_file=str(model_file))
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


def load_tokenizer(run_dir: str | Path, domains: list[str], scheme: str) -> Tokenizer:
    """A run's tokenizer: <run>/pieces/ (a pretrained model's pieces, PretrainedPieces) or tokenizer.model."""
    pieces = Path(run_dir) / "pieces"
    if pieces.is_dir():
        return Tokenizer(None, domains, scheme, PretrainedPieces.load(pieces))
    return Tokenizer(Path(run_dir) / "tokenizer.model", domains, scheme)


# Words whose pretrained embeddings start a domain token of a pretrained generator (source_rows).
DOMAIN_WORDS = {"neg": "negative", "pos": "positive", "zh": "Chinese", "en": "English",
                "article": "article", "summary": "summary"}


class PretrainedPieces:
    """A pretrained model's tokenizer restricted to the pieces a corpus uses, behind the part of
    SentencePieceProcessor's interface textgan calls (encode, decode, id_to_piece, piece_to_id,
    get_piece_size), so batches, discriminators, judges and inference read it like our own vocabulary.

    Our ids: PAD, UNK, BOS, EOS, the control tokens (domains, lengths), then the kept pieces in the
    pretrained tokenizer's order; `pretrained[i]` is our id i's id in the pretrained model (-1 for ours
    alone), which the generator uses to slice its embeddings and output layer to the kept pieces.
    Each text is encoded with a leading space, as SentencePiece adds its "▁", so a word has one spelling
    wherever it stands and every word begins with a piece that starts a word ("Ġ" in byte-level BPE,
    shown as "▁" by `id_to_piece`).
    """

    SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")          # PAD, UNK, BOS, EOS

    def __init__(self, tokenizer, kept: list[int], controls: list[str]):
        self.hf = tokenizer
        self.kept, self.controls = list(kept), list(controls)
        names = tokenizer.convert_ids_to_tokens(self.kept)
        self.pieces = [*self.SPECIALS, *self.controls, *(n.replace("Ġ", "▁", 1) if n.startswith("Ġ") else n
                                                            for n in names)]
        self.pretrained = [-1] * (len(self.SPECIALS) + len(self.controls)) + self.kept
        self.ours = {theirs: ours for ours, theirs in enumerate(self.pretrained) if theirs >= 0}
        self.by_piece = {piece: i for i, piece in enumerate(self.pieces)}

    @classmethod
    def build(cls, tokenizer, texts: Iterable[str], controls: list[str], min_count: int = 1) -> "PretrainedPieces":
        """Keep the pretrained pieces that occur at least `min_count` times in `texts` (normalized)."""
        from collections import Counter

        counts: Counter = Counter()
        batch: list[str] = []
        for text in texts:
            batch.append(" " + text)
            if len(batch) == 4096:
                counts.update(i for row in tokenizer(batch, add_special_tokens=False)["input_ids"] for i in row)
                batch = []
        if batch:
            counts.update(i for row in tokenizer(batch, add_special_tokens=False)["input_ids"] for i in row)
        return cls(tokenizer, sorted(i for i, n in counts.items() if n >= min_count), controls)

    def save(self, directory: str | Path) -> None:
        import json

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(directory)
        (directory / "pieces.json").write_text(json.dumps({"controls": self.controls, "kept": self.kept}) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "PretrainedPieces":
        import json

        from transformers import AutoTokenizer

        info = json.loads((Path(directory) / "pieces.json").read_text())
        return cls(AutoTokenizer.from_pretrained(str(directory)), info["kept"], info["controls"])

    def source_rows(self) -> list[list[int]]:
        """For each of our ids, the pretrained ids whose mean embedding it starts from: a kept piece its own;
        <s> and </s> the pretrained tokenizer's (if it has them); <unk> the mean of every kept piece; a
        domain token the pieces of a word that names the domain (DOMAIN_WORDS: <2pos> starts as
        " positive"), a length token those of its number; <pad> nothing (zeros)."""
        def pieces_of(word: str) -> list[int]:
            return self.hf(" " + word, add_special_tokens=False)["input_ids"]

        bos, eos = self.hf.bos_token_id, self.hf.eos_token_id
        rows: list[list[int]] = [[], list(self.kept), [bos] if bos is not None else [],
                                 [eos] if eos is not None else []]
        for control in self.controls:
            if control.startswith("<2"):
                name = control[2:-1]
                rows.append(pieces_of(DOMAIN_WORDS.get(name, name)))
            else:
                rows.append(pieces_of(control[len("<len_"):-1]))
        return rows + [[i] for i in self.kept]

    def get_piece_size(self) -> int:
        return len(self.pieces)

    def id_to_piece(self, i: int) -> str:
        return self.pieces[i]

    def piece_to_id(self, piece: str) -> int:
        return self.by_piece.get(piece, UNK)

    def encode(self, texts, out_type=int):
        """Text or texts -> our ids (a pretrained piece not kept: UNK), or the pieces with out_type=str."""
        single = isinstance(texts, str)
        rows = self.hf([" " + t for t in ([texts] if single else texts)], add_special_tokens=False)["input_ids"]
        out = [[self.ours.get(i, UNK) for i in row] for row in rows]
        if out_type is str:
            out = [[self.pieces[i] for i in row] for row in out]
        return out[0] if single else out

    def decode(self, ids):
        """Our ids (one list or a list of lists) -> text; PAD, UNK, BOS, EOS and control tokens write nothing."""
        single = bool(ids) and isinstance(ids[0], int)
        rows = [[self.pretrained[i] for i in row if 0 <= i < len(self.pretrained) and self.pretrained[i] >= 0]
                for row in ([ids] if single else ids)]
        texts = self.hf.batch_decode(rows, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        texts = [t[1:] if t.startswith(" ") else t for t in texts]
        return texts[0] if single else texts
