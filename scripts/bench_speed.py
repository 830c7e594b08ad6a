"""Speed of a trained model, measured against a naive baseline in the same run; training throughput.

    python scripts/bench_speed.py --model runs/sentiment/default-cpu              # writes results/speed/<machine>/

Measures, on one machine, with the threads torch uses:
  1. matmul peak: the best GFLOP/s of an n x n x n matrix multiply (fp32 on CPU, bf16 on GPU);
  2. inference on the Yelp test set (500 neg->pos + 500 pos->neg), greedy, sentences/s:
       textgan       `StyleTransfer.transfer`: length-sorted batches, key-value cache (decoding.search.greedy)
       ctranslate2   the same, on each `--engines` entry such as ctranslate2:int8 (textgan/fast.py), with
                     its agreement with the torch outputs (exact-match share, sacreBLEU against them)
       naive         one sentence at a time, no key-value cache: every step re-reads the whole prefix
     and how many outputs of the naive and the torch path agree;
  3. `textgan convert` of a 100k-line file (yelp/train.pos) in a subprocess, once per engine: lines/s and
     RSS over the run, beside a 10k-line file with the torch engine (memory must not grow with the input);
  4. training throughput of the model's preset: tokens/s of autoencoder steps and of adversarial steps, and
     the share of the matmul peak the autoencoder steps reach (model FLOPs ~ 6 * parameters * tokens).

Writes results.json and README.md under results/speed/<name>/ with the command, commit and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402

from textgan.corpora import corpus_dir, load_card, read_lines  # noqa: E402
from textgan.data import pad  # noqa: E402
from textgan.tokenizer import EOS  # noqa: E402
from textgan.transfer import StyleTransfer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of C = A @ B, n x n (2 n^3 FLOPs)."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


@torch.no_grad()
def naive_greedy(model: StyleTransfer, texts: list[str], to: str) -> list[str]:
    """The baseline: one sentence at a time; each step runs the decoder over the whole prefix (no cache)."""
    g = model.generator_for(to)
    device = next(g.parameters()).device
    outputs = []
    for ids in model.tok.encode(texts, model.cfg.data.max_len):
        src, mask = pad([ids or [EOS]])
        src, mask = src.to(device), mask.to(device)
        encoded = g.encode(src, mask)
        prefix = torch.tensor([[model.tok.domain_ids[to]]], device=device)
        for _ in range(model.cfg.train.max_gen_len):
            logits = g.model(encoder_outputs=encoded, attention_mask=mask.long(), decoder_input_ids=prefix,
                             use_cache=False).logits[:, -1]
            prefix = torch.cat([prefix, logits.argmax(-1, keepdim=True)], dim=1)
            if prefix[0, -1].item() == EOS:
                break
        outputs.append(model.tok.decode([prefix[0, 1:].tolist()])[0])
    return outputs


def split_lines(corpus: str, split: str, domain: str) -> list[str]:
    card = load_card(corpus)
    return read_lines(corpus_dir(card, (split,)) / card.files[split][domain])


def timed(fn, device: str):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def test_sets(model: StyleTransfer) -> dict:
    corpus, (a, b) = model.cfg.data.corpus, model.domains
    return {(a, b): split_lines(corpus, "test", a), (b, a): split_lines(corpus, "test", b)}


def engine_speed(model: StyleTransfer, device: str, batch_size: int) -> tuple[dict, float, int]:
    """(outputs per source domain, sentences/s, sentences) of greedy transfer of the test set."""
    tests = test_sets(model)
    (a, b), first = next(iter(tests.items()))
    model.transfer(first[:64], to=b, batch_size=batch_size)        # warm-up
    out, total, n = {}, 0.0, 0
    for (src, tgt), lines in tests.items():
        out[src], seconds = timed(lambda: model.transfer(lines, to=tgt, batch_size=batch_size, tokenized=True), device)
        total, n = total + seconds, n + len(lines)
    return out, n / total, n


def engines(model_dir: str, names: list[str], device: str, batch_size: int, torch_out: dict) -> dict:
    """Each other engine's speed on the test set and its agreement with the torch engine's outputs."""
    from textgan.evaluate import bleu

    rows = {}
    for name in names:
        engine, _, quantization = name.partition(":")
        model = StyleTransfer(model_dir, device=device, engine=engine, quantization=quantization or "int8")
        out, rate, _ = engine_speed(model, device, batch_size)
        mine = [x for src in torch_out for x in out[src]]
        ref = [x for src in torch_out for x in torch_out[src]]
        rows[name] = {"sent_per_s": rate, "exact_match_pct": 100 * sum(x == y for x, y in zip(mine, ref)) / len(ref),
                      "bleu_vs_torch": bleu(mine, [ref]).score}
    return rows


def inference(model: StyleTransfer, device: str, batch_size: int, naive_lines: int) -> dict:
    tests = test_sets(model)
    fast_out, fast, n = engine_speed(model, device, batch_size)
    naive_s, naive_n, agree = 0.0, 0, 0
    for (src, tgt), lines in tests.items():
        subset = [model.tok.normalize(t) for t in lines[: naive_lines // 2]]
        out, seconds = timed(lambda: naive_greedy(model, subset, tgt), device)
        naive_s, naive_n = naive_s + seconds, naive_n + len(subset)
        agree += sum(x == y for x, y in zip(out, fast_out[src]))
    naive = naive_n / naive_s
    return {"outputs": fast_out, "test_sentences": n, "batch_size": batch_size, "textgan_sent_per_s": fast,
            "naive_sentences": naive_n, "naive_sent_per_s": naive, "speedup": fast / naive,
            "outputs_identical_to_naive": f"{agree}/{naive_n}"}


def convert_file(model_dir: Path, lines: list[str], workdir: Path, batch_size: int, engine: str = "torch",
                 extra: list[str] = ()) -> dict:
    """`textgan convert` in a fresh process (with the `extra` flags); lines/s from its summary, peak RSS of
    that process (its own VmHWM: see RSS_PROBE)."""
    src, out = workdir / f"in{len(lines)}.txt", workdir / f"out{len(lines)}.txt"
    if not src.exists():
        src.write_text("".join(line + "\n" for line in lines))
    out.unlink(missing_ok=True)
    backend, _, quantization = engine.partition(":")
    code = RSS_PROBE
    cmd = [sys.executable, "-c", code, "convert", str(src), "-o", str(out), "--model", str(model_dir),
           "--quiet", "--batch-size", str(batch_size), "--tokenized", "--engine", backend,
           "--quantization", quantization or "int8", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    summary = [x for x in proc.stderr.splitlines() if x.startswith("wrote")][0]
    probe = json.loads([x for x in proc.stderr.splitlines() if x.startswith("RSS ")][0][4:])
    produced = sum(1 for _ in open(out, "rb"))
    assert produced == len(lines), (produced, len(lines))
    trace = probe["trace"]      # current RSS (MB), once a second
    at = {f"rss_mb_at_{q}pct": trace[min(len(trace) - 1, len(trace) * q // 100)] for q in (25, 50, 75, 100)}
    return {"lines": len(lines), "lines_per_s": float(summary.split(" s, ")[1].split()[0]),
            "wall_s_with_startup": wall, "peak_rss_mb": probe["peak_kb"] / 1024,
            "peak_rss_source": "VmHWM of the convert process (/proc/self/status)", **at, "summary": summary}


# Runs `textgan convert` and samples the process's current RSS once a second (peak RSS alone would also
# count one-off spikes; a leak shows as a trace that keeps rising), then reports the process's own peak.
#
# The peak is VmHWM from /proc/self/status: the high-water mark of this process's address space, which
# exec created fresh, so it counts only what the convert run itself touched. It is not
# getrusage(RUSAGE_SELF).ru_maxrss, which these figures used before and which is wrong here: on Linux,
# ru_maxrss is kept per process (signal struct), survives exec, and at exec the kernel folds in the
# high-water mark of the address space being replaced. When subprocess starts the child with vfork
# (CPython does, where it can) that address space is the bench parent's, so the child reports at least
# the parent's peak (with a plain fork, at least the parent's RSS at the fork). All four runs in
# results/speed/cpu-2t-engines report 811.9 MB that way: the parent's, which had loaded the model and
# run the inference benchmarks. Checked: a child that touches X MB has a VmHWM of X + ~13 MB whatever
# the parent allocated, while its ru_maxrss after a parent peak of 1.5 GB reads 1514 MB for X = 0..600.
RSS_PROBE = """
import json, resource, sys, threading, time
from textgan.cli import main
trace = []
def sample():
    while True:
        trace.append(int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() / 2**20)
        time.sleep(1)
threading.Thread(target=sample, daemon=True).start()
rc = main(sys.argv[1:])
hwm = next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:'))
print('RSS ' + json.dumps({'peak_kb': hwm, 'trace': trace}), file=sys.stderr)
sys.exit(rc)
"""


# Training-step variants, each measured on the same batches: (name, train.fuse_directions, sampler).
TRAIN_VARIANTS = [("before", False, "multinomial"), ("draw", False, "draw"), ("fused", True, "draw")]
VARIANT_LABELS = {"before": "one pass per direction, torch.multinomial (before)",
                  "draw": "inverse-CDF sampling (generator.draw, the default)",
                  "fused": "inverse-CDF + both directions as one batch (train.fuse_directions)"}


def training_throughput(model: StyleTransfer, steps: int) -> dict:
    """Tokens/s of the preset's autoencoder, bootstrap and adversarial steps, with fresh weights, for each
    of TRAIN_VARIANTS on the same batches. The bootstrap pairs and the reward's style classifier are the
    model run's own when it has them (else mined into a temporary dir / untrained: the cost is the same)."""
    from dataclasses import replace

    from accelerate import Accelerator
    from safetensors.torch import load_file

    from textgan import checkpoint
    from textgan.data import encode_split, prepare_data
    from textgan.models import generator
    from textgan.rewards import StyleClassifier
    from textgan.runner import bootstrap_pairs
    from textgan.trainer import Trainer

    cfg, tok, run_dir = model.cfg, model.tok, Path(model.run_dir)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    train_split, _ = prepare_data(cfg)
    train_ids = encode_split(train_split, tok, cfg.data.max_len)
    result: dict = {"steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        has_pairs = (run_dir / "pairs" / "mining.json").exists()
        pairs = bootstrap_pairs(cfg, run_dir if has_pairs else Path(tmp), tok, train_split, acc)
        style = None
        if cfg.train.style_reward:
            style = StyleClassifier(cfg.discriminator, tok.vocab_size, len(cfg.data.domains), checkpoint.max_positions(cfg))
            if (run_dir / "style.safetensors").exists():
                style.load_state_dict(load_file(str(run_dir / "style.safetensors")))
        samplers = {"draw": generator.draw,
                    "multinomial": lambda probs: torch.multinomial(probs, 1).squeeze(1)}
        trainers = {}
        for key, fuse, _ in TRAIN_VARIANTS:
            torch.manual_seed(cfg.train.seed)
            fused_cfg = replace(cfg, train=replace(cfg.train, fuse_directions=fuse))
            trainers[key] = Trainer(fused_cfg, Path(tmp), acc, tok, train_ids, {}, judge=None, pairs=pairs, style=style)
        first = trainers[TRAIN_VARIANTS[0][0]]
        result["generator_parameters"] = sum(p.numel() for g in first.generators for p in g.parameters())
        batches = first.batches()
        pair_batches = first.batches(pairs) if pairs else None
        current = [None]                                    # this step's pair batch, the phases' pair stream
        phases = {key: t.phases(None, iter(lambda: current[0], object())) for key, t in trainers.items()}
        for phase in ("ae", "boot", "adv"):
            if phase == "boot" and not pairs:
                continue
            tokens, seconds = 0, {key: 0.0 for key in trainers}
            for i in range(steps + 2):
                seqs_a, seqs_b = next(batches)
                pair_batch = current[0] = next(pair_batches) if pairs else None
                for key, _, sampler in TRAIN_VARIANTS:      # interleaved: drifts in machine speed hit all alike
                    trainer, generator.draw = trainers[key], samplers[sampler]
                    trainer.state.step = trainer.starts[phase]
                    sync(str(acc.device))
                    start = time.perf_counter()
                    step = phases[key][phase]
                    if phase in ("ae", "boot"):
                        step.step(seqs_a, seqs_b)
                    else:                                         # the G step and one D step, timed alike
                        _, fakes = step.g_step(seqs_a, seqs_b, pair_batch if cfg.train.lambda_pairs else None)
                        step.d_step(fakes)
                    sync(str(acc.device))
                    if i >= 2:                                            # two warm-up steps
                        seconds[key] += time.perf_counter() - start
                if i >= 2:
                    tokens += sum(len(s) + 1 for s in seqs_a + seqs_b)
            for key in trainers:
                result[f"{phase}_tokens_per_s_{key}"] = tokens / seconds[key]
                result[f"{phase}_s_per_step_{key}"] = seconds[key] / steps
        generator.draw = samplers["draw"]
    # forward + backward of the autoencoder step ~ 6 FLOPs per parameter per target token
    result["ae_model_gflop_per_s"] = 6 * result["generator_parameters"] * result["ae_tokens_per_s_draw"] / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained run (the CPU-preset model)")
    parser.add_argument("--name", help="results/speed/<name> (default: cpu-<threads>t or the GPU name)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--naive-lines", type=int, default=200, help="test sentences for the slow baseline")
    parser.add_argument("--big-lines", type=int, default=100_000, help="lines of the convert file")
    parser.add_argument("--engines", nargs="*", default=["ctranslate2:float32", "ctranslate2:int8"],
                        help="engines measured beside torch (ENGINE:QUANTIZATION)")
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--no-training", action="store_true", help="skip the training steps")
    parser.add_argument("--training-only", action="store_true",
                        help="only the matmul peak and the training steps (into results/speed/<name>-training)")
    parser.add_argument("--out", default=str(ROOT / "results" / "speed"))
    parser.add_argument("--note", default="", help="a paragraph for the README, after the machine (e.g. what the "
                        "run is for, which of its figures are comparable)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = machine()
    name = args.name or (info.get("gpu", "gpu").replace(" ", "-") if device == "cuda" else f"cpu-{info['torch_threads']}t")
    out_dir = Path(args.out) / (f"{name}-training" if args.training_only else name)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = StyleTransfer(args.model, device=device)
    results = {"command": shlex.join([Path(sys.executable).name, *sys.argv]), "commit": commit(short=True),
               "date": time.strftime("%Y-%m-%d %H:%M"), "machine": info, "model": str(args.model),
               "device": device, "note": args.note}
    results["matmul_peak_gflop_per_s"] = matmul_peak(device)
    print(f"matmul peak: {results['matmul_peak_gflop_per_s']:.1f} GFLOP/s", flush=True)
    if not args.training_only:
        results["inference"] = inference(model, device, args.batch_size, args.naive_lines)
        torch_out = results["inference"].pop("outputs")
        print(json.dumps(results["inference"], indent=1), flush=True)
        results["engines"] = engines(args.model, args.engines, device, args.batch_size, torch_out)
        print(json.dumps(results["engines"], indent=1), flush=True)
        pool = split_lines(model.cfg.data.corpus, "train", model.domains[-1])
        big_lines = (pool * (args.big_lines // len(pool) + 1))[: args.big_lines]
        with tempfile.TemporaryDirectory() as tmp:
            small = convert_file(Path(args.model), pool[:10_000], Path(tmp), args.batch_size)
            big = convert_file(Path(args.model), big_lines, Path(tmp), args.batch_size)
            by_engine = {e: convert_file(Path(args.model), big_lines, Path(tmp), args.batch_size, e) for e in args.engines}
        results["convert"] = {"small": small, "big": big, "engines": by_engine}
        print(json.dumps(results["convert"], indent=1), flush=True)
    if not args.no_training:
        train = training_throughput(model, args.train_steps)
        train["ae_share_of_matmul_peak"] = train["ae_model_gflop_per_s"] / results["matmul_peak_gflop_per_s"]
        results["training"] = train
        print(json.dumps(train, indent=1), flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "README.md").write_text(report(results))
    print(f"written to {out_dir}")


def rss_row(c: dict, engine: str = "torch", base: dict | None = None) -> str:
    trace = " / ".join(f"{c[f'rss_mb_at_{q}pct']:.0f}" for q in (25, 50, 75, 100))
    ratio = f"{c['lines_per_s'] / base['lines_per_s']:.2f}x" if base else "1.00x"
    return f"| {c['lines']} lines, {engine} | {c['lines_per_s']:.1f} | {ratio} | {trace} MB | {c['peak_rss_mb']:.0f} MB |"


def engine_rows(rows: dict, torch_rate: float) -> str:
    return "\n".join(f"| {name} | {r['sent_per_s']:.1f} | {r['sent_per_s'] / torch_rate:.2f}x | "
                     f"{r['exact_match_pct']:.1f} % | {r['bleu_vs_torch']:.1f} |" for name, r in rows.items())


def training_rows(tr: dict) -> str:
    rows = []
    for phase, label in (("ae", "autoencoder"), ("boot", "bootstrap (mined pairs)"), ("adv", "adversarial (G + D)")):
        for key, _, _ in TRAIN_VARIANTS:
            if f"{phase}_tokens_per_s_{key}" in tr:
                ratio = tr[f"{phase}_tokens_per_s_{key}"] / tr[f"{phase}_tokens_per_s_before"]
                rows.append(f"| {label} | {VARIANT_LABELS[key]} | {tr[f'{phase}_tokens_per_s_{key}']:.0f} "
                            f"| {tr[f'{phase}_s_per_step_{key}']:.2f} | {ratio:.2f}x |")
    return "\n".join(rows)


def code(text: str) -> str:
    """`text` as a Markdown code span, fenced by more backticks than any run of them inside it."""
    fence = "`" * (max((len(x) for x in re.findall("`+", text)), default=0) + 1)
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def report(r: dict) -> str:
    tr, m = r.get("training"), r["machine"]
    text = f"""# Speed: {r['model']} on {m.get('gpu') or m['cpu']}

Command: {code(r['command'])} at commit {r['commit']}, {r['date']}.
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} using {m['torch_threads']} threads{', GPU ' + m['gpu'] if 'gpu' in m else ''}.
Matmul peak measured in the same run: {r['matmul_peak_gflop_per_s']:.1f} GFLOP/s.
"""
    if r.get("note"):
        text += f"\n{r['note']}\n"
    if "inference" in r:
        inf, conv = r["inference"], r["convert"]
        text += f"""
| inference, greedy, Yelp test (both directions) | sentences/s | vs torch | exact match with torch | BLEU vs torch |
|---|---|---|---|---|
| textgan, torch engine (batch {inf['batch_size']}, length-sorted, KV cache), {inf['test_sentences']} sentences | {inf['textgan_sent_per_s']:.1f} | 1.00x | | |
{engine_rows(r.get('engines', {}), inf['textgan_sent_per_s'])}
| naive (one at a time, no KV cache), {inf['naive_sentences']} sentences | {inf['naive_sent_per_s']:.1f} | {inf['naive_sent_per_s'] / inf['textgan_sent_per_s']:.2f}x | | |

Outputs identical between naive and the torch engine: {inf['outputs_identical_to_naive']}.

Peak RSS: the convert process's own high-water mark (VmHWM), not ru_maxrss (which carries the bench
parent's peak into the child: see RSS_PROBE in scripts/bench_speed.py).

| `textgan convert` (whole process) | lines/s | vs torch | RSS at 25 / 50 / 75 / 100 % of the run | peak RSS |
|---|---|---|---|---|
{rss_row(conv['small'])}
{rss_row(conv['big'])}
{chr(10).join(rss_row(c, e, conv['big']) for e, c in conv.get('engines', {}).items())}
"""
    if tr is None:
        return text
    text += f"""
Training, fresh weights, the model's preset, {tr['steps']} timed steps per row, the variants interleaved step
by step on the same batches (tokens: source tokens of both domains' batches).

| training step | variant | tokens/s | s/step | vs before |
|---|---|---|---|---|
{training_rows(tr)}

Autoencoder steps (default variant) reach ~{tr['ae_model_gflop_per_s']:.1f} GFLOP/s (6 x {tr['generator_parameters'] / 1e6:.1f}M parameters
x tokens/s), {100 * tr['ae_share_of_matmul_peak']:.0f}% of the measured matmul peak.
"""
    return text


if __name__ == "__main__":
    main()
