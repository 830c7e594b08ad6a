"""Quality against diversity when sampling at several temperatures ("Language GANs falling short",
Caccia et al. 2020): a GAN that wins at one temperature may lose the whole curve.

    python scripts/quality_diversity.py runs/sentiment/NAME [--temps 0.3 0.5 0.7 1.0 1.5]
                                        [--out results/sentiment/quality_diversity]

For each temperature the test set is transferred by sampling (and once greedily), then scored by the
task's evaluator: quality = ref-BLEU (or style accuracy when the task has no references), diversity =
self-BLEU among the outputs (lower is more diverse). Writes points.json and quality_diversity.png;
several runs on one plot when several RUN_DIRs are given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from textgan.config import config_from_dict
from textgan.evaluate import Evaluator, evaluator_dir, task_directions
from textgan.transfer import StyleTransfer


def sweep(run_dir: Path, temps: list[float], evaluator: Evaluator, directions, seed: int) -> list[dict]:
    model = StyleTransfer(run_dir)
    points = []
    for temp in [None, *temps]:
        torch.manual_seed(seed)
        outputs = {d.name: model.transfer(d.inputs, to=d.tgt, sample=temp is not None, temperature=temp or 1.0,
                                          tokenized=True) for d in directions}
        mean = evaluator.score_system(outputs, directions)["mean"]
        points.append({"temperature": temp, "decoding": "greedy" if temp is None else "sample", **mean})
        print(f"{run_dir.name} {'greedy' if temp is None else f'T={temp}'}: " +
              " ".join(f"{k}={mean[k]:.1f}" for k in ("acc", "ref_bleu", "self_bleu", "self_bleu_outputs") if k in mean))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories of one task")
    parser.add_argument("--temps", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0, 1.5])
    parser.add_argument("--out", help="directory for points.json and the PNG "
                                      "(default: results/<task>/quality_diversity)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if any(t <= 0 for t in args.temps):
        parser.error("temperatures must be > 0 (greedy decoding is always included)")

    cfg = config_from_dict(yaml.safe_load((Path(args.runs[0]) / "config.yaml").read_text()))
    evaluator = Evaluator.load_or_train(cfg, evaluator_dir(cfg.task, args.runs_dir))
    directions = task_directions(cfg)
    quality = "ref_bleu" if all(d.references for d in directions) else "acc"
    curves = {Path(r).name: sweep(Path(r), args.temps, evaluator, directions, args.seed) for r in args.runs}

    out = Path(args.out or Path("results") / cfg.task / "quality_diversity")
    out.mkdir(parents=True, exist_ok=True)
    (out / "points.json").write_text(json.dumps({"task": cfg.task, "quality": quality, "curves": curves}, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, points in curves.items():
        sampled = [p for p in points if p["decoding"] == "sample"]
        line, = ax.plot([p["self_bleu_outputs"] for p in sampled], [p[quality] for p in sampled], marker="o", label=name)
        for p in sampled:
            ax.annotate(f"T={p['temperature']:g}", (p["self_bleu_outputs"], p[quality]), fontsize=7,
                        textcoords="offset points", xytext=(4, 3))
        greedy = next(p for p in points if p["decoding"] == "greedy")
        ax.scatter([greedy["self_bleu_outputs"]], [greedy[quality]], marker="*", s=120, color=line.get_color(),
                   label=f"{name} greedy")
    ax.set_xlabel("self-BLEU among outputs (lower = more diverse)")
    ax.set_ylabel({"ref_bleu": "ref-BLEU (quality)", "acc": "style accuracy (quality)"}[quality])
    ax.set_title(f"{cfg.task}: quality vs diversity over sampling temperature")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_diversity.png", dpi=120)
    print(f"written {out / 'points.json'} and {out / 'quality_diversity.png'}")


if __name__ == "__main__":
    main()
