"""Pseudo-parallel pairs of one direction, as every miner writes them (bootstrap.py, mining.py)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Pairs:
    """Pseudo-parallel pairs of one direction, with the miner's confidence in each (higher: better)."""

    src: str
    tgt: str
    sources: list[str]
    targets: list[str]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.sources)

    def save(self, path: Path) -> None:
        """A TSV people can read: score, source, pseudo target."""
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
            writer.writerow(["score", self.src, self.tgt])
            writer.writerows([f"{s:.4f}", a, b] for s, a, b in zip(self.scores, self.sources, self.targets))

    @classmethod
    def load(cls, path: Path) -> "Pairs":
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"))
        (_, src, tgt), body = rows[0], rows[1:]
        return cls(src, tgt, [r[1] for r in body], [r[2] for r in body], [float(r[0]) for r in body])


# ---------------------------------------------------------------- style markers
