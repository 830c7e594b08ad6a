"""Decode the first N dev lines of each direction with a run's own decode config and write the outputs, so
two versions of the code can be compared line by line (a refactoring must not change one output).

    python scripts/decode_identity.py --model runs/sentiment/cpu-sweepbase --lines 200 -o before.json
    # ... change the code ...
    python scripts/decode_identity.py --model runs/sentiment/cpu-sweepbase --lines 200 -o after.json \
        --compare before.json

It reads the dev sentences as the run read them (StyleTransfer.splits) and decodes each domain's into the
other(s) with `transfer(..., normalized=True, tokenized=True)`: the run's decode (reranking, guidance
ladder, n-best, noisy channel, length control) exactly as `textgan transfer` applies it. Only the public
API is used, so the script runs against an older checkout too (PYTHONPATH=that/checkout).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path


def decode(run: str, lines: int, batch_size: int) -> dict:
    import torch

    import textgan

    torch.manual_seed(0)
    model = textgan.load(run, device="cpu")
    dev = model.splits()[1]
    outputs, seconds = {}, {}
    for source in model.domains:
        for target in model.domains:
            if target == source:
                continue
            texts = dev[source][:lines]
            start = time.perf_counter()
            outputs[f"{source}2{target}"] = model.transfer(texts, to=target, normalized=True, tokenized=True,
                                                           batch_size=batch_size)
            seconds[f"{source}2{target}"] = round(time.perf_counter() - start, 1)
    digest = hashlib.sha256(json.dumps(outputs, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    return {"run": run, "lines": lines, "textgan": str(Path(textgan.__file__).parent), "sha256": digest,
            "seconds": seconds, "outputs": outputs}


def compare(new: dict, old: dict) -> list[str]:
    """One line per output that differs (direction, line, old, new)."""
    diffs = []
    for direction in sorted(set(new["outputs"]) | set(old["outputs"])):
        a, b = old["outputs"].get(direction, []), new["outputs"].get(direction, [])
        if len(a) != len(b):
            diffs.append(f"{direction}: {len(a)} lines before, {len(b)} after")
        diffs += [f"{direction} line {i}: {x!r} -> {y!r}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return diffs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a run directory")
    p.add_argument("--lines", type=int, default=200, help="dev lines per direction")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("-o", "--output", required=True, help="JSON file to write")
    p.add_argument("--compare", help="an earlier output of this script: exit 1 if any line differs")
    args = p.parse_args(argv)
    result = decode(args.model, args.lines, args.batch_size)
    Path(args.output).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
    print(f"{args.model}: {sum(map(len, result['outputs'].values()))} outputs, sha256 {result['sha256'][:16]}, "
          f"seconds {result['seconds']} (textgan from {result['textgan']})")
    if args.compare:
        diffs = compare(result, json.loads(Path(args.compare).read_text()))
        for line in diffs[:20]:
            print(line)
        print(f"{len(diffs)} outputs differ from {args.compare}")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
