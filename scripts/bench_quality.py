"""Train (or take) a run, transfer the task's test set, score it, and commit-ready results.

    python scripts/bench_quality.py --task sentiment --estimator soft            # trains the cpu preset
    python scripts/bench_quality.py --task sentiment --run runs/sentiment/NAME    # scores an existing run
    python scripts/bench_quality.py --task sentiment --estimator reinforce --name reinforce-cpu train.seed=7

Writes results/<task>/<name>/: metrics.json and metrics.md (the run beside the input copy, scored by
the task's evaluator, see `textgan judge train`; metrics.json's `decode_plan` says what the test transfers
decoded by: decoding/plan.py's DecodePlan, the engine), the outputs per direction, the run's config.yaml,
metrics.jsonl and training curves, and a README naming the command, commit, machine and wall time.
Then rebuilds results/<task>/TABLE.md from every results/<task>/*/metrics.json.

Training refuses a tree with uncommitted changes to tracked files, so that the commit in run.json names
the code that trained the run; `--allow-dirty` trains anyway, and the results README and TABLE.md then say
the run was trained from uncommitted code. Every results README says what selected the checkpoint it
scores (`selection`: best.json's "selector", or for runs trained before it existed, its formula).

Test-set discipline: choose decode settings with scripts/sweep_decode.py on dev-a, confirm on dev-b, then
score test once. Every test scoring is appended to results/TESTLOG.md (textgan/testlog.py) and the results
README and TABLE.md say how many times the same run was scored on that test set before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import yaml

from textgan.mining import MINERS, make_miner, segmenter
from textgan.provenance import commit, line_buffered_stdout, machine
from textgan import testlog
from textgan.config import DecodeConfig, config_from_dict, load_config, merge, parse_override
from textgan.crosslingual import CrossLingual
from textgan.data import encode_split
from textgan.evaluate import (
    COLUMNS,
    DEV_SLICES,
    EVALUATOR_INFO,
    Evaluator,
    build_report,
    evaluator_dir,
    first_words,
    markdown_table,
    published_baselines,
    task_directions,
)
from textgan.tokenizer import load_tokenizer
from textgan.data import prepare_data
from textgan.runner import train
from textgan.transfer import StyleTransfer

ROOT = Path(__file__).resolve().parent.parent


def uncommitted_files() -> list[str]:
    """Tracked files with uncommitted changes (what makes commit() say +uncommitted)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True).stdout
    except OSError:
        return []
    return [line[3:] for line in out.splitlines() if line.strip()]


def selection(best_json: Path) -> tuple[str, str]:
    """(sentence, short label) naming what selected the checkpoint a results folder scores: best.json's
    "selector" when present; for runs trained before it existed, from its formula (an ACC-based dev score
    was the run's n-gram judge, the same model as the evaluator's ACC judge; best.json files older than
    the "formula" key held that score too); no best.json: the last step."""
    if not best_json.is_file():
        return "the last step (no selection: no best.json)", "last step"
    best = json.loads(best_json.read_text())
    formula = str(best.get("formula", ""))
    where = f"best.json: step {best.get('step')}" + (f", {formula}" if formula else "")
    if best.get("selector"):
        selector = str(best["selector"])
        short = ("dev " + formula.split()[1] if formula.startswith("dev ") else
                 "n-gram judge (twin)" if "twin" in selector else
                 "style classifier" if "style classifier" in selector else selector)
        on = "" if formula.startswith("dev ") else "on dev "
        return f"checkpoint selected {on}by {selector} ({where})", short
    if "ROUGE" in formula or ("BLEU" in formula and "self-BLEU" not in formula):
        return (f"checkpoint selected by {formula} against the dev references (no style judge; {where})",
                formula)
    if "ACC" in formula or any(k.startswith("dev/acc_") for k in best):
        return ("checkpoint selected on dev by the run's n-gram judge, the test judge's twin (ACC is optimistic; "
                f"{where}{'' if formula else ', sqrt(ACC * self-BLEU)'})", "n-gram judge (twin)")
    return f"checkpoint selected on dev ({where})", formula or "dev score"


KINDS = {"pretrained": "pretrained multilingual encoder (no parallel data of ours)",
         "cedict": "CC-CEDICT lexicon (weak supervision)", "unsupervised": "fully unsupervised"}


def row_kind(name: str, folder: Path) -> str:
    """What bilingual signal a translation row had (issue 26: every table names it): the report's own
    `kind`, else read off the run's config (a pretrained encoder anywhere, a CC-CEDICT lexicon, or none)
    and, for a baseline, off its name."""
    report = json.loads((folder / "metrics.json").read_text())
    if name in report.get("kind", {}):
        return report["kind"][name]
    if name == "input copy":
        return ""
    if "cedict" in name:
        return KINDS["cedict"]
    if "unsupervised" in name:
        return KINDS["unsupervised"]
    cfg = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    g, t = cfg.get("generator", {}), cfg.get("train", {})
    if g.get("init") or t.get("bootstrap") == "mine" or t.get("content_reward", "cycle") != "cycle":
        return KINDS["pretrained"]
    return KINDS["cedict"] if t.get("crosslingual") == "cedict" else KINDS["unsupervised"]


def add_variant(variants: list[tuple], folder: str, mean: dict, kind: list) -> None:
    """Keep one row per distinct scoring of a baseline: a mean that agrees (to 0.1) with a kept one on every
    metric both have is the same scoring (an older report lacks the newer metrics: the fuller one is kept)."""
    for i, (_, kept, _) in enumerate(variants):
        if all(round(kept[k], 1) == round(mean[k], 1) for k in kept.keys() & mean.keys()):
            if len(mean) > len(kept):
                variants[i] = (folder, mean, kind)
            return
    variants.append((folder, mean, kind))


def rebuild_table(task_dir: Path) -> str:
    """One markdown table of every committed system of a task (means over directions); translation rows
    name their kind (row_kind). A baseline is listed once, or once per folder where it scored otherwise
    (a miner re-fit with other settings); "test looks" is how many times results/TESTLOG.md saw the same
    run scored on test before the row's own scoring."""
    rows, baselines = [], {}
    kinds = task_dir.name == "translation"
    log = testlog.read(task_dir.parent / TESTLOG)
    for metrics_file in sorted(task_dir.glob("*/metrics.json")):
        report = json.loads(metrics_file.read_text())
        folder = metrics_file.parent.name
        for name, system in report["systems"].items():
            kind = [row_kind(name, metrics_file.parent)] if kinds else []
            if name != folder:                        # a baseline (input copy, word-by-word)
                add_variant(baselines.setdefault(name, []), folder, system["mean"], kind)
                continue
            at = testlog.trained_commit(metrics_file.parent / "run.json")
            at = at.replace("-dirty", " (uncommitted code)") if at != "unknown" else ""
            looks = [r.looks_before for r in log if r.results == f"{task_dir.name}/{folder}" and r.test_set == "test"]
            rows.append((f"[{folder}]({folder}/)", report.get("estimator", ""), system["mean"], kind,
                         at, selection(metrics_file.parent / "best.json")[1], str(looks[-1]) if looks else "?"))
    for name, variants in baselines.items():
        for folder, mean, kind in variants:
            label = f"{name}, as in [{folder}]({folder}/)" if len(variants) > 1 else name
            rows.append((label, "", mean, kind))
    present = [(k, t) for k, t in COLUMNS if any(k in r[2] for r in rows)]
    lines = ["| system | " + ("kind | " if kinds else "") + "estimator | trained at | checkpoint | test looks | "
             + " | ".join(t for _, t in present) + " |", "|---" * (len(present) + 5 + kinds) + "|"]
    for label, est, mean, kind, *run in sorted(rows, key=lambda r: r[0].startswith("[")):   # baselines first
        cells = [f"{mean[k]:.2f}" if k == "len_ratio" else f"{mean[k]:.1f}" if k in mean else "" for k, _ in present]
        lines.append(f"| {label} | " + "".join(f"{k} | " for k in kind) + f"{est} | " + " | ".join(run or ["", "", ""])
                     + " | " + " | ".join(cells) + " |")
    lines += ["", "trained at: the commit in the folder's run.json (\"uncommitted code\": it ends in -dirty, the tree "
              "had uncommitted changes to tracked files). checkpoint: what selected the scored model (best.json; "
              "\"n-gram judge (twin)\": the run's n-gram judge, the same model as the evaluator's ACC judge, so "
              "its ACC is optimistic; \"last step\": no selection). test looks: how many times the same run had been "
              "scored on the test set before this row ([TESTLOG.md](../TESTLOG.md)); above 0, the row's decode may "
              "have been picked after seeing the test set."]
    table = "\n".join(lines) + "\n"
    (task_dir / "TABLE.md").write_text(table)
    return table


def sample_table(directions, outputs: dict[str, list[str]], n: int = 20, seed: int = 0) -> str:
    """n test lines per direction drawn with a fixed seed (not chosen by hand): input, the system's
    output and the first human reference, good and bad alike, as markdown."""
    import random

    lines = []
    for d in directions:
        rows = sorted(random.Random(seed).sample(range(len(d.inputs)), min(n, len(d.inputs))))
        lines += [f"**{d.name}** (test lines {', '.join(str(i + 1) for i in rows)}; `random.Random({seed}).sample`)", "",
                  "| input | output | human reference |" if d.references else "| input | output |",
                  "|---|---|---|" if d.references else "|---|---|"]
        for i in rows:
            cells = [d.inputs[i], outputs[d.name][i]] + ([d.references[0][i] or ""] if d.references else [])
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def word_by_word(run_dir: Path, cfg, method: str, directions) -> tuple[dict, dict]:
    """Baseline outputs: each piece replaced by its nearest piece of the target language, through
    cross-lingual embeddings learnt on the run's tokenizer and training text (the run's own crosslingual.pt
    when its method matches; else learnt once and kept as wordbyword-<method>.pt in the run)."""
    tok = load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize)
    own, kept = run_dir / "crosslingual.pt", run_dir / f"wordbyword-{method}.pt"
    if own.exists() and CrossLingual.load(own).method == method:
        xl = CrossLingual.load(own)
    elif kept.exists():
        xl = CrossLingual.load(kept)
    else:
        train_ids = encode_split(prepare_data(cfg)[0], tok, cfg.data.max_len)
        xl = CrossLingual.learn(train_ids, cfg.generator.d_model, method, tok)
        xl.info.update(xl.evaluate_bli(tok))
        xl.save(kept)
    return {d.name: xl.word_by_word(tok, d.inputs, d.src, d.tgt) for d in directions}, xl.info


def decoding(model: StyleTransfer, beam: int) -> str:
    """How the test transfers were decoded, for the results README."""
    m = model.cfg.generator.max_run
    guarded = (f"; every decode under the run guard (generator.max_run {m}: no piece more than {m} times in a row "
               f"unless the input has such a run)") if m else ""
    return search(model, beam) + guarded


def search(model: StyleTransfer, beam: int) -> str:
    """What competes for each input and how the winner is chosen."""
    d = model.cfg.decode
    plan = model.plan(beam=beam)
    k, w, ladder, retrieve, nbest = plan.candidates, plan.search.guidance, plan.ladder, plan.retrieve, plan.nbest
    guided = f", classifier-free guidance {w} away from the source domain's prompt" if w else ""
    if k > 1 or ladder or retrieve or nbest:
        rungs = f" and the greedy rewrites at guidance {', '.join(map(str, ladder))} (a guidance ladder)" if ladder else ""
        drawn = f" and {k - 1} samples at temperature {d.temperature} (seed {d.seed})" if k > 1 else ""
        beams = f" and the {nbest} hypotheses of a beam search of width {nbest} (n-best)" if nbest else ""
        found = (f" and the {retrieve} training sentences of the target domain nearest to the input by {d.encoder} "
                 f"(retrieval)") if retrieve else ""
        fluent = (f", plus {d.fluency_weight} x the candidate's total log-probability under "
                  f"{d.fluency_lm or model.cfg.generator.init} (the pretrained LM, not fine-tuned)"
                  + (f", into {', '.join(d.fluency_domains)} only" if d.fluency_domains else "")) if d.fluency_weight else ""
        semantic = (f", plus {d.semantic_weight} x the log cosine of the input's and the candidate's {d.encoder} "
                    f"embeddings") if d.semantic_weight else ""
        classifier = (f"the lower of its two style classifiers (pieces, and an MLP over {d.encoder} embeddings)"
                      if d.semantic_style else "its style classifier")
        reward = (f"harmonic mean of {classifier} (weight {d.style_weight}) and the back generator's content "
                  f"probability (weight {d.content_weight})" if d.style_weight else
                  f"{d.content_weight} x the back generator's mean log-probability of the input (no style term)")
        passes = (f"; {d.passes} passes: the winner rewritten again the same way {d.passes - 1} times, every pass's "
                  f"candidates competing, scored against the input" if d.passes > 1 else "")
        length = (f"; the content log-probability minus {d.length_penalty} x the candidate's growth beyond the "
                  f"input's length (max(0, |y| / |x| - 1), pieces)" if d.length_penalty else "")
        direct = (f", plus {d.direct_weight} x the generator's own mean log-probability of the candidate (direct "
                  f"model)") if d.direct_weight else ""
        return (f"the greedy rewrite{guided}{rungs}{drawn}{beams}{found}, reranked by the run's reward: {reward}{semantic}{fluent}{direct}"
                f"{length}{passes}; decoding/rerank.py")
    return (f"beam search, {beam} beams" if beam > 1 else "greedy") + guided


TESTLOG = "TESTLOG.md"


def log_test_look(results_dir: Path, cfg, out: Path, run_dir: Path, trained_at: str, args, report: dict,
                  name: str) -> tuple[int, testlog.Look]:
    """Append this scoring to results/TESTLOG.md (textgan/testlog.py) -> (row number, the row)."""
    look = testlog.Look(
        date=testlog.now(), task=cfg.task, test_set=args.test_set, results=str(out.relative_to(results_dir)),
        run=f"{run_dir.name} @ {trained_at}",
        decode=testlog.decode_summary(asdict(cfg.decode), asdict(DecodeConfig()), args.beam, args.engine)
        + (f"; frozen on dev by sweep {args.decode_from}" if args.decode_from else ""),
        metrics=testlog.headline(report["systems"][name]["mean"]), by=f"bench_quality at {report['commit']}")
    return testlog.append(results_dir / TESTLOG, look)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--preset", default="auto")
    parser.add_argument("--estimator", choices=["soft", "gumbel", "reinforce"])
    parser.add_argument("--run", help="score this existing run instead of training one")
    parser.add_argument("--name", help="results/<task>/<name> (default: <estimator>-<preset>)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--engine", default="torch", choices=["torch", "ctranslate2"],
                        help="inference engine for the test transfers (ctranslate2: textgan/fast.py)")
    parser.add_argument("--quantization", default="int8", help="ctranslate2's weights: int8 | int16 | float32")
    parser.add_argument("--test-set", default="test", help="the card's test split or one of its test_sets "
                        "(e.g. wmt21), or a dev slice (dev-a, dev-b: evaluate.dev_slice); results go to "
                        "results/<task>/<name>/<test set> for the latter. Every scoring of a test set is appended "
                        "to results/TESTLOG.md")
    parser.add_argument("--wordbyword", action="append", default=[], choices=["unsupervised", "cedict"],
                        help="add a word-by-word baseline row (cross-lingual embeddings, translation); repeatable")
    parser.add_argument("--first-words", type=int, action="append", default=[], metavar="N",
                        help="add the first-N-words baseline (summarization); repeatable")
    parser.add_argument("--miner", action="append", default=[], choices=sorted(MINERS),
                        help="add the bootstrap miner alone as a row (textgan/mining/, the config's miner.* settings, "
                             "fit on the training text); repeatable")
    parser.add_argument("--max-words", type=int, help="length control: words asked of each output")
    parser.add_argument("--ratio", type=float, help="length control: output words as a share of the input's")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="train even though tracked files have uncommitted changes (the results README then "
                             "says the run was trained from uncommitted code)")
    parser.add_argument("--decode-from", metavar="DECODE_JSON",
                        help="apply the decode a sweep froze on dev (results/.../sweeps/<name>/decode.json, "
                             "scripts/sweep_decode.py); with --run only")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    frozen = json.loads(Path(args.decode_from).read_text()) if args.decode_from else None
    if frozen:
        if not args.run or Path(frozen["run"]).resolve() != Path(args.run).resolve():
            parser.error(f"--decode-from applies a sweep's decode to the run it was swept on ({frozen['run']}): "
                         f"give --run {frozen['run']}")
        args.overrides = [f"{k}={v}" for k, v in frozen["overrides"].items()] + list(args.overrides)
    line_buffered_stdout()            # long runs go to a log (nohup): every line as it happens

    command = " ".join(["python", "scripts/bench_quality.py", *sys.argv[1:]])
    started = time.time()
    if args.run:
        run_dir = Path(args.run)
        cfg = config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
        for text in args.overrides:        # scoring an existing run: only the evaluator's and decoding's settings
            if not text.startswith(("eval.", "decode.")):
                parser.error(f"with --run only eval.* and decode.* overrides apply (the run is trained); got {text!r}")
            merge(cfg, parse_override(text))
        train_seconds = None
    else:
        dirty = uncommitted_files()
        if dirty and not args.allow_dirty:
            shown = ", ".join(dirty[:8]) + (f" and {len(dirty) - 8} more" if len(dirty) > 8 else "")
            parser.error(f"refusing to train from uncommitted code: tracked files have uncommitted changes "
                         f"({shown}); commit them so that run.json names the code that trained the run, or "
                         f"pass --allow-dirty (the results README then says so)")
        overrides = list(args.overrides) + ([f"train.estimator={args.estimator}"] if args.estimator else [])
        cfg = load_config(args.task, args.preset, overrides)
        name = args.name or f"{cfg.train.estimator}-{cfg.preset}"
        if (evaluator_dir(cfg.task, args.runs_dir) / EVALUATOR_INFO).is_file():
            Evaluator.check_stored(cfg, evaluator_dir(cfg.task, args.runs_dir))   # refused now, not after training
        run_dir = train(cfg, runs_dir=args.runs_dir, name=name, command=command.split())
        train_seconds = time.time() - started
    name = run_dir.name if not args.run else (args.name or run_dir.name)
    out = Path(args.results_dir) / cfg.task / name
    if args.test_set != "test":
        out = out / args.test_set
    out.mkdir(parents=True, exist_ok=True)

    evaluator = Evaluator.load_or_train(cfg, evaluator_dir(cfg.task, args.runs_dir))
    directions = task_directions(cfg, test_set=args.test_set)
    model = StyleTransfer(run_dir, engine=args.engine, quantization=args.quantization)
    model.cfg.decode = cfg.decode          # decode.* overrides of --run apply to the test transfers
    plan = model.plan(beam=args.beam)      # what the test transfers decode by, recorded in metrics.json
    t0 = time.time()
    length_stats: dict = {}
    outputs = {d.name: model.transfer(d.inputs, to=d.tgt, plan=plan, tokenized=True, normalized=True,
                                      max_words=args.max_words, ratio=args.ratio, stats=length_stats)
               for d in directions}
    transfer_seconds = time.time() - t0
    systems = {"input copy": {d.name: d.inputs for d in directions}, **published_baselines(cfg, test_set=args.test_set)}
    for n in args.first_words:
        systems[f"first {n} words"] = {d.name: first_words(d.inputs, n) for d in directions}
    crosslingual = {}
    for method in args.wordbyword:
        systems[f"word-by-word ({method})"], crosslingual[method] = word_by_word(run_dir, cfg, method, directions)
    if args.miner:
        split = prepare_data(cfg)[0]
        texts = {d: list(split[d]["text"]) for d in cfg.data.domains}
    for miner_name in args.miner:
        own = run_dir / "crosslingual.pt"      # wordbyword translates through the run's lexicon (none: its clear error)
        lexicon = CrossLingual.load(own) if miner_name == "wordbyword" and own.exists() else None
        miner = make_miner(miner_name, cfg.miner, segment=segmenter(cfg.miner.units, model.tok), lexicon=lexicon).fit(texts)
        systems[f"{miner_name} miner alone (ours)"] = {d.name: miner.transfer(d.inputs, d.src, d.tgt) for d in directions}
    systems[name] = outputs
    estimator = cfg.train.estimator if cfg.train.lambda_adv > 0 else "none (lambda_adv 0)"
    report = build_report(evaluator, systems, directions, estimator=estimator, preset=cfg.preset,
                          run=str(run_dir), test_set=args.test_set)
    if crosslingual:
        report["crosslingual"] = crosslingual
    if model.controls_length:
        total = sum(len(d.inputs) for d in directions)
        report["length_control"] = {"max_words": args.max_words, "ratio": args.ratio,
                                    "default_words": model.default_words,
                                    "cut_by_cap_pct": 100.0 * length_stats.get("cut", 0) / max(1, total)}
    trained_at = testlog.trained_commit(run_dir / "run.json")
    selected, _ = selection(run_dir / "best.json")
    report.update(command=command, commit=commit(short=True), trained_at_commit=trained_at, machine=machine(),
                  train_seconds=round(train_seconds, 1) if train_seconds else None,
                  transfer_seconds=round(transfer_seconds, 1), decode=asdict(model.cfg.decode),
                  decode_plan={**asdict(plan), "engine": model.engine, "quantization": args.quantization})
    looked = ""
    if args.test_set not in ("dev", *DEV_SLICES):
        number, look = log_test_look(Path(args.results_dir), cfg, out, run_dir, trained_at, args, report, name)
        report["test_look"] = {"row": number, "looks_before": look.looks_before}
        looked = (f"- test-set log: row {number} of [TESTLOG.md]({os.path.relpath(Path(args.results_dir) / TESTLOG, out)}); "
                  + (f"**the same run was scored on {args.test_set} {look.looks_before} time(s) before**, so this "
                     f"decode may have been picked after seeing the test set\n" if look.looks_before else
                     f"the first time this run is scored on {args.test_set}\n"))
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    (out / "metrics.md").write_text(table)
    (out / "samples.md").write_text(sample_table(directions, outputs))
    stems = {name: args.test_set, **{f"word-by-word ({m})": f"{args.test_set}.wordbyword-{m}" for m in crosslingual},
             **{f"{m} miner alone (ours)": f"{args.test_set}.miner-{m}" for m in args.miner}}
    for system, stem in stems.items():
        for key, lines in systems[system].items():
            (out / f"{stem}.{key}.txt").write_text("".join(x + "\n" for x in lines))
    for f in ("config.yaml", "run.json", "best.json", "metrics.jsonl", "training_curves.png", "crosslingual.json"):
        if (run_dir / f).exists():
            shutil.copy(run_dir / f, out / f)
    minutes = f"{train_seconds / 60:.1f} min of training" if train_seconds else "an existing run"
    uncommitted = (f"- **trained from uncommitted code**: run.json records commit {trained_at} (tracked files had "
                   f"uncommitted changes when training started; what they were is not recorded)\n"
                   if trained_at.endswith("-dirty") else "")
    (out / "README.md").write_text(
        f"# {cfg.task}: {name} ({estimator}, {cfg.preset} preset)\n\n"
        f"- model: {selected}\n{uncommitted}"
        f"- command: `{command}`\n- commit: {report['commit']} (the run was trained at {trained_at}, "
        f"see run.json)\n- machine: {report['machine']}\n"
        f"- decoding: {decoding(model, args.beam)}\n"
        f"- wall time: {minutes}; transferring the test set took {transfer_seconds:.0f} s\n{looked}"
        f"- config: [config.yaml](config.yaml); training curves: [training_curves.png](training_curves.png)\n\n"
        f"{table}")
    print(table)
    if args.test_set == "test":
        print(rebuild_table(out.parent))
    print(f"results in {out}")


if __name__ == "__main__":
    main()
