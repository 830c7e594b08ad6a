"""Score a run on its task's test set: style accuracy, self-BLEU, ref-BLEU; the input copy beside it.

    python scripts/score_run.py runs/sentiment/NAME [--judge PATH] [--out FILE.json]

The style judge is the run's `judge.pt` (a hashed n-gram logistic regression trained on the training
text alone, apart from the GAN's discriminator) unless --judge names another. Text is scored in its
tokenized form with sacreBLEU `tok:none` for PTB-tokenized corpora, as in BENCHMARKS.md.
(`textgan evaluate`, issue 3, will supersede this script.)
"""

import argparse
import json
import time
from pathlib import Path

from textgan.corpora import corpus_dir, load_card, read_lines, references
from textgan.evaluate import BLEU_TOKENIZE, NgramJudge, bleu, bleu_with_signature
from textgan.tokenizer import normalize
from textgan.transfer import StyleTransfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--judge", help="judge file (default: RUN_DIR/judge.pt)")
    parser.add_argument("--out", help="write the scores here as JSON (default: RUN_DIR/test_scores.json)")
    args = parser.parse_args()

    model = StyleTransfer(args.run_dir, device="cpu")
    cfg, scheme = model.cfg, model.cfg.data.normalize
    card = load_card(cfg.data.corpus)
    root = corpus_dir(card, ("test",))
    judge = NgramJudge.load(Path(args.judge or Path(args.run_dir) / "judge.pt"))
    tokenize = BLEU_TOKENIZE.get(scheme, "13a")
    a, b = cfg.data.domains
    rows = {"input copy": {}, "model": {}}
    signature = ""
    started = time.time()
    for src, tgt in [(a, b), (b, a)]:
        inputs = [normalize(t, scheme) for t in read_lines(root / card.files["test"][src])]
        outputs = model.transfer(inputs, to=tgt, tokenized=True)
        (Path(args.run_dir) / f"test.{src}2{tgt}.txt").write_text("\n".join(outputs) + "\n")
        refs = [[normalize(r, scheme) for r in ref] for ref in references(card, "test", src)]
        for name, hyps in [("input copy", inputs), ("model", outputs)]:
            row = rows[name]
            row[f"acc_{src}2{tgt}"] = judge.accuracy(hyps, tgt)
            row[f"self_bleu_{src}2{tgt}"] = bleu(hyps, [inputs], tokenize).score
            if refs:
                score, signature = bleu_with_signature(hyps, refs, tokenize)
                row[f"ref_bleu_{src}2{tgt}"] = score.score
    for row in rows.values():
        for metric in ("acc", "self_bleu", "ref_bleu"):
            parts = [v for k, v in row.items() if k.startswith(metric + "_")]
            if parts:
                row[metric] = sum(parts) / len(parts)
    result = {"run": str(args.run_dir), "judge": str(args.judge or "run judge.pt"),
              "judge_acc_on_inputs": 100 - rows["input copy"]["acc"], "bleu_signature": signature,
              "seconds": round(time.time() - started, 1), "rows": rows}
    Path(args.out or Path(args.run_dir) / "test_scores.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| system | ACC | self-BLEU | ref-BLEU |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['acc']:.1f} | {row['self_bleu']:.1f} | {row.get('ref_bleu', float('nan')):.1f} |")
    print(f"judge: {result['judge']}, {result['judge_acc_on_inputs']:.1f}% accurate on the untouched inputs")
    print(f"sacreBLEU: {result['bleu_signature']}")


if __name__ == "__main__":
    main()
