"""results/TESTLOG.md: every look at a test set, appended by the benchmark that takes it.

A decode chosen after its run was scored on test has seen the test set, however honest each step was: the
log makes that visible. scripts/bench_quality.py appends one row each time it scores a test set (the
commit, the run and the commit it was trained at, the decode, the headline metrics) and says in the
results README how many earlier looks the same run had. The file is append-only: rows are never edited or
removed, and a row's number is its position.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields
from pathlib import Path

HEADER = """# Test-set log

Append-only: one row per scoring of a test set, written by `scripts/bench_quality.py` (textgan/testlog.py)
when it scores. `looks before` counts the earlier rows of the same run (name @ the commit it was trained
at) on the same test set: a row with looks before > 0 scores a decode that may have been picked after the
test set was seen. Rows marked `backfilled` were recovered on 2026-12-07 from the committed results
folders (their first commit's date and the decode their command and config name), before the log existed.

| # | date (UTC) | task | test set | results | run @ trained | decode | metrics | looks before | by |
|---|---|---|---|---|---|---|---|---|---|
"""

HEADLINE = [("acc", "ACC"), ("acc_neural", "ACC-nn"), ("self_bleu", "self-BLEU"), ("ref_bleu", "ref-BLEU"),
            ("ppl", "PPL"), ("g", "G"), ("rouge1", "R-1")]


@dataclass
class Look:
    date: str
    task: str
    test_set: str
    results: str             # the results folder, relative to the results root
    run: str                 # run name @ the commit it was trained at
    decode: str
    metrics: str
    looks_before: int = 0
    by: str = ""


def headline(mean: dict[str, float]) -> str:
    """"ACC 90.8, self-BLEU 55.8, ..." from a system's mean row."""
    return ", ".join(f"{name} {mean[key]:.1f}" for key, name in HEADLINE if key in mean)


def _cell(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def read(path: Path) -> list[Look]:
    """The rows of the log (none when it does not exist yet)."""
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0].isdigit():
            rows.append(Look(*cells[1:8], int(cells[8]), cells[9]))
    return rows


def earlier_looks(rows: list[Look], task: str, run: str, test_set: str) -> list[int]:
    """Numbers (1-based) of the rows that scored the same run on the same test set."""
    return [n for n, r in enumerate(rows, 1) if (r.task, r.run, r.test_set) == (task, run, test_set)]


def append(path: Path, look: Look) -> tuple[int, Look]:
    """Add `look` as the next row (its looks_before counted from the log) -> (its number, the row)."""
    path = Path(path)
    rows = read(path)
    look.looks_before = len(earlier_looks(rows, look.task, look.run, look.test_set))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER)
    with path.open("a") as out:
        values = [getattr(look, f.name) for f in fields(Look)]
        out.write(f"| {len(rows) + 1} | " + " | ".join(_cell(v) for v in values) + " |\n")
    return len(rows) + 1, look


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def decode_summary(decode: dict, defaults: dict, beam: int = 1, engine: str = "torch") -> str:
    """The decode settings that differ from DecodeConfig's defaults, with the beam and the engine:
    "candidates=8 style_weight=4.0; beam 1; torch" ("defaults" when none differ)."""
    changed = " ".join(f"{k}={v}" for k, v in decode.items() if defaults.get(k) != v)
    return f"{changed or 'defaults'}; beam {beam}; {engine}"
