"""Mutation check: break one behaviour at a time in a copy of the repository and see that its tests fail.

    python scripts/mutants.py                 # every mutation
    python scripts/mutants.py mutual hub      # the named ones
    python scripts/mutants.py --list          # names, files, tests and what each breaks
    python scripts/mutants.py --baseline ...  # first run each test selection on the unmutated copy

Run it when a behaviour's tests (or the code a mutation names) change. Each mutation copies the working
tree (tracked files and untracked ones git does not ignore, as they are now, uncommitted changes included)
into a temporary directory, replaces its `original` text, which must occur exactly once in the file (so
that a mutation whose code moved fails loudly instead of testing nothing), and runs its pytest selection
there with PYTHONPATH at the copy, so the copy's textgan is imported rather than the editable install.
A mutation is caught when pytest reports failing tests (exit status 1); passing tests mean it SURVIVED,
and any other status (no tests collected, a usage error) is an error. Exit status 1 unless all are caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Mutation:
    name: str
    file: str
    original: str
    mutated: str
    tests: list[str]          # pytest arguments: files, -k expressions
    breaks: str               # the behaviour it breaks, in one line


MUTATIONS = [
    Mutation("mutual", "textgan/mining/margin.py",
             "keep = (ba[ab] == torch.arange(len(ab))) & (ab_score >= min_margin)",
             "keep = ab_score >= min_margin",
             ["tests/test_mining.py", "-k", "margin_mining"],
             "mining keeps every sentence's best match, mutual or not"),
    Mutation("hub", "textgan/mining/margin.py",
             "margin = sims / ((own[:, None] + other[idx]) / 2)",
             "margin = sims / own[:, None]",
             ["tests/test_mining.py", "-k", "margin_mining"],
             "the margin ignores the candidate's neighbourhood, so mining ranks by cosine (hubs win)"),
    Mutation("query-margin", "textgan/mining/margin.py",
             "margin = sims / ((own[:, None] + pool_mean[idx]) / 2)",
             "margin = sims",
             ["tests/test_mining.py", "-k", "margin_mining"],
             "the miner as a translator picks by cosine"),
    Mutation("lora-kept", "textgan/models/causal.py",
             "return copy.deepcopy(self.model).merge_and_unload()",
             "return copy.deepcopy(self.model).unload()",
             ["tests/test_causal.py", "-k", "saves_loads"],
             "a saved causal run drops its LoRA adapters instead of merging them"),
    Mutation("nbest-order", "textgan/decoding/search.py",
             "ranked = (scores.view(n) / length.clamp(min=1)).view(batch, k).topk(nbest, dim=1).indices",
             "ranked = scores.view(batch, k).topk(nbest, dim=1).indices",
             ["tests/test_models.py", "-k", "beam_search_nbest"],
             "beam search's n-best come by total log-prob, not log-prob / length"),
    Mutation("ct2-rows", "textgan/fast.py",
             "for r in results for h in r.hypotheses[:nbest]]",
             "for r in [results[-1]] * len(results) for h in r.hypotheses[:nbest]]",
             ["tests/test_fast.py", "-k", "export_then"],
             "the CTranslate2 engine gives every input the last input's hypotheses"),
    Mutation("shards", "textgan/training/common.py",
             "self.acc.process_index, self.acc.num_processes, key))",
             "0, 1, key))",
             ["tests/test_distributed.py"],
             "every process trains on the whole data (process 0 of 1) instead of its shard"),
]


def copy_tree(dest: Path) -> None:
    """The working tree's files git knows or would add, as they are on disk, into dest."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():                  # deleted in the working tree: not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def apply(m: Mutation, tree: Path) -> None:
    path = tree / m.file
    text = path.read_text()
    found = text.count(m.original)
    if found != 1:
        sys.exit(f"mutation {m.name}: {m.file} holds its original text {found} times, not once; the code moved, "
                 f"update the mutation in scripts/mutants.py:\n    {m.original}")
    path.write_text(text.replace(m.original, m.mutated))


def pytest(tree: Path, tests: list[str]) -> int:
    """pytest's exit status on `tests` in tree, importing tree's textgan."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    imported = subprocess.run([sys.executable, "-c", "import textgan; print(textgan.__file__)"], cwd=tree, env=env,
                              capture_output=True, text=True).stdout.strip()
    if not Path(imported).is_relative_to(tree):
        sys.exit(f"the copy imports textgan from {imported!r}, not from {tree}: its tests would test the original")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests], cwd=tree,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def run(m: Mutation | None, tests: list[str]) -> tuple[str, float]:
    """(verdict, seconds) of `tests` on a fresh copy, mutated by m (None: unmutated)."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        tree = Path(tmp) / "repo"
        copy_tree(tree)
        if m is not None:
            apply(m, tree)
        rc = pytest(tree, tests)
    if m is None:
        verdict = "passes" if rc == 0 else f"FAILS (rc {rc})"
    else:
        verdict = {0: "SURVIVED", 1: "caught"}.get(rc, f"error (rc {rc})")
    return verdict, time.time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="run each test selection unmutated first")
    args = parser.parse_args()
    by_name = {m.name: m for m in MUTATIONS}
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:14} {m.file:30} {' '.join(m.tests):45} {m.breaks}")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"unknown mutations {unknown}; choose from {', '.join(by_name)}")
    chosen = [by_name[n] for n in args.names] if args.names else MUTATIONS
    rows, bad = [], False
    if args.baseline:
        for tests in dict.fromkeys(tuple(m.tests) for m in chosen):
            verdict, seconds = run(None, list(tests))
            rows.append(("(unmutated)", " ".join(tests), verdict, seconds))
            bad |= verdict != "passes"
            print(*rows[-1][:3], f"{seconds:.0f} s", sep="  |  ", flush=True)
    for m in chosen:
        verdict, seconds = run(m, m.tests)
        rows.append((m.name, " ".join(m.tests), verdict, seconds))
        bad |= verdict != "caught"
        print(*rows[-1][:3], f"{seconds:.0f} s", sep="  |  ", flush=True)
    print(f"\n{'mutation':14} {'test':45} {'result':16} seconds")
    for name, tests, verdict, seconds in rows:
        print(f"{name:14} {tests:45} {verdict:16} {seconds:7.0f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
