"""Convert every file of a corpus split (from its card) or of a directory with `textgan convert`'s code.

    python scripts/convert_corpus.py --corpus yelp --split test -o converted/          # test.neg -> pos, test.pos -> neg
    python scripts/convert_corpus.py --dir my_reviews/ --to pos -o converted/ --model runs/sentiment/NAME

Each input file F becomes OUTDIR/F.<to> (OUTDIR/F.transfer when each line picks its own target). Finished
outputs are skipped; unfinished ones (a killed run) are resumed; run the same command again after any
interruption. The same options as `textgan convert` apply to every file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from textgan.checkpoint import CheckpointError, latest_run
from textgan.convert import ConvertError, Job, convert, summary_line
from textgan.corpora import CorpusError, corpus_dir, load_card


def jobs(args, domains: list[str]) -> list[tuple[Path, str | None]]:
    """(input file, target domain or None) for every file to convert."""
    if args.corpus:
        card = load_card(args.corpus)
        if args.split not in card.files:
            raise CorpusError(f"corpus '{card.name}' has no split {args.split!r}; it has: {', '.join(card.files)}")
        root = corpus_dir(card, (args.split,), args.data_dir)
        out = []
        for domain, rel in card.files[args.split].items():
            to = args.to or (next(d for d in domains if d != domain) if len(domains) == 2 and domain in domains
                             else None)
            out.append((root / rel, to))
        return out
    files = sorted(p for p in Path(args.dir).rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConvertError(f"no files under {args.dir}")
    return [(p, args.to) for p in files]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="a corpus card name (corpora/<name>.yaml)")
    source.add_argument("--dir", help="a directory: every file under it")
    parser.add_argument("--split", default="test", help="with --corpus: the split to convert")
    parser.add_argument("-o", "--out-dir", required=True)
    parser.add_argument("--to", help="target domain (default: the other domain of each file / each line)")
    parser.add_argument("--model", help="run directory (default: the newest run of --task)")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--runs-dir")
    parser.add_argument("--data-dir")
    parser.add_argument("--format", default="txt", choices=["txt", "jsonl", "tsv"])
    parser.add_argument("--field", default="text")
    parser.add_argument("--column", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--long", default="truncate", choices=["truncate", "split"])
    parser.add_argument("--errors", default="strict", choices=["strict", "replace"])
    parser.add_argument("--tokenized", action="store_true")
    parser.add_argument("--chunk-lines", type=int, default=1024)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    try:
        model = Path(args.model) if args.model else latest_run(args.task, args.runs_dir)
        config = model / "config.yaml"
        if not config.is_file():
            raise CheckpointError(f"{model} is not a textgan run directory (no config.yaml)")
        domains = yaml.safe_load(config.read_text())["data"]["domains"]
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        base = Path(args.dir) if args.dir else None
        for path, to in jobs(args, domains):
            rel = path.relative_to(base) if base else Path(path.name)
            output = out_dir / f"{rel}.{to or 'transfer'}"
            output.parent.mkdir(parents=True, exist_ok=True)
            if output.exists():
                print(f"{output}: done already, skipped", file=sys.stderr)
                continue
            job = Job(to=to, fmt=args.format, field=args.field, column=args.column, long=args.long,
                      errors=args.errors, beam=args.beam, tokenized=args.tokenized, batch_size=args.batch_size,
                      chunk_lines=args.chunk_lines)
            result = convert(path, output, model, job, show_progress=not args.quiet)
            if output.exists():
                print(f"{path} -> {output}: {summary_line(result)}",
                      file=sys.stderr)
    except (ConvertError, CorpusError, CheckpointError, ValueError) as err:
        print(f"convert_corpus: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
