"""Choose a run's decode settings on dev, never on test (textgan/sweep.py says how it scores).

    python scripts/sweep_decode.py --run runs/sentiment/NAME --name ladder-weights \
        --grid decode.style_weight=2,4,8 --grid decode.fluency_weight=0,0.0075 \
        --rule "max:gself,self_bleu>=50" --lines 200

1. every point of the grid transfers the first --lines inputs of each direction of dev-a and is scored
   by the sweep judge (not the evaluator's) and sacreBLEU;
2. the rule picks one point;
3. that point and the run's current decode transfer dev-b (held out of step 1), and the same rule
   chooses between them: the winner is frozen into decode.json.

Writes results/<task>/<run name>/sweeps/<name>/: sweep.json (every row), README.md (the tables, the
command, commit, machine, seconds) and decode.json (the frozen overrides, for
`scripts/bench_quality.py --decode-from`). Nothing here reads the test set.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import yaml

from textgan.config import check, config_from_dict, merge, parse_override
from textgan.data import prepare_data
from textgan.evaluate import (DEV_SLICES, Direction, bleu_tokenizer, dev_slice, evaluator_dir, evaluator_settings,
                              mean_over_directions, task_directions)
from textgan.provenance import commit, line_buffered_stdout, machine
from textgan.sweep import SweepJudge, parse_grid, parse_rule, score
from textgan.transfer import StyleTransfer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = {"style": "max:gself", "references": "max:ref_bleu"}


def sweep_judge(cfg, runs_dir: str | None) -> SweepJudge:
    """The task's sweep judge, fitted once into <runs>/eval/<task>/sweep-judge.pkl (refitted when the
    corpora or their settings changed since)."""
    path = evaluator_dir(cfg.task, runs_dir) / "sweep-judge.pkl"
    settings = {k: v for k, v in evaluator_settings(cfg).items() if k == "train_corpora"} | {
        "normalize": cfg.data.normalize, "domains": cfg.data.domains}
    if path.is_file():
        judge = SweepJudge.load(path)
        if judge.settings == settings:
            return judge
        print(f"the sweep judge in {path} was fitted for {judge.settings}, not {settings}: fitting it again")
    print(f"fitting the sweep judge for {cfg.task} (TF-IDF character n-grams, logistic regression) into {path}")
    train_split, _ = prepare_data(cfg)
    judge = SweepJudge.fit({d: list(train_split[d]["text"]) for d in cfg.data.domains}, settings=settings)
    judge.save(path)
    return judge


def point_config(base, overrides: dict[str, str]):
    """The run's config with a grid point's overrides, checked (a bad point stops the sweep before any decoding)."""
    cfg = copy.deepcopy(base)
    for key, value in overrides.items():
        merge(cfg, parse_override(f"{key}={value}"))
    check(cfg)
    return cfg


def run_point(model: StyleTransfer, base, overrides: dict[str, str], directions, judge, lines: int) -> dict:
    """Transfer the first `lines` inputs of each direction with the run's decode plus `overrides`; score."""
    decode = point_config(base, overrides).decode
    if (decode.fluency_lm, decode.encoder) != (model.cfg.decode.fluency_lm, model.cfg.decode.encoder):
        model.fluency = model.encoder = model.retrieval = model.second_style = None   # loaded for another model
    model.cfg.decode = decode
    started = time.perf_counter()
    rows = {}
    for d in directions:
        outputs = model.transfer(d.inputs[:lines], to=d.tgt, tokenized=True, normalized=True)
        cut = Direction(d.src, d.tgt, d.inputs[:lines], [r[:lines] for r in d.references])
        rows[d.name] = score(judge, outputs, cut, bleu_tokenizer(base, d.tgt))
    return {"overrides": overrides, "directions": rows, "mean": mean_over_directions(rows),
            "seconds": round(time.perf_counter() - started, 1)}


def table(rows: list[dict], mark: int | None = None) -> str:
    keys = [k for k in ("acc", "self_bleu", "gself", "ref_bleu", "repeats", "len_ratio") if k in rows[0]["mean"]]
    lines = ["| decode | " + " | ".join(keys) + " | seconds |", "|---" * (len(keys) + 2) + "|"]
    for i, r in enumerate(rows):
        label = " ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "the run's decode"
        label = f"**{label}** (picked)" if i == mark else label
        lines.append(f"| {label} | " + " | ".join(f"{r['mean'][k]:.2f}" if k == "len_ratio" else f"{r['mean'][k]:.1f}"
                                                  for k in keys) + f" | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="the trained run whose decode is swept")
    parser.add_argument("--name", required=True, help="results/<task>/<run name>/sweeps/<name>")
    parser.add_argument("--grid", action="append", required=True, metavar="decode.KEY=V1,V2",
                        help="one axis of the grid; repeatable (every combination is a point)")
    parser.add_argument("--rule", help="max:METRIC[,METRIC>=N ...] (metrics: acc, self_bleu, gself, ref_bleu, "
                        "repeats, len_ratio); default: max:gself for style tasks, max:ref_bleu where dev has references")
    parser.add_argument("--lines", type=int, default=200, help="dev inputs per direction (each slice)")
    parser.add_argument("--runs-dir", default=None)
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    line_buffered_stdout()

    command = " ".join(["python", "scripts/sweep_decode.py", *sys.argv[1:]])
    started, code = time.time(), commit(short=True)            # the code that runs, whatever is committed meanwhile
    run_dir = Path(args.run)
    base = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    dev = task_directions(base, test_set="dev")                 # read once, sliced twice
    dev_a, dev_b = ([Direction(d.src, d.tgt, *dev_slice(d.inputs, d.references, s)) for d in dev] for s in DEV_SLICES)
    references = all(d.references for d in dev)
    try:
        grid = parse_grid(args.grid)
        rule = parse_rule(args.rule or DEFAULT_RULES["references" if references else "style"])
        for point in grid:
            point_config(base, point)
    except ValueError as err:                  # ConfigError included
        parser.error(str(err))
    empty = [f"{s} of {d.name}" for s, ds in zip(DEV_SLICES, (dev_a, dev_b)) for d in ds if not d.inputs]
    if empty:
        parser.error(f"no dev lines to sweep on: {', '.join(empty)} is empty")
    style_metrics = {"acc", "gself"} & set(rule.metrics())
    judge = sweep_judge(base, args.runs_dir) if style_metrics or not references else None
    known = {"self_bleu", "repeats", "len_ratio"} | ({"acc", "gself"} if judge else set()) | (
        {"ref_bleu"} if references else set())
    if set(rule.metrics()) - known:
        parser.error(f"the rule names {', '.join(sorted(set(rule.metrics()) - known))}; this task's dev rows "
                     f"have {', '.join(sorted(known))}")
    model = StyleTransfer(run_dir)
    out = Path(args.results_dir) / base.task / run_dir.name / "sweeps" / args.name
    out.mkdir(parents=True, exist_ok=True)

    swept = []
    for i, point in enumerate(grid, 1):
        swept.append(run_point(model, base, point, dev_a, judge, args.lines))
        print(f"[{i}/{len(grid)}] {point}: " + ", ".join(f"{k} {v:.1f}" for k, v in swept[-1]["mean"].items()))
        (out / "sweep.json").write_text(json.dumps({"run": str(run_dir), "command": command, "dev_a": swept,
                                                    "unfinished": True}, indent=2) + "\n")   # kept if stopped
    pick = rule.pick([r["mean"] for r in swept])
    held_out = [run_point(model, base, {}, dev_b, judge, args.lines)]
    if point_config(base, swept[pick]["overrides"]).decode != base.decode:      # else: the pick is the run's own
        held_out.append(run_point(model, base, swept[pick]["overrides"], dev_b, judge, args.lines))
    final = rule.pick([r["mean"] for r in held_out])
    frozen = held_out[final]["overrides"]
    report = {"run": str(run_dir), "command": command, "commit": code, "rule": rule.describe(),
              "lines_per_direction": args.lines, "judge": "SweepJudge (TF-IDF char 2-5-grams, logistic regression)"
              if judge else "none: ref-BLEU against the dev references", "dev_a": swept, "pick": pick,
              "dev_b": held_out, "frozen": frozen, "seconds": round(time.time() - started, 1), "machine": machine()}
    (out / "sweep.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "decode.json").write_text(json.dumps({"run": str(run_dir), "sweep": args.name, "overrides": frozen,
                                                 "commit": report["commit"]}, indent=2) + "\n")
    verdict = ("the pick is the run's own decode: it stays" if len(held_out) == 1 else
               "the pick beat the run's decode on dev-b: frozen" if final == 1 else
               "the run's own decode did as well or better on dev-b: it stays")
    (out / "README.md").write_text(
        f"# decode sweep {args.name} of {run_dir.name} ({base.task})\n\n"
        f"- command: `{command}`\n- commit: {report['commit']}; machine: {report['machine']}; "
        f"{report['seconds']:.0f} s\n- scored by: {report['judge']} and sacreBLEU; the first {args.lines} "
        f"inputs of each direction of each dev slice (evaluate.dev_slice); no test data\n"
        f"- rule: {rule.describe()}\n- decision: {verdict}; frozen overrides: `{frozen or 'none'}` (decode.json)\n\n"
        f"## dev-a (the sweep)\n\n{table(swept, pick)}\n\n## dev-b (held out: the run's decode against the pick)\n\n"
        f"{table(held_out, final)}\n")
    print(table(held_out, final))
    print(f"{verdict}; results in {out}")


if __name__ == "__main__":
    main()
