"""Decoding constrained to the source's words: the summarizer writes a selection of the article's words.

The extract miner (mining/extract.py) teaches the summarizer word-extraction summaries, but a piece decoder
left free garbles what it copies: rare names come out as new piece strings ("shauzicated" for
"shaukat ... felicitated") and words repeat ("traffic traffic traffic"). `CopyConstraint` keeps every
decoding step inside the space the teacher searched: each output word is one of the article's words,
spelt with the article's own pieces, and with `ordered` (the default) the words come in the article's
order, each occurrence used once, so an output is a subsequence of the article's words, as the miner's
are. This is the hard form of a copy mechanism (See et al. 2017 mix a copy distribution into the
vocabulary one); the model still chooses which words, the constraint only removes what no extraction
could write.

State per row: `partial`, the pieces of the word being written, and `next_word`, the first article
position the next word may take (ordered) or the positions already used (unordered). When a word-start
piece or EOS ends the word, it is matched to its earliest eligible occurrence (the greedy match keeps the
most room for what follows).
"""

from __future__ import annotations

import torch

from .tokenizer import EOS


def split_words(ids: list[int], word_start: list[bool], skip: set[int]) -> list[tuple[int, ...]]:
    """Piece ids -> the words they spell, each a tuple of pieces (a word begins at a "▁" piece);
    ids in `skip` (control tokens) are left out."""
    words: list[list[int]] = []
    for t in ids:
        if t in skip:
            continue
        if word_start[t] or not words:
            words.append([t])
        else:
            words[-1].append(t)
    return [tuple(w) for w in words]


class CopyConstraint:
    """Allowed next pieces for a batch of decodes whose words must come from their sources.

    sources: the encoder inputs' ids per row (control tokens in `skip` ignored); word_start (V,) as
    `Tokenizer.word_starts()`; ordered: words in source order, each occurrence at most once (a
    subsequence); else any source word, each occurrence at most once. Rows with `active` False, and rows
    that have written EOS, may write anything (their tokens are padding).
    """

    def __init__(self, sources: list[list[int]], word_start: list[bool], vocab_size: int,
                 skip: set[int] = frozenset(), ordered: bool = True, active: list[bool] | None = None):
        self.words = [split_words(s, word_start, set(skip)) for s in sources]
        self.free = [not a for a in active] if active is not None else [False] * len(sources)
        self.word_start = word_start
        self.vocab_size = vocab_size
        self.ordered = ordered
        self.partial: list[tuple[int, ...]] = [() for _ in sources]
        self.next_word = [0 for _ in sources]               # ordered: first position the next word may take
        self.used: list[set[int]] = [set() for _ in sources]  # unordered: positions taken

    def _eligible(self, row: int, after: int | None = None) -> list[int]:
        """Positions the current word may take; `after`: the word just completed took `after`."""
        n = len(self.words[row])
        if self.ordered:
            start = self.next_word[row] if after is None else after + 1
            return list(range(start, n))
        taken = self.used[row] | ({after} if after is not None else set())
        return [j for j in range(n) if j not in taken]

    def _match(self, row: int) -> int | None:
        """Earliest eligible position whose word is exactly the partial word, if any."""
        part = self.partial[row]
        return next((j for j in self._eligible(row) if self.words[row][j] == part), None)

    def allowed(self, row: int) -> set[int]:
        """Pieces the row may write next; EOS once a whole word is written (or when nothing else fits)."""
        words, part = self.words[row], self.partial[row]
        if not part:
            out = {words[j][0] for j in self._eligible(row)}
            return out or {EOS}
        k = len(part)
        out = {words[j][k] for j in self._eligible(row) if len(words[j]) > k and words[j][:k] == part}
        done = self._match(row)
        if done is not None:
            out |= {words[j][0] for j in self._eligible(row, after=done)} | {EOS}
        return out or {EOS}

    def select(self, rows: list[int]) -> None:
        """Keep the states of `rows`, in that order, repeats allowed (beam search's expand and reorder)."""
        self.words = [self.words[r] for r in rows]
        self.partial = [self.partial[r] for r in rows]
        self.next_word = [self.next_word[r] for r in rows]
        self.used = [set(self.used[r]) for r in rows]
        self.free = [self.free[r] for r in rows]

    def unfinished(self, row: int) -> int:
        """Pieces at the end of the row's output that spell no whole source word yet (a decode cut by
        its length cap mid-word); 0 when the last word is whole or the row has ended."""
        part = self.partial[row]
        return 0 if self.free[row] or not part or self._match(row) is not None else len(part)

    def mask(self, rows: list[int], device=None) -> torch.Tensor:
        """(len(rows), V) bool: True where the piece may be written."""
        mask = torch.zeros(len(rows), self.vocab_size, dtype=torch.bool)
        for i, row in enumerate(rows):
            if self.free[row]:
                mask[i] = True
            else:
                mask[i, list(self.allowed(row))] = True
        return mask.to(device) if device is not None else mask

    def advance(self, rows: list[int], tokens: list[int]) -> None:
        """Record that row rows[i] wrote tokens[i]."""
        for row, t in zip(rows, tokens):
            if self.free[row]:
                continue
            part = self.partial[row]
            if (t == EOS or self.word_start[t]) and part:
                j = self._match(row)
                if j is not None:
                    if self.ordered:
                        self.next_word[row] = j + 1
                    else:
                        self.used[row].add(j)
                part = ()
            self.partial[row] = part + (t,)
            self.free[row] = t == EOS
