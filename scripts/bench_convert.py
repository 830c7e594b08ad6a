"""`textgan convert` speed of several runs and decodings on the same Yelp lines, in one run.

    python scripts/bench_convert.py --lines 2000 \\
        --system "small, torch=runs/sentiment/filter-cpu:torch" \\
        --system "pretrained, CT2 int8, no guidance=runs/sentiment/smollm2-real-cpu:ctranslate2:int8:--guidance 0"

Each --system is LABEL=RUN:ENGINE[:QUANTIZATION][:EXTRA FLAGS]; every one converts the same first
--lines lines of yelp/train.pos (tokenized output) in a fresh `textgan convert` process
(bench_speed.convert_file), the systems taking turns, --repeats rounds. Reports lines/s from convert's own
summary (after loading) and the whole command's wall time, loading included. Writes results.json and
README.md under results/speed/<name>/ with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import ROOT, convert_file, machine, split_lines  # noqa: E402


def parse_system(text: str) -> dict:
    label, _, spec = text.partition("=")
    run, engine, *rest = spec.split(":")
    quantization = rest.pop(0) if engine == "ctranslate2" and rest else ""
    extra = shlex.split(rest[0]) if rest else []
    return {"label": label, "run": run, "engine": f"{engine}:{quantization}" if quantization else engine,
            "extra": extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", action="append", required=True, help="LABEL=RUN:ENGINE[:QUANTIZATION][:FLAGS]")
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--name", default="cpu-2t-convert")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(ROOT / "results" / "speed"))
    args = parser.parse_args()
    systems = [parse_system(s) for s in args.system]
    lines = split_lines("yelp", "train", "pos")[: args.lines]
    results = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "commit": commit(short=True),
               "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "lines": len(lines),
               "note": args.note, "systems": systems, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for system in systems:
                row = convert_file(Path(system["run"]), lines, Path(tmp), args.batch_size, system["engine"],
                                   system["extra"])
                row.update(label=system["label"], round=round_)
                results["runs"].append(row)
                print(f"{system['label']}: {row['lines_per_s']:.1f} lines/s, {row['wall_s_with_startup']:.0f} s "
                      "whole command", flush=True)
    out = Path(args.out) / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "README.md").write_text(report(results))
    print(f"written to {out}")


def report(r: dict) -> str:
    m = r["machine"]
    rows = []
    for system in r["systems"]:
        runs = [x for x in r["runs"] if x["label"] == system["label"]]
        rate = sum(x["lines_per_s"] for x in runs) / len(runs)
        whole = sum(x["wall_s_with_startup"] for x in runs) / len(runs)
        flags = " ".join(system["extra"]) or "(the run's default decoding)"
        rows.append(f"| {system['label']} | `{system['run']}` | {system['engine']} | `{flags}` | {rate:.1f} | "
                    f"{r['lines'] / whole:.1f} | {whole:.0f} | {max(x['peak_rss_mb'] for x in runs):.0f} |")
    return "\n".join([
        f"# `textgan convert` speed: {r['lines']} Yelp lines", "",
        f"Command: `{r['command']}` at commit {r['commit']}, {r['date']}.",
        f"Machine: {m.get('cpu', '')}, torch {m.get('torch')} using {m.get('torch_threads')} threads.", "",
        *([r["note"], ""] if r["note"] else []),
        "| system | run | engine | flags | lines/s (convert's summary) | lines/s (whole command) | "
        "whole command s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        f"Each system converted the same first {r['lines']} lines of yelp/train.pos (`--tokenized`, batch 256) "
        "in a fresh process, the systems taking turns; the whole command includes loading the model.", ""])


if __name__ == "__main__":
    main()
