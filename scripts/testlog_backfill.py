"""Start results/TESTLOG.md from the committed results folders (run once, when the log began).

    python scripts/testlog_backfill.py

Every results/<task>/<name>[/<test set>]/metrics.json scored a test set before the log existed: each
becomes a row, in the order of the commits that first added them (git log), with the decode its command
and config name (the run's decode section, then the command's decode.* overrides, --beam, --engine).
Refuses to touch a log that exists (rows are only ever appended, by scripts/bench_quality.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from textgan import testlog
from textgan.config import DecodeConfig

ROOT = Path(__file__).resolve().parent.parent


def first_commit(path: Path) -> tuple[str, str]:
    """(ISO date, short sha) of the commit that added `path`."""
    out = subprocess.run(["git", "log", "--diff-filter=A", "--format=%aI %h", "--", str(path)], cwd=ROOT,
                         capture_output=True, text=True).stdout.split()
    return (out[-2], out[-1]) if len(out) >= 2 else ("", "")


def scored_decode(folders: list[Path], command: str) -> str:
    """The decode a results folder scored: its config's decode section (the first of `folders` holding a
    config.yaml) with the command's overrides."""
    config = next((f / "config.yaml" for f in folders if (f / "config.yaml").is_file()), None)
    cfg = yaml.safe_load(config.read_text()) if config else {}
    decode = {**asdict(DecodeConfig()), **(cfg or {}).get("decode", {})}
    words = shlex.split(command) if command else []
    beam, engine = 1, "torch"
    for i, word in enumerate(words):
        if word.startswith("decode.") and "=" in word:
            key, value = word[len("decode."):].split("=", 1)
            decode[key] = yaml.safe_load(value)
        elif word == "--beam" and i + 1 < len(words):
            beam = int(words[i + 1])
        elif word == "--engine" and i + 1 < len(words):
            engine = words[i + 1]
    return testlog.decode_summary(decode, asdict(DecodeConfig()), beam, engine)


def main() -> None:
    results = ROOT / "results"
    log = results / "TESTLOG.md"
    if log.exists():
        sys.exit(f"{log} exists; it is append-only (scripts/bench_quality.py adds rows)")
    looks = []
    for metrics_file in sorted(results.glob("*/*/metrics.json")) + sorted(results.glob("*/*/*/metrics.json")):
        report = json.loads(metrics_file.read_text())
        folder = metrics_file.parent
        rel = folder.relative_to(results)
        name = rel.parts[1]
        system = report["systems"].get(name) or list(report["systems"].values())[-1]
        date, sha = first_commit(metrics_file)
        home = results / rel.parts[0] / name              # a test set of its own lies one folder down (wmt21)
        run_json = next((f / "run.json" for f in (folder, home) if (f / "run.json").is_file()), None)
        # run.json first: older reports wrote trained_at_commit without its "-dirty" mark
        trained = testlog.trained_commit(run_json) if run_json else report.get("trained_at_commit", "unknown")
        run = Path(report.get("run") or name).name
        test_set = rel.parts[2] if len(rel.parts) > 2 else report.get("test_set", "test")
        looks.append((date, testlog.Look(
            date=date[:16].replace("T", " "), task=rel.parts[0], test_set=test_set,
            results=str(rel), run=f"{run} @ {trained}", decode=scored_decode([folder, home], report.get("command", "")),
            metrics=testlog.headline(system["mean"]),
            by=f"backfilled (added in {sha}, scored at {report.get('commit', 'unknown')})")))
    for _, look in sorted(looks, key=lambda x: x[0]):
        testlog.append(log, look)
    print(f"{len(looks)} test looks written to {log}")
    repeated = [r for r in testlog.read(log) if r.looks_before]
    print(f"{len(repeated)} of them scored a run that had been scored on the same test set before")


if __name__ == "__main__":
    main()
