"""Training and decoding throughput of a pretrained causal generator under each way of fine-tuning it.

    python scripts/bench_finetune.py                       # SmolLM2-135M, writes results/speed/cpu-2t-finetune/
    python scripts/bench_finetune.py --init DIR --name NAME

Variants (generator.finetune / freeze_layers / the vocabulary cut to the corpus' pieces or not):
    lora          LoRA r=16 on every linear layer (peft) + the embedding table, vocabulary cut to Yelp's pieces
    full          every weight, vocabulary cut
    lora-freeze   LoRA on the upper half of the layers only; the lower half and the embeddings frozen, so
                  the backward pass stops halfway
    lora-fullvoc  LoRA with the whole pretrained vocabulary (no cut)

One training step is what the bootstrap phase does per direction: teacher forcing of `--batch` Yelp
sentences as prompt and continuation (the copy task: the cost does not depend on the content),
backward, AdamW. The variants run interleaved, round after round, so that a slow moment of the machine
touches all alike; tokens/s counts prompt and continuation tokens. Decoding: greedy rewrites of 128
sentences in one batch with the key-value cache, sentences/s, cut vocabulary against the whole one.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import machine, split_lines  # noqa: E402

from textgan.provenance import commit  # noqa: E402
from textgan.config import GeneratorConfig  # noqa: E402
from textgan.data import pad  # noqa: E402
from textgan.decoding.search import Search, generate
from textgan.models.causal import CausalGenerator, build_causal_lm  # noqa: E402
from textgan.pretrained import resolve  # noqa: E402
from textgan.tokenizer import EOS, PretrainedPieces  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "lora": dict(finetune="lora", freeze_layers=0, cut=True),
    "full": dict(finetune="full", freeze_layers=0, cut=True),
    "lora-freeze": dict(finetune="lora", freeze_layers=15, cut=True),
    "lora-fullvoc": dict(finetune="lora", freeze_layers=0, cut=False),
}


def build(init: str, pieces: PretrainedPieces, finetune: str, freeze_layers: int) -> CausalGenerator:
    torch.manual_seed(0)
    g = CausalGenerator(build_causal_lm(GeneratorConfig(arch="causal", init=init, finetune=finetune, lora_r=16,
                                                        freeze_layers=freeze_layers), pieces))
    return g.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init", default="smollm2")
    parser.add_argument("--name", default="cpu-2t-finetune")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(resolve(args.init))
    lines = split_lines("yelp", "train", "neg") + split_lines("yelp", "train", "pos")
    cut = PretrainedPieces.build(hf, lines, ["<2neg>", "<2pos>"])
    whole = PretrainedPieces(hf, list(range(len(hf))), ["<2neg>", "<2pos>"])
    models, opts = {}, {}
    for name, v in VARIANTS.items():
        models[name] = build(args.init, cut if v["cut"] else whole, v["finetune"], v["freeze_layers"])
        opts[name] = torch.optim.AdamW([p for p in models[name].parameters() if p.requires_grad], lr=1e-5)
    texts = lines[1000:1000 + args.batch * (args.steps + 1)]
    batches = {name: [pad((cut if v["cut"] else whole).encode(texts[i:i + args.batch]))
                      for i in range(0, len(texts) - args.batch + 1, args.batch)] for name, v in VARIANTS.items()}
    seconds = {name: 0.0 for name in VARIANTS}
    tokens = {name: 0 for name in VARIANTS}
    for _ in range(args.rounds):
        for name, g in models.items():
            for k, (src, mask) in enumerate(batches[name]):
                tgt, _ = pad([[t for t, m in zip(row, ms) if m] + [EOS] for row, ms in zip(src.tolist(), mask.tolist())])
                start = time.perf_counter()
                logits = g(src, mask, tgt, 5)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=0)
                loss.backward()
                opts[name].step()
                opts[name].zero_grad()
                if k:                                            # the first step of a round warms up
                    seconds[name] += time.perf_counter() - start
                    tokens[name] += int(mask.sum()) + 2 * len(src) + int((tgt != 0).sum())
    results = {"training": {n: {"tokens_per_s": tokens[n] / seconds[n], **VARIANTS[n],
                                "trainable": sum(p.numel() for p in models[n].parameters() if p.requires_grad)}
                            for n in VARIANTS}}
    decode = {}
    sents = lines[5000:5128]
    for name in ("lora", "lora-fullvoc"):
        g, pieces = models[name].eval(), cut if VARIANTS[name]["cut"] else whole
        src, mask = pad(pieces.encode(sents))
        generate(g, src[:8], mask[:8], 5, Search(max_len=24))              # warm-up
        start = time.perf_counter()
        generate(g, src, mask, 5, Search(max_len=24))
        decode[name] = len(sents) / (time.perf_counter() - start)
    results["decode_sentences_per_s"] = decode
    results.update(vocabulary={"cut": cut.get_piece_size(), "whole": whole.get_piece_size()}, batch=args.batch,
                   rounds=args.rounds, steps=args.steps, init=args.init, machine=machine(), commit=commit(),
                   command=shlex.join([sys.executable.split("/")[-1], *sys.argv]),
                   date=time.strftime("%Y-%m-%d %H:%M"))
    out = ROOT / "results" / "speed" / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "README.md").write_text(report(results))
    print(report(results))


def report(r: dict) -> str:
    m = r["machine"]
    rows = "\n".join(f"| {name} | {t['finetune']} | {t['freeze_layers']} | {'cut' if t['cut'] else 'whole'} | "
                     f"{t['trainable'] / 1e6:.1f}M | {t['tokens_per_s']:.0f} |" for name, t in r["training"].items())
    d = r["decode_sentences_per_s"]
    return f"""# Fine-tuning a pretrained causal generator: throughput ({r['init']})

Command: `{r['command']}` at commit {r['commit']}, {r['date']}.
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} using {m['torch_threads']} threads.
Vocabulary: {r['vocabulary']['cut']} pieces cut to Yelp's training text, {r['vocabulary']['whole']} whole.

Training steps (teacher forcing + backward + AdamW, batch {r['batch']} Yelp sentences as prompt and
continuation), interleaved over {r['rounds']} rounds of {r['steps']} timed steps per variant:

| variant | finetune | frozen layers | vocabulary | trainable | tokens/s |
|---|---|---|---|---|---|
{rows}

Greedy decoding, 128 Yelp sentences in one batch, key-value cache: {d['lora']:.1f} sentences/s with the cut
vocabulary, {d['lora-fullvoc']:.1f} with the whole one.
"""


if __name__ == "__main__":
    main()
