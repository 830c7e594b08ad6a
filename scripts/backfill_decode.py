"""Record the decoding of results folders scored before metrics.json said how they were decoded.

    python scripts/backfill_decode.py                      # every results/<task>/<name>[/<test set>]/
    python scripts/backfill_decode.py results/sentiment/soft-cpu

scripts/bench_quality.py writes `decode` (the run's decode section) and `decode_plan` (decoding/plan.py's
DecodePlan, the engine and quantization) into metrics.json. For each metrics.json without `decode`, this
rebuilds both from the folder's config.yaml (the run's resolved config; keys today's config does not know
are dropped and named) and the benchmark command recorded in metrics.json (--beam, --engine, --quantization,
--decode-from and the decode.KEY=VALUE overrides), building the plan as bench_quality does (make_plan with
Request(beam=...)), and appends them with `decode_source` saying so. Nothing is loaded but config.yaml and
metrics.json; files that already have `decode` are left alone. Prints one line per folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
from dataclasses import asdict
from pathlib import Path

import yaml

from textgan.config import Config, DecodeConfig, config_from_dict, merge, parse_override
from textgan.decoding.plan import Request, make_plan

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "backfilled by scripts/backfill_decode.py from config.yaml and the command"


def known_keys(obj, raw: dict, prefix: str = "") -> tuple[dict, list[str]]:
    """`raw` without the keys the config dataclass `obj` (and its sections, recursively) does not have ->
    (the kept dict, the dropped keys as section.key)."""
    fields = {f.name for f in dataclasses.fields(obj)}
    kept, dropped = {}, []
    for name, value in raw.items():
        if name not in fields:
            dropped.append(f"{prefix}{name}")
        elif dataclasses.is_dataclass(getattr(obj, name)) and isinstance(value, dict):
            kept[name], inner = known_keys(getattr(obj, name), value, f"{prefix}{name}.")
            dropped += inner
        else:
            kept[name] = value
    return kept, dropped


def command_options(command: str | list[str]) -> argparse.Namespace | None:
    """The decode options of a bench_quality.py command (its flags of the same names and defaults); None
    for a command that is not bench_quality.py or does not parse."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    start = next((i + 1 for i, w in enumerate(words) if w.endswith("bench_quality.py")), None)
    if start is None:
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--quantization", default="int8")
    parser.add_argument("--decode-from")
    parser.add_argument("overrides", nargs="*")
    for flag in ("--task", "--preset", "--estimator", "--run", "--name", "--runs-dir", "--results-dir", "--test-set",
                 "--wordbyword", "--first-words", "--miner", "--max-words", "--ratio"):
        parser.add_argument(flag, action="append")        # the rest of its flags: they do not change decoding
    parser.add_argument("--allow-dirty", action="store_true")
    try:
        return parser.parse_intermixed_args(words[start:])
    except SystemExit:                                    # argparse's error: printed, and the folder skipped
        return None


def backfill(folder: Path, root: Path = ROOT) -> str:
    """Add `decode`, `decode_plan` and `decode_source` to folder/metrics.json unless it has `decode` ->
    what was done, one line."""
    metrics_file = folder / "metrics.json"
    report = json.loads(metrics_file.read_text())
    if "decode" in report:
        return f"unchanged  {folder}: has decode"
    if not (folder / "config.yaml").is_file():
        return f"skipped    {folder}: no config.yaml"
    if not report.get("command"):
        return f"skipped    {folder}: metrics.json names no command, so its decode options are unknown"
    args = command_options(report["command"])
    if args is None:
        return f"skipped    {folder}: not a bench_quality.py command that parses ({report['command']})"

    notes = []
    raw, dropped = known_keys(Config(), yaml.safe_load((folder / "config.yaml").read_text()) or {})
    if dropped:
        notes.append(f"config.yaml keys unknown today, dropped: {', '.join(dropped)}")
    cfg = config_from_dict(raw)
    overrides = list(args.overrides)
    if args.decode_from:                       # as bench_quality: the sweep's overrides, then the command's
        frozen = root / args.decode_from
        if frozen.is_file():
            overrides = [f"{k}={v}" for k, v in json.loads(frozen.read_text())["overrides"].items()] + overrides
            notes.append(f"--decode-from {args.decode_from} applied")
        else:
            notes.append(f"--decode-from {args.decode_from} unresolved (not in the repository): its decode "
                         f"overrides are missing here")
    given = list(raw.get("decode", {}))        # decode keys config.yaml or the command sets; the rest: defaults
    for text in overrides:                     # other overrides trained the run and are in config.yaml already
        if text.startswith("decode."):
            merge(cfg, parse_override(text))
            given += parse_override(text)["decode"]
    absent = [f.name for f in dataclasses.fields(DecodeConfig) if f.name not in given]
    if "decode" not in raw:
        notes.append("config.yaml has no decode section (older run): today's DecodeConfig defaults"
                     + (f" but for the command's {', '.join(given)}" if given else ""))
    elif absent:
        notes.append(f"decode keys in neither config.yaml nor the command, today's defaults: {', '.join(absent)}")

    try:
        plan = make_plan(cfg, Request(beam=args.beam), args.engine, run=folder)
        decode_plan, how = asdict(plan), plan.describe()
    except ValueError as e:
        decode_plan, how = {"error": str(e)}, f"no plan: {e}"
    report["decode"] = asdict(cfg.decode)
    report["decode_plan"] = {**decode_plan, "engine": args.engine, "quantization": args.quantization}
    report["decode_source"] = "; ".join([SOURCE, *notes])
    metrics_file.write_text(json.dumps(report, indent=2) + "\n")
    return f"backfilled {folder}: {how}" + "".join(f" [{n}]" for n in notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, help="results folders (default: every one)")
    found = sorted((ROOT / "results").glob("*/*/metrics.json")) + sorted((ROOT / "results").glob("*/*/*/metrics.json"))
    folders = parser.parse_args().folders or [Path(os.path.relpath(f.parent)) for f in found]
    for folder in folders:
        print(backfill(folder))


if __name__ == "__main__":
    main()
