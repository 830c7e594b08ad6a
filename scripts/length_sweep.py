"""How a summarization run follows length requests: ROUGE and output length per requested length.

    python scripts/length_sweep.py --run runs/summarization/default-cpu --split dev --words 5 7 9 11 13

For each N the run transfers the split's articles with `--max-words N` and reports ROUGE-1/2/L F1
against the references, the mean output length in words, and how often the hard cap had to cut an
output (a model that ignored the request would be cut often at small N and stop short at large N).
The first-N-words baseline is scored beside each N. Use the paired `dev` split to choose N; the
test split only to report. Writes results/<task>/<name>/length_sweep_<split>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from textgan import metrics
from textgan.evaluate import first_words, task_directions
from textgan.transfer import StyleTransfer

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--split", default="dev", help="dev (to choose N) or test")
    parser.add_argument("--words", type=int, nargs="+", default=[5, 7, 9, 11, 13])
    parser.add_argument("--lines", type=int, default=0, help="first LINES articles only (0: all)")
    parser.add_argument("--name", help="results/<task>/<name>/ (default: the run's name)")
    args = parser.parse_args()

    model = StyleTransfer(args.run)
    if not model.controls_length:
        raise SystemExit(f"{args.run} has no length control")
    cfg = model.cfg
    direction = next(d for d in task_directions(cfg, test_set=args.split) if d.references)
    inputs = direction.inputs[: args.lines or None]
    refs = direction.references[0][: len(inputs)]
    rows = []
    for n in args.words:
        stats: dict = {}
        outputs = model.transfer(inputs, to=direction.tgt, tokenized=True, normalized=True, max_words=n, stats=stats)
        lead = first_words(inputs, n)
        rows.append({"words_asked": n, **metrics.rouge(outputs, refs),
                     "words": metrics.mean_words(outputs),
                     "cut_by_cap_pct": 100.0 * stats.get("cut", 0) / len(outputs),
                     "first_n": metrics.rouge(lead, refs)})
        print(rows[-1])
    lines = [f"# {cfg.task}: length requests on {args.split} ({len(inputs)} {direction.name} pairs)", "",
             f"`python scripts/length_sweep.py --run {args.run} --split {args.split} --words "
             f"{' '.join(map(str, args.words))}" + (f" --lines {args.lines}" if args.lines else "") + "`", "",
             "| words asked | R-1 | R-2 | R-L | mean words | cut by the cap | first-N words R-1 / R-2 / R-L |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["first_n"]
        lines.append(f"| {r['words_asked']} | {r['rouge1']:.1f} | {r['rouge2']:.1f} | {r['rougeL']:.1f} | "
                     f"{r['words']:.1f} | {r['cut_by_cap_pct']:.1f} % | {f['rouge1']:.1f} / {f['rouge2']:.1f} / "
                     f"{f['rougeL']:.1f} |")
    out = ROOT / "results" / cfg.task / (args.name or Path(args.run).name)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"length_sweep_{args.split}.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / f"length_sweep_{args.split}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
