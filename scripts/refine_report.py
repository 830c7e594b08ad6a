"""What self-training rounds did on dev: each refined run's refine.json and dev evaluations, as one results folder.

    python scripts/refine_report.py --name refine-rounds-dev runs/sentiment/NAME-refined [more refined runs ...]

For each run (made by `textgan refine` or train.rounds) it copies refine.json (every round: steps, the
teacher's counts and seconds, the pairs kept, the dev score before and after) and the dev rows of
metrics.jsonl from the round's first step on, and writes results/<task>/<name>/README.md with one table:
per dev evaluation, the run's n-gram judge ACC, the reward's style classifier ACC and self-BLEU per
direction (the first train.eval_lines dev lines, greedy), and the dev score the kept model is chosen by.
Dev only: nothing here reads the test set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def dev_rows(run: Path, from_step: int) -> list[dict]:
    """The dev evaluations logged in run/metrics.jsonl at or after `from_step`, {step, metric: value}."""
    rows = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        dev = {k[4:]: v for k, v in row.items() if k.startswith("dev/")}
        if dev and row["step"] >= from_step:
            rows.append({"step": row["step"], **dev})
    return rows


def table(run: Path, record: dict, rows: list[dict], directions: list[str]) -> str:
    ends = {r["to_step"]: r["round"] for r in record["rounds"]}
    head = ["step", "round"] + [f"{m} {d}" for d in directions for m in ("ACC", "style ACC", "self-BLEU")] + ["dev score"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["step"]), str(next((k for s, k in sorted(ends.items()) if row["step"] <= s), ""))
                 if row["step"] > record["rounds"][0]["from_step"] else "start"]
        for d in directions:
            cells += [f"{row.get(f'{m}_{d}', float('nan')):.1f}" for m in ("acc", "style_acc", "self_bleu")]
        score = (sum(row[f"style_acc_{d}"] for d in directions) / len(directions)
                 * sum(row[f"self_bleu_{d}"] for d in directions) / len(directions)) ** 0.5
        cells.append(f"{score:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="refined run directories")
    parser.add_argument("--name", required=True, help="results/<task>/<name>")
    parser.add_argument("--note", default="", help="a paragraph for the README")
    args = parser.parse_args()
    sections, task = [], None
    for run in map(Path, args.runs):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        task = cfg["task"]
        record = json.loads((run / "refine.json").read_text())
        rows = dev_rows(run, record["rounds"][0]["from_step"])
        domains = cfg["data"]["domains"]
        directions = [f"{a}2{b}" for a in domains for b in domains if a != b]
        sections.append((run, record, rows, directions, cfg))
    out = ROOT / "results" / task / args.name
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# Self-training rounds on dev: {', '.join(run.name for run, *_ in sections)}\n",
             f"Command: `python scripts/refine_report.py {' '.join(sys.argv[1:])}` at commit {commit(short=True)}.",
             f"Machine: {machine()['cpu']}, {machine()['cpu_count']} cores.\n", args.note + "\n" if args.note else ""]
    for run, record, rows, directions, cfg in sections:
        shutil.copy(run / "refine.json", out / f"{run.name}.refine.json")
        (out / f"{run.name}.dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        t = cfg["teacher"]
        rounds = "; ".join(
            f"round {r['round']}: steps {r['from_step']}-{r['to_step']}, {r.get('seconds', 0) / 60:.1f} min, pairs kept "
            + ", ".join(f"{d} {r['kept'][d]['kept']}/{r['teacher'][d]['rewritten']}" for d in directions if d in r.get("kept", {}))
            + f", dev score {r['dev_score_before']:.1f} -> {r.get('dev_score_after') or 0:.1f}"
            for r in record["rounds"])
        parts.append(f"## {run.name}\n\nTeacher: {record['teacher']} (each round: the run itself); its decode: "
                     f"{json.dumps(record.get('decode_of_rounds', cfg['decode']))}; pairs kept at style >= "
                     f"{cfg['train']['pairs_min_style']}, r_content >= {t.get('min_content', '?')}, halves "
                     f"{t.get('pairs_targets', cfg['train']['pairs_targets'])}.\n{rounds}.\n\n"
                     f"Dev ({cfg['train']['eval_lines']} lines per direction, greedy, no guidance): ACC by the run's "
                     f"n-gram judge, style ACC by the reward's style classifier; the dev score is sqrt(mean style ACC "
                     f"x mean self-BLEU), the score the run keeps its model by (best.json).\n\n"
                     f"{table(run, record, rows, directions)}\n")
    (out / "README.md").write_text("\n".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
