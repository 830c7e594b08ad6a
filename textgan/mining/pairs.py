"""Pseudo-parallel pairs: the record every miner returns (Pairs, one direction, and its TSV), the loop of
the miners that rewrite one sentence at a time (rewrite_all), and which mined pairs training keeps
(training_pairs: the pair filters train.pairs_min_style, pairs_min_style_real, pairs_min_score and
train.pairs_targets).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..tokenizer import EOS


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


def rewrite_all(texts: list[str], rewrite: Callable, desc: str, progress_factory=None):
    """Each text through `rewrite(text) -> (pseudo target, score) | None` (None: no pair), with a progress
    bar: (sources, targets, scores, seconds)."""
    started = time.time()
    bar = progress_factory(len(texts), desc) if progress_factory else None
    sources, targets, scores = [], [], []
    for text in texts:
        done = rewrite(text)
        if done is not None:
            sources.append(text)
            targets.append(done[0])
            scores.append(done[1])
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return sources, targets, scores, time.time() - started


def training_pairs(cfg, mined: dict[tuple[str, str], Pairs], tok, out_dir: Path, style=None, device=None,
                   main_process: bool = True, log: Callable[[str], None] = print) -> dict[str, list]:
    """The mined pairs as ids, {target domain: [(source ids, target ids)]}: each pair (x, y~) of x's
    domain s mined into t gives (x -> y~) to t and (y~ -> x) to s, the latter with a real sentence as its
    target (as in back-translation). With train.pairs_targets=real only (y~ -> x) is kept: every target a
    real sentence.
    With train.pairs_min_style > 0 a pair is kept only if the reward's style classifier `style` gives its
    pseudo target y~ at least that probability of being in t, with train.pairs_min_style_real > 0 only if
    it gives the real sentence x at least that probability of being in s, and with train.pairs_min_score > 0
    only if the miner scored the pair at least that (template/retrieve: the retrieval cosine; a teacher's
    pairs, train.bootstrap=teacher, are held to teacher.min_content on their r_content instead, and
    teacher.pairs_targets says which halves are kept). The main
    process writes the counts kept to <out_dir>/kept.json; a direction left without a pair is an error."""
    by_target: dict[str, list] = {d: [] for d in cfg.data.domains}
    score_key = "teacher.min_content" if cfg.train.bootstrap == "teacher" else "train.pairs_min_score"
    min_score = cfg.teacher.min_content if cfg.train.bootstrap == "teacher" else cfg.train.pairs_min_score
    halves = cfg.teacher.pairs_targets if cfg.train.bootstrap == "teacher" else cfg.train.pairs_targets
    kept = {}
    min_style = cfg.train.pairs_min_style if style is not None else 0.0
    min_real = cfg.train.pairs_min_style_real if style is not None else 0.0

    def in_domain(seqs, domain: str, needed: float) -> list[float]:
        if not needed:
            return [1.0] * len(seqs)
        return style.probabilities([s or [EOS] for s in seqs], device)[
            :, cfg.data.domains.index(domain)].tolist()

    for (src, tgt), pairs in mined.items():
        sources, targets = tok.encode(pairs.sources, cfg.data.max_len), tok.encode(pairs.targets, cfg.data.max_len)
        in_style, real_in_style = in_domain(targets, tgt, min_style), in_domain(sources, src, min_real)
        count = 0
        for x, y, p, p_real, score in zip(sources, targets, in_style, real_in_style, pairs.scores):
            if x and y and p >= min_style and p_real >= min_real and (not min_score or score >= min_score):
                if halves == "both":
                    by_target[tgt].append((x, y))
                by_target[src].append((y, x))
                count += 1
        kept[f"{src}2{tgt}"] = {"mined": len(targets), "kept": count}
    if main_process:
        filters = {"pairs_min_style": min_style, "pairs_min_style_real": min_real,
                   score_key.split(".")[1]: min_score}
        (out_dir / "kept.json").write_text(json.dumps({**filters, **kept}, indent=2) + "\n")
        log("  pairs kept: " + ", ".join(f"{k} {v['kept']}/{v['mined']}" for k, v in kept.items()))
    empty = [name for name, v in kept.items() if not v["kept"]]
    if empty:
        raise ConfigError(f"no mined pair of {', '.join(empty)} is left after the filters (train.pairs_min_style "
                          f"{min_style}, train.pairs_min_style_real {min_real}, {score_key} {min_score}): lower them "
                          f"(pairs/kept.json has the counts)")
    return by_target
