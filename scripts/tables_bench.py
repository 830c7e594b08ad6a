"""The speed, serving and sample tables of docs/, read from the committed results files.

tables.py generates and checks these blocks as it does the quality tables; this module only reads the files:

    results/speed/<run>/results.json       scripts/bench_speed.py, bench_precision.py, bench_convert.py
    results/serve/<run>/results.json       scripts/bench_serve.py
    results/sentiment/<run>/metrics.json   scripts/bench_quality.py (ACC / ref-BLEU of the engine rows)
    results/sentiment/<run>/samples.md     scripts/bench_quality.py (the seeded sample tables, verbatim)

Each table is a function of no arguments returning a Grid (the cells; tables.grid lays them out) or, for a
file copied verbatim, the text itself. Rates are whole numbers from 100 up and have one decimal below
(rate); a ratio has two decimals and an "x" (ratio); megabytes are whole (mb).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"


@dataclass
class Grid:
    header: list[str]
    rows: list[list[str]]


def results(folder: str) -> dict:
    """results/<folder>/results.json, as a benchmark script wrote it."""
    return json.loads((RESULTS / folder / "results.json").read_text())


def rate(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def mb(value: float) -> str:
    return f"{value:.0f}"


def against(values: list[float], unit: str) -> list[str]:
    """The first value with its unit, each other one with its ratio to the first."""
    return [f"{rate(values[0])} {unit}"] + [f"{rate(v)} ({ratio(v / values[0])})" for v in values[1:]]


STEPS = {"ae": "autoencoder", "boot": "bootstrap (mined pairs)", "adv": "adversarial (G + D)"}


# --- docs/speed.md ---------------------------------------------------------------------------------------

def speed_default() -> Grid:
    """bench_speed.py on default-cpu: decoding against the naive loop, convert, training steps."""
    r = results("speed/cpu-2t")
    inf, small, big, train = r["inference"], r["convert"]["small"], r["convert"]["big"], r["training"]
    return Grid(["", "textgan", "naive baseline, same run", ""], [
        [f"greedy transfer, Yelp test ({inf['test_sentences']} sentences)",
         (f"**{rate(inf['textgan_sent_per_s'])} sentences/s** (batch {inf['batch_size']}, length-sorted, KV cache, "
          "finished rows leave the batch)"),
         (f"{rate(inf['naive_sent_per_s'])} (one sentence at a time, no KV cache; the first "
          f"{inf['naive_sentences']} sentences)"),
         f"{ratio(inf['speedup'])}, outputs identical ({inf['outputs_identical_to_naive']})"],
        [f"`textgan convert`, {small['lines']:,} / {big['lines']:,} lines (convert's own lines/s)",
         (f"{rate(small['lines_per_s'])} / {rate(big['lines_per_s'])} lines/s; RSS {mb(small['rss_mb_at_100pct'])} / "
          f"{mb(big['rss_mb_at_100pct'])} MB at the end (peak: see below)"), "", ""],
        ["training, autoencoder step",
         (f"{rate(train['ae_tokens_per_s'])} tokens/s, {100 * train['ae_share_of_matmul_peak']:.0f} % of the "
          f"measured fp32 matmul peak ({r['matmul_peak_gflop_per_s']:.0f} GFLOP/s)"), "", ""],
        ["training, adversarial step (G + D, reinforce; the preset before the rewards and the pair batch)",
         f"{rate(train['adv_tokens_per_s'])} tokens/s ({train['adv_s_per_step']:.2f} s/step)", "", ""],
    ])


def speed_precision() -> Grid:
    """bench_precision.py: fp32 and bf16 autocast, step by step on the same batches."""
    r = results("speed/cpu-1t-precision-cpu-scratch")
    t = r["training"]
    rows = [[label, rate(t[f"{k}_tokens_per_s_fp32"]), rate(t[f"{k}_tokens_per_s_bf16"]),
             ratio(t[f"{k}_tokens_per_s_bf16"] / t[f"{k}_tokens_per_s_fp32"])] for k, label in STEPS.items()]
    return Grid([f"training step ({r['preset']}, {t['generator_parameters'] / 1e6:.1f}M parameters)",
                 "fp32 tokens/s", "bf16 tokens/s", "bf16 vs fp32"], rows)


def quality(run: str) -> str:
    """ACC / ref-BLEU of a bench_quality.py row (results/sentiment/<run>/metrics.json)."""
    mean = json.loads((RESULTS / "sentiment" / run / "metrics.json").read_text())["systems"][run]["mean"]
    return f"{mean['acc']:.1f} / {mean['ref_bleu']:.1f}"


def speed_engines() -> Grid:
    """bench_speed.py on filter-cpu with torch and both CTranslate2 quantizations; peaks from cpu-2t-memory."""
    r, memory = results("speed/cpu-2t-engines"), results("speed/cpu-2t-memory")["convert"]
    engines = ["ctranslate2:float32", "ctranslate2:int8"]
    convert = [r["convert"]["big"]] + [r["convert"]["engines"][e] for e in engines]
    peaks = [memory["big"]] + [memory["engines"][e] for e in engines]
    decode = [r["inference"]["textgan_sent_per_s"]] + [r["engines"][e]["sent_per_s"] for e in engines]
    f32, int8 = (r["engines"][e] for e in engines)
    same = "= torch (same outputs)" if f32["exact_match_pct"] == 100 else "not scored"
    return Grid(["", "torch", "ctranslate2 float32", "ctranslate2 int8"], [
        [f"`textgan convert`, {convert[0]['lines']:,} Yelp lines (convert's own lines/s)"]
        + against([c["lines_per_s"] for c in convert], "lines/s"),
        [f"greedy transfer, Yelp test ({r['inference']['test_sentences']} sentences)"]
        + against(decode, "sentences/s"),
        ["outputs equal to torch's (test set)", "", f"{f32['exact_match_pct']:g} %",
         f"{int8['exact_match_pct']:g} % (BLEU {int8['bleu_vs_torch']:.1f} against torch's)"],
        ["convert's RSS at the end (this run)"] + [f"{mb(c['rss_mb_at_100pct'])} MB" for c in convert],
        [("convert's peak RSS, the process's own (VmHWM; `results/speed/cpu-2t-memory`, same architecture, "
          "re-measured)")] + [f"{mb(p['peak_rss_mb'])} MB" for p in peaks],
        [("Yelp test, ACC / ref-BLEU (`bench_quality.py --run runs/sentiment/filter-cpu --engine ...`: "
          "`results/sentiment/filter-cpu-engine-torch`, `results/sentiment/filter-cpu-engine-ct2-int8`)"),
         quality("filter-cpu-engine-torch"), same, quality("filter-cpu-engine-ct2-int8")],
    ])


# (row label, results/speed folder, bench_convert.py label of the torch system, of the int8 one or why none)
CONVERT = [
    ("small encoder-decoder, greedy, **{lines:,} lines**", "cpu-2t-convert-20k",
     "small encoder-decoder, torch", "small encoder-decoder, CT2 int8"),
    ("SmolLM2-135M (smollm2-real-cpu), greedy, no guidance (`--candidates 1 --guidance 0`), **{lines:,} lines**",
     "cpu-2t-convert-20k", "pretrained, torch, no guidance", "pretrained, CT2 int8, no guidance"),
    ("... guidance 0.15, one rewrite (`--candidates 1`), {lines:,} lines", "cpu-2t-convert-pretrained",
     "pretrained, torch, guidance 0.15, one rewrite", "refused: guidance needs torch"),
    (("... the ladder without the fluency term (five guided greedy rewrites, reranked; the cpu preset's default "
      "before the term), {lines:,} lines"), "cpu-2t-convert-ladder", "pretrained, torch, the preset's ladder",
     "refused"),
]


def convert_run(folder: str, label: str) -> dict | None:
    """The bench_convert.py run of that system label in results/speed/<folder>, or None."""
    return next((r for r in results(f"speed/{folder}")["runs"] if r["label"] == label), None)


def whole(run: dict) -> float:
    """Lines/s of the whole command, loading included."""
    return run["lines"] / run["wall_s_with_startup"]


def speed_convert() -> Grid:
    """bench_convert.py: each system's `textgan convert` in a fresh process, whole command and its own summary."""
    rows = []
    for label, folder, torch_label, int8_label in CONVERT:
        torch, int8 = convert_run(folder, torch_label), convert_run(folder, int8_label)
        cells = [f"{rate(whole(r))} ({rate(r['lines_per_s'])}); {r['wall_s_with_startup']:.0f} s"
                 for r in (torch, int8) if r]
        if int8:
            cells[1] += f", {ratio(whole(int8) / whole(torch))}"
        rows.append([label.format(lines=torch["lines"])] + cells + ([] if int8 else [int8_label]))
    small = [convert_run("cpu-2t-convert-20k", label) for label in CONVERT[0][2:]]
    big = [convert_run("cpu-2t-convert-20k", label) for label in CONVERT[1][2:]]
    rows.append([f"peak RSS of the process (VmHWM), {small[0]['lines']:,} lines: small / SmolLM2"]
                + [f"{mb(s['peak_rss_mb'])} / {mb(b['peak_rss_mb'])} MB" for s, b in zip(small, big)])
    return Grid(["`textgan convert`, lines/s (whole command incl. loading; convert's own summary)", "torch",
                 "ctranslate2 int8"], rows)


def speed_training() -> Grid:
    """bench_speed.py --training-only: the sampling variants interleaved step by step on the same batches."""
    t = results("speed/cpu-2t-training")["training"]
    rows = []
    for k, label in STEPS.items():
        before = t[f"{k}_tokens_per_s_before"]
        rows.append([label, f"{rate(before)} tokens/s ({t[f'{k}_s_per_step_before']:.2f} s)"]
                    + [f"{rate(t[f'{k}_tokens_per_s_{v}'])} ({t[f'{k}_s_per_step_{v}']:.2f} s), "
                       f"{ratio(t[f'{k}_tokens_per_s_{v}'] / before)}" for v in ("draw", "fused")])
    return Grid(["step", "one pass per direction, `torch.multinomial` (before)", "inverse-CDF sampling (default)",
                 "+ both directions as one batch"], rows)


# --- docs/serving.md -------------------------------------------------------------------------------------

SERVE = [("cpu-2c", ""), ("cpu-2c-repeat", "the same command again"), ("cpu-2c-1worker", "`--workers 1`"),
         ("cpu-2c-refined-ct2", "the refined SmolLM2 run, greedy, `--engine ctranslate2`, 600 requests, 40 s")]


def serve_load() -> Grid:
    """bench_serve.py: one row per concurrency level of each run in results/serve/."""
    rows = []
    for run, note in SERVE:
        r = results(f"serve/{run}")
        workers = f"{r['workers']} worker" + ("s" if r["workers"] != 1 else "")
        for i, x in enumerate(r["levels"]):
            rows.append([f"{run} ({workers}{', ' + note if note else ''})" if i == 0 else "", str(x["clients"]),
                         f"{x['texts_per_s']:.1f}", ratio(x["ratio_to_first"]),
                         f"{x['p50_ms']:.0f} / {x['p99_ms']:.0f}", str(x["errors"])])
    return Grid(["run", "clients", "texts/s", "vs 1 client", "p50 / p99 ms", "errors"], rows)


# --- docs/sentiment.md -----------------------------------------------------------------------------------

def sentiment_samples() -> str:
    """The cpu preset's seeded samples, both directions, as bench_quality.py wrote them."""
    return (RESULTS / "sentiment" / "smollm2-real-fluent-cpu" / "samples.md").read_text()


TABLES = {"speed-default": speed_default, "speed-precision": speed_precision, "speed-engines": speed_engines,
          "speed-convert": speed_convert, "speed-training": speed_training, "serve-load": serve_load,
          "sentiment-samples": sentiment_samples}
