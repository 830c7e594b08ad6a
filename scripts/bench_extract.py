"""The word-extraction search alone as a summarizer on the Gigaword test set, with and without the last
step scored by a pretrained LM (miner.rescore_lm, textgan/mining/extract.py), beside lead-8 and the first words.

    python scripts/bench_extract.py --name extract-search-lm --rescore-lm smollm2 [miner.rescore_weight=2 ...]

Fits the headline n-gram model and the article IDF on the task's training text (as a run's bootstrap
does), asks --words words of every test article, and scores each system with rouge-score (Porter
stemming, F1) against the test headlines: textgan evaluate's ROUGE. Each search system is timed on the
same articles; the LM's load time is reported apart. Writes results/summarization/<name>/ (results.json,
README.md, the outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textgan.config import load_config  # noqa: E402
from textgan.data import prepare_data  # noqa: E402
from textgan.evaluate import first_words, published_baselines, task_directions  # noqa: E402
from textgan.metrics import rouge  # noqa: E402
from textgan.mining.extract import ExtractMiner, Extractor  # noqa: E402
from textgan.provenance import commit, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METRICS = (("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeL", "R-L"))


def search(miner: ExtractMiner, articles: list[str], words: int) -> tuple[list[str], float]:
    """The miner's transfer (words words of each article) and its seconds."""
    miner.cfg.words = words
    started = time.perf_counter()
    out = miner.transfer(articles, "article", "title")
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="results/summarization/<name>")
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--rescore-lm", default="smollm2", help="the pretrained LM of the rescored row")
    parser.add_argument("--limit", type=int, default=0, help="the first N test articles only (0: all)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. miner.rescore_weight=2")
    args = parser.parse_args()

    cfg = load_config("summarization", "cpu", args.overrides)
    (direction,) = task_directions(cfg)
    articles, refs = direction.inputs, direction.references[0]
    if args.limit:
        articles, refs = articles[: args.limit], refs[: args.limit]
    split = prepare_data(cfg)[0]
    miner = ExtractMiner(cfg.miner, log=lambda m: print(m, flush=True)).fit(
        {d: list(split[d]["text"]) for d in cfg.data.domains})
    systems = {f"first {args.words} words": first_words(articles, args.words)}
    for name, outs in published_baselines(cfg).items():
        systems[name] = outs[direction.name][: len(articles)]
    seconds = {}
    systems["search (headline trigram model)"], seconds["search (headline trigram model)"] = search(miner, articles, args.words)
    from textgan.pretrained import PromptedLM

    started = time.perf_counter()
    extractor: Extractor = miner.extractor
    extractor.rescorer = PromptedLM.load(args.rescore_lm, template=cfg.miner.rescore_prompt)
    extractor.rescore_top, extractor.rescore_weight = cfg.miner.rescore_top, cfg.miner.rescore_weight
    load_seconds = time.perf_counter() - started
    lm_row = f"search + {args.rescore_lm} last step (top {cfg.miner.rescore_top}, weight {cfg.miner.rescore_weight})"
    systems[lm_row], seconds[lm_row] = search(miner, articles, args.words)

    rows = [{"system": name, **rouge(outs, refs), "words": sum(len(o.split()) for o in outs) / len(outs),
             **({"seconds": round(seconds[name], 1)} if name in seconds else {})} for name, outs in systems.items()]
    out = ROOT / "results" / "summarization" / args.name
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, outs) in enumerate(systems.items()):
        (out / f"test.{i}.txt").write_text("".join(o + "\n" for o in outs))
    command = "python scripts/bench_extract.py " + " ".join(sys.argv[1:])
    info = {"command": command, "commit": commit(short=True), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "articles": len(articles), "words": args.words, "lm_load_seconds": round(load_seconds, 1),
            "miner": {k: getattr(cfg.miner, k) for k in ("lm_order", "sim_weight", "search_steps", "restarts",
                                                          "rescore_top", "rescore_weight", "rescore_prompt")},
            "outputs": {name: f"test.{i}.txt" for i, name in enumerate(systems)}, "rows": rows}
    (out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    table = "\n".join(f"| {r['system']} | " + " | ".join(f"{r[k]:.1f}" for k, _ in METRICS)
                      + f" | {r['words']:.1f} | {r.get('seconds', '')} |" for r in rows)
    (out / "README.md").write_text(f"""# Summarization: the extraction search alone, with and without a pretrained LM's last step

- command: `{command}`
- commit: {info['commit']}; {info['date']}; {info['machine']}
- Gigaword test, {len(articles)} articles, {args.words} words asked; ROUGE F1 (rouge-score, Porter stemming)
  against the test headlines, as `textgan evaluate` scores summarization
- miner settings: {json.dumps(info['miner'])}; the LM loaded in {info['lm_load_seconds']} s (not in the
  seconds below); the outputs of each row: {', '.join(f'`{v}`' for v in info['outputs'].values())} (in the table's order)

| system | R-1 | R-2 | R-L | words | seconds |
|---|---|---|---|---|---|
{table}
""")
    print((out / "README.md").read_text())


if __name__ == "__main__":
    main()
