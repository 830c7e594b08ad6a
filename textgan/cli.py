"""`textgan` command line: thin parsing around library calls.

    textgan train --task sentiment [--preset cpu|gpu] [--estimator soft|gumbel|reinforce] [key=value ...]
    textgan train --resume RUN_DIR
    textgan transfer [TEXT ...] [--to DOMAIN] [--model DIR] [--beam N] [--sample]
    textgan data download NAME | textgan data where NAME
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE, EXIT_ERROR = 2, 1


def _train(args) -> int:
    from .checkpoint import CheckpointError
    from .config import config_from_dict, load_config, merge, parse_override
    from .trainer import train

    import yaml

    if args.resume:
        config_file = Path(args.resume) / "config.yaml"
        if not config_file.is_file():
            raise CheckpointError(f"{args.resume} is not a run directory (no config.yaml)")
        cfg = config_from_dict(yaml.safe_load(config_file.read_text()))
        for text in args.overrides:  # e.g. extend a finished run: --resume RUN train.adv_steps=3000
            merge(cfg, parse_override(text))
    else:
        overrides = list(args.overrides)
        if args.estimator:
            overrides.append(f"train.estimator={args.estimator}")
        cfg = load_config(args.task, args.preset, overrides)
    run_dir = train(cfg, runs_dir=args.runs_dir, name=args.name, resume=args.resume, data_dir=args.data_dir,
                    command=sys.argv)
    print(f"run saved in {run_dir}")
    print(f'try: textgan transfer --model {run_dir} "the food was cold ."')
    return 0


def _transfer(args) -> int:
    from .checkpoint import latest_run
    from .transfer import StyleTransfer

    texts = list(args.text)
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            print("textgan transfer: give TEXT arguments or pipe lines on stdin", file=sys.stderr)
            return EXIT_USAGE
        texts = [line.rstrip("\n") for line in sys.stdin]
    model = StyleTransfer(args.model or latest_run(args.task, args.runs_dir))
    targets = args.to
    if targets is None and len(model.domains) == 2:
        detected = model.detect(texts)
        targets = [model.other_domain(d) for d in detected]
        for d, t in zip(detected, targets):
            print(f"[detected {d}, writing {t}]", file=sys.stderr)
    outputs = model.transfer(texts, to=targets, beam=args.beam, sample=args.sample, tokenized=args.tokenized)
    for out in outputs:
        print(out)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgan", description="Unsupervised text style transfer and "
                                     "translation with GANs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a task (or resume a run)")
    p.add_argument("--task", default="sentiment", help="task name (configs/<task>.yaml) or a YAML file")
    p.add_argument("--preset", default="auto", help="cpu | gpu | auto (gpu when CUDA is available)")
    p.add_argument("--estimator", choices=["soft", "gumbel", "reinforce"], help="gradient estimator for G")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--name", help="run name (default: a timestamp)")
    p.add_argument("--runs-dir", help="where runs go (default: ./runs or $TEXTGAN_RUNS)")
    p.add_argument("--data-dir", help="corpus root to search first")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.lr_g=3e-4")
    p.set_defaults(func=_train)

    p = sub.add_parser("transfer", help="rewrite sentences into another domain")
    p.add_argument("text", nargs="*", help="sentences (default: read lines from stdin)")
    p.add_argument("--to", help="target domain (default: the one the input is not in)")
    p.add_argument("--task", default="sentiment", help="use the newest run of this task")
    p.add_argument("--model", help="run directory to use")
    p.add_argument("--runs-dir", help="where to look for runs")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy/beam decoding")
    p.add_argument("--tokenized", action="store_true", help="print the tokenized form (for benchmarks)")
    p.set_defaults(func=_transfer)

    p = sub.add_parser("data", help="corpora: download or locate")
    p.add_argument("action", choices=["download", "where"])
    p.add_argument("name", help="corpus card name, e.g. yelp")
    p.add_argument("--data-dir", help="download into / search this root first")
    p.set_defaults(func=_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .corpora import CorpusError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CorpusError, CheckpointError, ValueError) as err:
        print(f"textgan {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR if not isinstance(err, ConfigError) else EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted; resume with: textgan train --resume <run dir>", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
