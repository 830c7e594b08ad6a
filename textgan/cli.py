"""`textgan` command line: thin parsing around library calls.

    textgan train --task sentiment [--preset cpu|gpu] [--estimator soft|gumbel|reinforce] [key=value ...]
    textgan train --resume RUN_DIR
    textgan refine RUN_DIR [--rounds N] [--lines N] [--steps N] [--candidates N] [--guidance W] [key=value ...]
    textgan distill RUN_DIR [--preset cpu-scratch] [--lines N] [--engine torch|ctranslate2] [key=value ...]
    textgan transfer [TEXT ...] [--to DOMAIN] [--model DIR] [--beam N] [--sample]
    textgan convert INPUT -o OUTPUT [--to DOMAIN] [--model DIR] [--format txt|jsonl|tsv] [--batch-size N] ...
    textgan export RUN_DIR [--engine ctranslate2] [--quantization int8|int16|float32]
    textgan serve [--model DIR ...] [--task T ...] [--host 127.0.0.1] [--port 8000]
    textgan judge train --task sentiment [key=value ...]
    textgan evaluate --task sentiment [--model RUN_DIR ...] [--outputs [NAME:]neg2pos=FILE pos2neg=FILE ...]
    textgan data download NAME | textgan data where NAME
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .distributed import DEFAULT_TIMEOUT

EXIT_USAGE, EXIT_ERROR = 2, 1
DECODE_OVERRIDE = re.compile(r"^decode\.\w+=")      # `textgan transfer` reads these apart from its sentences


def packaged_models(cfg) -> list[str]:
    """Every pretrained model a config asks for, in training and at decode time alike: the generator's
    start, the miner's encoder, the content reward's encoder, the reranker's fluency LM and sentence
    encoder (checked before training, so a preset whose decode needs a model that cannot be had falls back
    or stops at once, not after an hour of training)."""
    d = cfg.decode
    fluency = (d.fluency_lm or (cfg.generator.init if cfg.generator.arch == "causal" else "")) if d.fluency_weight else ""
    encoder = d.encoder if (d.semantic_weight or d.retrieve or d.semantic_style or cfg.train.semantic_style) else ""
    miner = cfg.miner.encoder if cfg.train.bootstrap == "mine" else ""
    content = "" if cfg.train.content_reward == "cycle" else cfg.train.content_reward
    return [name for name in dict.fromkeys((cfg.generator.init, miner, content, fluency, encoder)) if name]


def _pretrained_or_scratch(cfg, task: str, overrides: list[str]):
    """The config as it is when its pretrained start (a packaged model) can be had; when it cannot (no
    registry, no cache), the preset's from-scratch twin `<preset>-scratch`, said in one line, if the task
    has one."""
    from .config import ConfigError, load_config
    from .pretrained import PACKAGED, PretrainedError, resolve

    needed = [name for name in packaged_models(cfg) if name in PACKAGED]
    if not needed:
        return cfg
    try:
        for name in needed:
            resolve(name)
        return cfg
    except PretrainedError as err:
        try:
            scratch = load_config(task, f"{cfg.preset}-scratch", overrides)
        except ConfigError:
            raise err from None
        print(f"textgan train: no pretrained start ({err}); training the from-scratch recipe instead "
              f"(--preset {cfg.preset}-scratch)", file=sys.stderr)
        return scratch


def _train(args) -> int:
    import yaml

    from .checkpoint import CheckpointError
    from .config import check, config_from_dict, load_config, merge, parse_override
    from .training.rounds import train_with_rounds

    overrides = list(args.overrides)
    if args.mixed_precision:
        overrides.append(f"train.mixed_precision={args.mixed_precision}")
    if args.resume:
        config_file = Path(args.resume) / "config.yaml"
        if not config_file.is_file():
            raise CheckpointError(f"{args.resume} is not a run directory (no config.yaml)")
        cfg = config_from_dict(yaml.safe_load(config_file.read_text()))
        for text in overrides:  # e.g. extend a finished run: --resume RUN train.adv_steps=3000
            merge(cfg, parse_override(text))
        check(cfg)              # the settings that do not go together, as a new run's are checked
    else:
        if args.estimator:
            overrides.append(f"train.estimator={args.estimator}")
        cfg = _pretrained_or_scratch(load_config(args.task, args.preset, overrides), args.task, overrides)
    run_dir = train_with_rounds(cfg, runs_dir=args.runs_dir, name=args.name, resume=args.resume,
                                data_dir=args.data_dir, command=sys.argv)
    print(f"run saved in {run_dir}")
    print(f'try: textgan transfer --model {run_dir} "a sentence of either domain"')
    return 0


def _teacher_overrides(args) -> list[str]:
    """--candidates / --guidance / --engine of refine and distill: how the teacher decodes (the teacher section)."""
    asked = {"candidates": args.candidates, "guidance": args.guidance, "engine": getattr(args, "engine", None)}
    return [f"teacher.{key}={value}" for key, value in asked.items() if value is not None] + list(args.overrides)


def _refine(args) -> int:
    from .training.rounds import refine

    run_dir = refine(args.run, args.rounds, args.lines, args.steps, args.eval_every, args.name, args.runs_dir,
                     _teacher_overrides(args), args.data_dir, sys.argv)
    print(f"refined run saved in {run_dir} (rounds: {run_dir / 'refine.json'})")
    print(f'try: textgan transfer --model {run_dir} --candidates 1 "a sentence of either domain"')
    return 0


def _distill(args) -> int:
    from .training.rounds import distill

    run_dir = distill(args.run, args.preset, args.lines, args.name, args.runs_dir, _teacher_overrides(args),
                      args.data_dir, sys.argv)
    print(f"student run saved in {run_dir}")
    print(f'try: textgan transfer --model {run_dir} --engine ctranslate2 "a sentence of either domain"')
    return 0


def _transfer(args) -> int:
    from .checkpoint import latest_run
    from .transfer import StyleTransfer

    texts = [t for t in args.text if not DECODE_OVERRIDE.match(t)]
    overrides = [t for t in args.text if DECODE_OVERRIDE.match(t)]
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            print("textgan transfer: give TEXT arguments or pipe lines on stdin", file=sys.stderr)
            return EXIT_USAGE
        texts = [line.rstrip("\n") for line in sys.stdin]
    model = StyleTransfer(args.model or latest_run(args.task, args.runs_dir), engine=args.engine,
                          quantization=args.quantization, decode=overrides)
    targets = args.to
    if targets is None and len(model.domains) == 2:
        detected = model.detect(texts)
        targets = [model.other_domain(d) for d in detected]
        for d, t in zip(detected, targets):
            print(f"[detected {d}, writing {t}]", file=sys.stderr)
    outputs = model.transfer(texts, to=targets, beam=args.beam, sample=args.sample, temperature=args.temperature,
                             tokenized=args.tokenized, max_words=args.max_words, ratio=args.ratio,
                             candidates=args.candidates, guidance=args.guidance)
    for out in outputs:
        print(out)
    return 0


def _convert(args) -> int:
    from dataclasses import fields

    from .checkpoint import latest_run
    from .convert import Job, convert, summary_line

    job = Job(**{f.name: getattr(args, "format" if f.name == "fmt" else f.name) for f in fields(Job)})
    result = convert(args.input, args.output, args.model or latest_run(args.task, args.runs_dir), job,
                     args.overwrite, show_progress=not args.quiet, timeout=args.dist_timeout, decode=args.overrides)
    if result["rank"] == 0 and Path(args.output).exists():     # once, by the process that merged
        print(f"wrote {args.output}: {summary_line(result)}",
              file=sys.stderr)
    return 0


def _serve(args) -> int:
    import os

    from .serve import Limits, load_models, serve

    # Leave a core to the HTTP event loop: torch threads that compete with it for the cores were measured
    # to halve throughput on 2 cores (results/serve/).
    threads = args.threads or max(1, ((os.cpu_count() or 2) - 1) // args.workers)

    limits = Limits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_kb=args.max_body_kb,
                    max_n=args.max_n, batch_texts=args.batch_texts, batch_ms=args.batch_ms, max_wait=args.max_wait)
    models = load_models(args.model, args.task, args.runs_dir, args.device, args.engine, args.quantization,
                         args.overrides)
    for m in models.values():
        print(f"serving {m.task}: {m.model.run_dir} ({m.model.engine} engine)", file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}, reachable from other machines; the API has no authentication",
              file=sys.stderr)
    print(f"demo page: http://{args.host}:{args.port}/   API docs: http://{args.host}:{args.port}/docs",
          file=sys.stderr)
    serve(models, args.host, args.port, limits, args.workers, threads)
    return 0


def _export(args) -> int:
    from .fast import export

    out = export(args.run, args.quantization, force=args.force)
    print(f"exported {args.run} for CTranslate2 ({args.quantization}) into {out}")
    return 0


def shared_parsers() -> dict[str, argparse.ArgumentParser]:
    """Options several commands share, each written once (argparse parents): `runs` (--runs-dir), `task`,
    `data` (--data-dir), `run` (--model or the newest run of --task), `decode` (the decode request of
    decoding/plan.py), `engine` and `length`. Commands that decode also take decode.KEY=VALUE positionals:
    the run's decode section changed for this call (DECODE_OVERRIDE)."""
    from .config import QUANTIZATIONS

    def parent() -> argparse.ArgumentParser:
        return argparse.ArgumentParser(add_help=False)

    runs, task, data, run, decode, engine, length = (parent() for _ in range(7))
    runs.add_argument("--runs-dir", help="where runs are (default: ./runs or $TEXTGAN_RUNS)")
    task.add_argument("--task", default="sentiment", help="task name (configs/<task>.yaml) or a YAML file")
    data.add_argument("--data-dir", help="corpus root to search first")
    run.add_argument("--model", help="run directory to use (default: the newest run of --task)")
    decode.add_argument("--beam", type=int, default=1, help="beam width (1: greedy)")
    decode.add_argument("--candidates", type=int, help="rerank the greedy rewrite and N-1 samples by the run's "
                        "reward, with the greedy rewrites at the run's decode.guidance_candidates; default: the "
                        "run's decode.candidates (1 = one greedy rewrite, no reranking)")
    decode.add_argument("--guidance", type=float, help="causal generators: classifier-free guidance weight away "
                        "from the source domain (0 = off); default: the run's decode.guidance")
    engine.add_argument("--engine", default="torch", choices=["torch", "ctranslate2"], help="inference engine: "
                        "torch, or ctranslate2 (pip install -e \".[fast]\"; converted on first use)")
    engine.add_argument("--quantization", default="int8", choices=QUANTIZATIONS, help="ctranslate2's weights")
    group = length.add_mutually_exclusive_group()
    group.add_argument("--max-words", type=int, help="length control (summarization): words per output "
                       "(default: the target domain's median length)")
    group.add_argument("--ratio", type=float, help="length control: output words as a share of the input's")
    return {"runs": runs, "task": task, "data": data, "run": run, "decode": decode, "engine": engine,
            "length": length}


def _task_config(args):
    from .config import load_config

    return load_config(args.task, "cpu", list(getattr(args, "overrides", [])))


def _judge(args) -> int:
    from .evaluate import Evaluator, evaluator_dir

    cfg = _task_config(args)
    out = Path(args.out or evaluator_dir(cfg.task, args.runs_dir))
    evaluator = Evaluator.train(cfg, out, args.data_dir)
    info = evaluator.info
    print(f"evaluator for {cfg.task} saved in {out} ({info['seconds']:.0f} s)")
    print(f"judge: {info['judge_acc_on_test_inputs']:.1f}% accurate on the untouched test inputs")
    if "neural_judge_acc_on_test_inputs" in info:
        print(f"neural judge: {info['neural_judge_acc_on_test_inputs']:.1f}% accurate on the untouched test inputs")
    for d, lm in info["lm"].items():
        print(f"fluency LM {d}: perplexity {lm['ppl_on_test_inputs']:.1f} on the {d} {lm.get('ppl_measured_on', 'test inputs')}")
    return 0


def _parse_outputs(group: list[str], directions) -> tuple[str, dict[str, Path]]:
    """['NAME:neg2pos=a.txt', 'pos2neg=b.txt'] -> ("NAME", {"neg2pos": a.txt, "pos2neg": b.txt})."""
    names = [d.name for d in directions]
    name, files = None, {}
    for item in group:
        if ":" in item.split("=", 1)[0]:
            name, item = item.split(":", 1)
        key, _, path = item.partition("=")
        if key not in names or not path:
            raise ValueError(f"--outputs takes DIRECTION=FILE with DIRECTION one of {', '.join(names)}; got {item!r}")
        files[key] = Path(path)
    return name or next(iter(files.values())).parent.name or "outputs", files


def _evaluate(args) -> int:
    import json

    from .corpora import read_lines
    from .evaluate import Evaluator, build_report, evaluator_dir, markdown_table, published_baselines, task_directions
    from .tokenizer import normalize
    from .transfer import StyleTransfer

    cfg = _task_config(args)
    evaluator = Evaluator.load_or_train(cfg, Path(args.evaluator or evaluator_dir(cfg.task, args.runs_dir)),
                                        args.data_dir)
    directions = task_directions(cfg, args.data_dir, args.test_set)
    systems: dict[str, dict[str, list[str]]] = {"input copy": {d.name: d.inputs for d in directions},
                                                **published_baselines(cfg, args.data_dir, args.test_set)}

    def add(name: str, outputs: dict) -> None:
        if name in systems:
            raise ValueError(f"two systems named {name!r}; name them: --outputs NAME:DIRECTION=FILE ...")
        systems[name] = outputs

    decode = [o for o in args.overrides if DECODE_OVERRIDE.match(o)]
    for run in args.model or []:
        model = StyleTransfer(run, decode=decode)
        plan = model.plan(beam=args.beam, candidates=args.candidates, guidance=args.guidance)
        add(Path(run).name, {d.name: model.transfer(d.inputs, to=d.tgt, plan=plan, tokenized=True, normalized=True,
                                                    max_words=args.max_words, ratio=args.ratio)
                             for d in directions})
    for group in args.outputs or []:
        name, files = _parse_outputs(group, directions)
        add(name, {key: [normalize(t, cfg.data.normalize) for t in read_lines(f)] for key, f in files.items()})
    report = build_report(evaluator, systems, directions)
    table = markdown_table(report)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "metrics.md").write_text(table)
        for name, outs in systems.items():
            for key, lines in outs.items():
                if name != "input copy":
                    (out / f"{name.replace(' ', '_')}.{key}.txt").write_text("".join(x + "\n" for x in lines))
        print(f"written to {out}/metrics.json and metrics.md")
    return 0


def _data(args) -> int:
    from .corpora import corpus_dir, download, load_card

    card = load_card(args.name)
    if args.action == "download":
        dest = download(card, args.data_dir)
        print(f"downloaded {card.name} into {dest}")
    else:
        print(corpus_dir(card, tuple(card.files), args.data_dir))
    return 0


def _pretrained(args) -> int:
    from .pretrained import PACKAGED, PretrainedError, resolve

    if args.action == "list":
        for key, spec in PACKAGED.items():
            print(f"{key}: {spec.name} ({spec.file} in the {spec.package}=={spec.version} wheel, {spec.license})")
        return 0
    if args.name not in PACKAGED:
        raise PretrainedError(f"unknown packaged model {args.name!r}; known: {', '.join(PACKAGED)} (a local "
                              f"directory or a model id needs no fetching: give it as generator.init)")
    print(resolve(args.name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgan", description="Unsupervised text style transfer and "
                                     "translation with GANs.")
    sub = parser.add_subparsers(dest="command", required=True)
    shared = shared_parsers()
    for add in (_train_parser, _refine_parser, _distill_parser, _transfer_parser, _convert_parser, _export_parser, _serve_parser, _judge_parser,
                _evaluate_parser, _data_parser):
        add(sub, shared)
    return parser


def _train_parser(sub, shared) -> None:
    p = sub.add_parser("train", help="train a task (or resume a run)",
                       parents=[shared["task"], shared["runs"], shared["data"]])
    p.add_argument("--preset", default="auto", help="cpu | gpu | auto (gpu when CUDA is available)")
    p.add_argument("--estimator", choices=["soft", "gumbel", "reinforce"], help="gradient estimator for G")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--mixed-precision", choices=["auto", "no", "bf16", "fp16"],
                   help="autocast the forward passes (train.mixed_precision; auto: bf16 on a GPU that has it, "
                        "else fp32); weights and saved models stay fp32")
    p.add_argument("--name", help="run name (default: a timestamp)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.lr_g=3e-4")
    p.set_defaults(func=_train)


def _teacher_options(p) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="the trained run whose rewrites are learnt from (the teacher)")
    p.add_argument("--candidates", type=int, help="the teacher's decode: N > 1 reranks (teacher.candidates; 0 = "
                   "its own decode section)")
    p.add_argument("--guidance", type=float, help="the teacher's classifier-free guidance weight (teacher.guidance)")
    p.add_argument("--name", help="the new run's name")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.pairs_min_score=0.3")


def _refine_parser(sub, shared) -> None:
    p = sub.add_parser("refine", help="self-training rounds: a copy of a run learns from its own best rewrites",
                       parents=[shared["runs"], shared["data"]])
    _teacher_options(p)
    p.add_argument("--rounds", type=int, default=2, help="rounds at most (they stop when dev stops improving)")
    p.add_argument("--lines", type=int, default=1000, help="training sentences rewritten per domain and round")
    p.add_argument("--steps", type=int, default=120, help="training steps per round")
    p.add_argument("--eval-every", type=int, default=40, help="dev evaluation (and kept model) every N steps")
    p.set_defaults(func=_refine)


def _distill_parser(sub, shared) -> None:
    p = sub.add_parser("distill", help="train a small student run on a run's rewrites", parents=[shared["runs"],
                       shared["data"]])
    _teacher_options(p)
    p.add_argument("--preset", default="cpu-scratch", help="the student's preset of the task (default cpu-scratch: "
                   "the small encoder-decoder)")
    p.add_argument("--lines", type=int, default=20000, help="training sentences the teacher rewrites per domain")
    p.add_argument("--engine", choices=["torch", "ctranslate2"], help="the teacher's engine (teacher.engine)")
    p.set_defaults(func=_distill)


def _transfer_parser(sub, shared) -> None:
    p = sub.add_parser("transfer", help="rewrite sentences into another domain", parents=[
        shared["run"], shared["task"], shared["runs"], shared["decode"], shared["engine"], shared["length"]])
    p.add_argument("text", nargs="*", help="sentences (default: read lines from stdin); decode.KEY=VALUE among "
                   "them changes the run's decode section for this call, e.g. decode.guidance=0.5")
    p.add_argument("--to", help="target domain (default: the one the input is not in)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy/beam decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, 0.01 to 10 (with --sample)")
    p.add_argument("--tokenized", action="store_true", help="print the tokenized form (for benchmarks)")
    p.set_defaults(func=_transfer)


def _convert_parser(sub, shared) -> None:
    p = sub.add_parser("convert", help="rewrite a whole file, streaming and resumable (kill, run again)", parents=[
        shared["run"], shared["task"], shared["runs"], shared["decode"], shared["engine"], shared["length"]])
    p.add_argument("input", help="input file (txt: one sentence per line; jsonl; tsv)")
    p.add_argument("overrides", nargs="*", metavar="decode.KEY=VALUE", help="change the run's decode section for "
                   "this conversion, e.g. decode.candidates=1 (configs/*.yaml, DecodeConfig)")
    p.add_argument("-o", "--output", required=True, help="output file (written when complete)")
    p.add_argument("--to", help="target domain (default: per line, the one it is not in)")
    p.add_argument("--format", default="txt", choices=["txt", "jsonl", "tsv"])
    p.add_argument("--field", default="text", help="jsonl: the field to rewrite (output adds \"transfer\")")
    p.add_argument("--column", type=int, default=1, help="tsv: the column to rewrite, from 1 (output appends one)")
    p.add_argument("--batch-size", type=int, default=256, help="sentences per batch (256: fastest measured on 2 CPU cores)")
    p.add_argument("--long", default="truncate", choices=["truncate", "split"],
                   help="lines longer than the model takes: keep the first data.max_len tokens, or rewrite in pieces")
    p.add_argument("--errors", default="strict", choices=["strict", "replace"],
                   help="invalid UTF-8 / malformed jsonl or tsv lines: stop with the line number, or repair and go on")
    p.add_argument("--tokenized", action="store_true", help="write the tokenized form (for benchmarks)")
    p.add_argument("--chunk-lines", type=int, default=1024, help="lines per resume step")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT (when the new one is done)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="under accelerate launch: how long a process waits for the others (longer than one "
                        "chunk takes) before it stops, the finished chunks kept")
    p.set_defaults(func=_convert)


def _export_parser(sub, shared) -> None:
    p = sub.add_parser("export", help="convert a run for a faster inference engine (CTranslate2)")
    p.add_argument("run", help="run directory")
    p.add_argument("--engine", default="ctranslate2", choices=["ctranslate2"])
    p.add_argument("--quantization", default="int8", help="int8 | int16 | float32")
    p.add_argument("--force", action="store_true", help="convert again even if <run>/ct2-<quantization> exists")
    p.set_defaults(func=_export)


def _serve_parser(sub, shared) -> None:
    p = sub.add_parser("serve", help="an HTTP API and a demo page for trained runs (FastAPI + uvicorn)",
                       parents=[shared["runs"], shared["engine"]])
    p.add_argument("overrides", nargs="*", metavar="decode.KEY=VALUE", help="change the served runs' decode "
                   "section, e.g. decode.guidance=0 (configs/*.yaml, DecodeConfig)")
    p.add_argument("--model", action="append", metavar="DIR", help="a run to serve (repeatable; one per task)")
    p.add_argument("--task", action="append", help="serve the newest run of this task (repeatable; default: "
                   "the newest run of every task under the runs directory)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--workers", type=int, default=2, help="model processes; each decodes its own batches "
                   "(2: the two directions of a batch decode at once)")
    p.add_argument("--threads", type=int, help="torch CPU threads per worker (default: the cores but one, which "
                   "the HTTP event loop gets, shared among the workers)")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request")
    p.add_argument("--max-chars", type=int, default=2000, help="characters per text")
    p.add_argument("--max-body-kb", type=int, default=256, help="request body size")
    p.add_argument("--max-n", type=int, default=8, help="samples per text")
    p.add_argument("--batch-texts", type=int, default=64, help="micro-batching: texts per batch at most")
    p.add_argument("--batch-ms", type=float, default=10.0, help="micro-batching: how long a batch waits for "
                   "more requests after its first")
    p.add_argument("--max-wait", type=float, default=30.0, help="seconds a request may expect to wait for its "
                   "answer: its decoding (texts x n x pieces x the decoder runs of the run's decode x the seconds "
                   "per unit the server measures) plus the backlog's share per worker; over it: 503 with "
                   "Retry-After, or 413 for a request that alone needs longer (default: 30)")
    p.set_defaults(func=_serve)


def _judge_parser(sub, shared) -> None:
    p = sub.add_parser("judge", help="train the evaluator (style judge + fluency LMs) of a task",
                       parents=[shared["task"], shared["runs"], shared["data"]])
    p.add_argument("action", choices=["train"])
    p.add_argument("--out", help="directory (default: <runs>/eval/<task>)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. eval.lm_steps=1000")
    p.set_defaults(func=_judge)


def _evaluate_parser(sub, shared) -> None:
    p = sub.add_parser("evaluate", help="score runs and/or output files on a task's test set",
                       parents=[shared["task"], shared["runs"], shared["data"], shared["decode"], shared["length"]])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="task config overrides (eval.*: the "
                   "evaluator), decode.* ones also change each --model run's decode section")
    p.add_argument("--model", action="append", metavar="RUN_DIR", help="a run to transfer the test set with "
                   "(repeatable)")
    p.add_argument("--outputs", action="append", nargs="+", metavar="[NAME:]DIRECTION=FILE",
                   help="a system's output files, one per direction (repeat --outputs for more systems)")
    p.add_argument("--evaluator", help="evaluator directory (default: <runs>/eval/<task>, trained if missing)")
    p.add_argument("--out", help="write metrics.json, metrics.md and the outputs here")
    p.add_argument("--test-set", default="test", help="the card's test split (default) or one of its test_sets, "
                   "e.g. wmt21")
    p.set_defaults(func=_evaluate)


def _data_parser(sub, shared) -> None:
    p = sub.add_parser("data", help="corpora: download or locate")
    p.add_argument("action", choices=["download", "where"])
    p.add_argument("name", help="corpus card name, e.g. yelp")
    p.add_argument("--data-dir", help="download into / search this root first")
    p.set_defaults(func=_data)

    p = sub.add_parser("pretrained", help="pretrained starts: fetch a packaged model once, or list them")
    p.add_argument("action", choices=["fetch", "list"])
    p.add_argument("name", nargs="?", default="smollm2", help="a packaged model (default smollm2)")
    p.set_defaults(func=_pretrained)


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input or a missing file: one line on stderr, not a traceback. Imported when
    one is raised, so `textgan --help` does not load torch."""
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .convert import ConvertError
    from .corpora import CorpusError
    from .distributed import LaunchError, PeerLostError
    from .fast import ExportError
    from .pretrained import PretrainedError

    return (ConfigError, CorpusError, CheckpointError, ConvertError, ExportError, PretrainedError, ValueError,
            FileNotFoundError, LaunchError, PeerLostError)


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .provenance import line_buffered_stdout

    line_buffered_stdout()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse cannot take positional KEY=VALUE overrides after an option (`judge train --task t k=v`)
    if extra and hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        again = {"train": "textgan train --resume <run dir>", "convert": "the same command again",
                 "refine": "the same command again", "distill": "textgan train --resume <run dir>"}
        if args.command in again:
            print(f"\ninterrupted; to continue, run {again[args.command]}", file=sys.stderr)
        return 130
    except Exception as err:
        if not isinstance(err, user_errors()):
            raise
        print(f"textgan {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR if not isinstance(err, ConfigError) else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
