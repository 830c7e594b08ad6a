"""results/TESTLOG.md: every look at a test set, appended by the benchmark that takes it.

A decode chosen after its run was scored on test has seen the test set, however honest each step was: the
log makes that visible. scripts/bench_quality.py appends one row each time it scores a test set (the
commit, the run and the commit it was trained at, the decode, the headline metrics) and says in the
results README how many earlier looks the same run had. The file is append-only: rows are never edited or
removed, and a row's number is its position.
"""

from __future__ import annotations

import datetime
import fcntl
import json
from dataclasses import dataclass, fields
from pathlib import Path

HEADER = """# Test-set log

Append-only: one row per scoring of a test set, written by `scripts/bench_quality.py` (textgan/testlog.py)
when it scores. `looks before` counts the earlier rows of the same run (name @ the commit it was trained
at) on the same test set: a row with looks before > 0 scores a decode that may have been picked after the
test set was seen. Rows marked `backfilled` were recovered by scripts/testlog_backfill.py from committed
results folders (their first commit's date, the decode their command and config name).

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
    """One table cell: no "|", no line break of any kind (the log is read back row by row)."""
    return " ".join(str(text).replace("|", "/").split())


def read(path: Path) -> list[Look]:
    """The rows of the log (none when it does not exist yet); ValueError for a numbered row that does not
    parse or is out of order, so that a damaged log is not silently miscounted."""
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not cells[0].isdigit():
            continue
        if len(cells) != 10 or int(cells[0]) != len(rows) + 1 or not cells[8].isdigit():
            raise ValueError(f"{path}: row {cells[0]} is damaged or out of order (expected row {len(rows) + 1} "
                             f"with 10 cells): {line[:120]!r}")
        rows.append(Look(*cells[1:8], int(cells[8]), cells[9]))
    return rows


def earlier_looks(rows: list[Look], task: str, run: str, test_set: str) -> list[int]:
    """Numbers (1-based) of the rows that scored the same run on the same test set."""
    return [n for n, r in enumerate(rows, 1) if (r.task, r.run, r.test_set) == (task, run, test_set)]


def append(path: Path, look: Look) -> tuple[int, Look]:
    """Add `look` as the next row (its looks_before counted from the log) -> (its number, the row)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        fcntl.flock(out, fcntl.LOCK_EX)              # two benchmarks finishing at once: one row number each
        rows = read(path)
        look.looks_before = len(earlier_looks(rows, look.task, look.run, look.test_set))
        if out.tell() == 0:
            out.write(HEADER)
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


def trained_commit(run_json: Path) -> str:
    """The short commit a run was trained at, as its run.json records it, keeping the "-dirty" mark
    (checkpoint.py writes it when tracked files had uncommitted changes): the run half of a row's key."""
    if not Path(run_json).is_file():
        return "unknown"
    full = str(json.loads(Path(run_json).read_text()).get("commit", "unknown"))
    return full[:7] + ("-dirty" if full.endswith("-dirty") else "")
