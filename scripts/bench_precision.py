"""Training throughput under mixed precision: bf16 autocast against fp32, the same steps interleaved.

    python scripts/bench_precision.py --task sentiment --preset cpu-scratch     # results/speed/cpu-<n>t-precision/

Two Trainers of the preset start from the same fresh weights (the preset's tokenizer trained on a sample
of the corpus into a temporary run directory) and take turns, step by step, on the same batches: one
under `train.mixed_precision=bf16` (the forward passes in `Accelerator.autocast`, bf16 matmuls; weights,
gradients and optimizer moments stay fp32) and one in fp32. Both share one Accelerator made with
mixed_precision="bf16"; the fp32 one sees it through `NoAutocast`, whose autocast() is a no-op, so the two
differ in nothing else. The phases measured are the autoencoder, the bootstrap (the pairs are each
sentence with itself: a step costs the same whatever the pairs say) and the adversarial step (G + D).
Tokens: source tokens of both domains' batches. Writes results.json and README.md with the command,
commit and machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import code, machine, matmul_peak  # noqa: E402

from textgan import checkpoint  # noqa: E402
from textgan.config import load_config  # noqa: E402
from textgan.data import encode_split, prepare_data  # noqa: E402
from textgan.rewards import StyleClassifier  # noqa: E402
from textgan.runner import pretrained_pieces  # noqa: E402
from textgan.tokenizer import Tokenizer, load_tokenizer  # noqa: E402
from textgan.trainer import Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHASES = {"ae": "autoencoder", "boot": "bootstrap (pairs)", "adv": "adversarial (G + D)"}


class NoAutocast:
    """An Accelerator seen without its mixed precision: every attribute is the accelerator's, autocast()
    does nothing."""

    def __init__(self, accelerator):
        self._accelerator = accelerator

    def __getattr__(self, name):
        return getattr(self._accelerator, name)

    def autocast(self, *args, **kwargs):
        return contextlib.nullcontext()


def fresh_run(cfg, run_dir: Path, train_split) -> Tokenizer:
    """The preset's tokenizer in run_dir, as `textgan train` makes it."""
    if cfg.generator.arch == "causal":
        pretrained_pieces(cfg, run_dir, train_split)
    else:
        texts = [t for d in cfg.data.domains for t in list(train_split[d]["text"])[: cfg.tokenizer.sample_lines]]
        Tokenizer.train(texts, run_dir / "tokenizer.model", cfg.data.domains, cfg.data.normalize,
                        cfg.tokenizer.vocab_size, cfg.tokenizer.model_type, cfg.tokenizer.character_coverage,
                        cfg.data.length_tokens)
    return load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize)


def bf16_matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of a bf16 n x n x n matrix multiply (bench_speed.matmul_peak is fp32 on CPU)."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 2):
        sync(torch.device(device))
        start = time.perf_counter()
        a @ b
        sync(torch.device(device))
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(cfg, steps: int, lines: int, phases: list[str], save) -> dict:
    from accelerate import Accelerator

    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16")
    cfg = replace(cfg, data=replace(cfg.data, max_train_lines=lines),
                  train=replace(cfg.train, bootstrap_steps=max(cfg.train.bootstrap_steps, 1), bootstrap="none"))
    train_split, _ = prepare_data(cfg)
    result: dict = {"steps": steps, "train_lines_per_domain": lines}
    with tempfile.TemporaryDirectory() as tmp:
        tok = fresh_run(cfg, Path(tmp), train_split)
        train_ids = encode_split(train_split, tok, cfg.data.max_len)
        pairs = {d: [(ids, ids) for ids in train_ids[d]] for d in cfg.data.domains}
        style = None
        if cfg.train.style_reward:
            style = StyleClassifier(cfg.discriminator, tok.vocab_size, len(cfg.data.domains), checkpoint.max_positions(cfg))
        trainers = {}
        for name, accelerator in (("fp32", NoAutocast(acc)), ("bf16", acc)):
            torch.manual_seed(cfg.train.seed)
            trainers[name] = Trainer(cfg, Path(tmp), accelerator, tok, train_ids, {}, judge=None, pairs=pairs, style=style)
        first = trainers["fp32"]
        result["generator_parameters"] = sum(p.numel() for g in first.generators for p in g.parameters())
        result["trainable_generator_parameters"] = sum(p.numel() for p in first.g_params() if p.requires_grad)
        batches, pair_batches = first.batches(), first.batches(pairs)
        current = [None]                                    # this step's pair batch, the phases' pair stream
        by_name = {name: t.phases(None, iter(lambda: current[0], object())) for name, t in trainers.items()}
        for phase in phases:
            tokens, seconds, losses = 0, dict.fromkeys(trainers, 0.0), {k: [] for k in trainers}
            for i in range(steps + 2):                                    # two warm-up steps
                seqs_a, seqs_b = next(batches)
                pair_batch = current[0] = next(pair_batches)
                for name, trainer in trainers.items():      # interleaved: drifts in machine speed hit both alike
                    trainer.state.step = trainer.starts[phase]
                    trainer.seed_noise()
                    sync(acc.device)
                    start = time.perf_counter()
                    step = by_name[name][phase]
                    if phase in ("ae", "boot"):
                        logs = step.step(seqs_a, seqs_b)
                    else:                                         # the G step and one D step
                        logs, fakes = step.g_step(seqs_a, seqs_b, pair_batch if cfg.train.lambda_pairs else None)
                        logs.update(step.d_step(fakes))
                    sync(acc.device)
                    if i >= 2:
                        seconds[name] += time.perf_counter() - start
                        losses[name].append(logs.get("g_loss", logs.get("d_loss")))
                if i >= 2:
                    tokens += sum(len(s) + 1 for s in seqs_a + seqs_b)
            for name in trainers:
                result[f"{phase}_tokens_per_s_{name}"] = tokens / seconds[name]
                result[f"{phase}_s_per_step_{name}"] = seconds[name] / steps
                result[f"{phase}_mean_loss_{name}"] = sum(losses[name]) / len(losses[name])
            print(f"{phase}: fp32 {result[f'{phase}_tokens_per_s_fp32']:.0f} tokens/s, bf16 "
                  f"{result[f'{phase}_tokens_per_s_bf16']:.0f} tokens/s", flush=True)
            dtypes = {str(p.dtype) for t in trainers.values() for g in t.generators for p in g.parameters()}
            result["parameter_dtypes_after_training"] = sorted(dtypes)
            save(result)                                  # after each phase: a cut-short run keeps what it measured
    return result


def report(r: dict) -> str:
    m, tr = r["machine"], r["training"]
    rows = "\n".join(
        f"| {label} | {tr[f'{ph}_tokens_per_s_fp32']:.0f} | {tr[f'{ph}_tokens_per_s_bf16']:.0f} | "
        f"{tr[f'{ph}_tokens_per_s_bf16'] / tr[f'{ph}_tokens_per_s_fp32']:.2f}x | "
        f"{tr[f'{ph}_mean_loss_fp32']:.3f} / {tr[f'{ph}_mean_loss_bf16']:.3f} |"
        for ph, label in PHASES.items() if f"{ph}_tokens_per_s_fp32" in tr)
    text = f"""# Speed: mixed precision (bf16 autocast) against fp32, {r['task']} --preset {r['preset']}, on {m.get('gpu') or m['cpu']}

Command: {code(r['command'])} at commit {r['commit']}, {r['date']}.
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} using {m['torch_threads']} threads{', GPU ' + m['gpu'] if 'gpu' in m else ''}.
Matmul peak measured in the same run (2048 x 2048): fp32 {r['matmul_peak_gflop_per_s']:.1f} GFLOP/s, bf16 {r['bf16_matmul_peak_gflop_per_s']:.1f} GFLOP/s.
"""
    if r.get("note"):
        text += f"\n{r['note']}\n"
    text += f"""
Training steps of the preset ({tr['generator_parameters'] / 1e6:.1f}M generator parameters,
{tr['trainable_generator_parameters'] / 1e6:.1f}M trained), fresh weights, {tr['steps']} timed steps per row
after two warm-up steps, fp32 and bf16 interleaved step by step on the same batches (tokens: source
tokens of both domains' batches; {tr['train_lines_per_domain']} training lines per domain). The weights
stay {', '.join(tr['parameter_dtypes_after_training'])} under bf16: only the forward passes are autocast.
Mean loss: the generator's loss over the timed steps, a check that both variants train alike.

| training step | fp32 tokens/s | bf16 tokens/s | bf16 vs fp32 | mean loss fp32 / bf16 |
|---|---|---|---|---|
{rows}
"""
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--preset", default="cpu-scratch")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per phase and precision")
    parser.add_argument("--lines", type=int, default=20000, help="training lines per domain (the batches' pool)")
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
    parser.add_argument("--name", help="results/speed/<name> (default: cpu-<threads>t-precision[-<preset>])")
    parser.add_argument("--out", default=str(ROOT / "results" / "speed"))
    parser.add_argument("--note", default="", help="a paragraph for the README (e.g. whether the machine was shared)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    info = machine()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    default = (info.get("gpu", "gpu").replace(" ", "-") if device == "cuda" else f"cpu-{info['torch_threads']}t")
    name = args.name or f"{default}-precision-{args.preset}"
    cfg = load_config(args.task, args.preset, args.overrides)
    results = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "commit": commit(short=True),
               "date": time.strftime("%Y-%m-%d %H:%M"), "machine": info, "task": args.task, "preset": args.preset,
               "overrides": args.overrides, "device": device, "note": args.note}
    results["matmul_peak_gflop_per_s"] = matmul_peak(device)
    results["bf16_matmul_peak_gflop_per_s"] = bf16_matmul_peak(device)
    print(f"matmul peak: fp32 {results['matmul_peak_gflop_per_s']:.1f}, bf16 "
          f"{results['bf16_matmul_peak_gflop_per_s']:.1f} GFLOP/s", flush=True)
    out_dir = Path(args.out) / name

    def save(training: dict) -> None:
        results["training"] = training
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / "README.md").write_text(report(results))

    measure(cfg, args.steps, args.lines, args.phases, save)
    print(f"written to {out_dir}")


if __name__ == "__main__":
    main()
