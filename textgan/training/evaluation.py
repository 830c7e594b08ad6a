"""The periodic dev evaluation and the choice of the checkpoint the run hands out (train.keep_best,
train.select_by), an object reading the trainer as its context (cfg, acc, tok, generators, judge, style,
dev_texts, dev_pairs, default_words, state, starts, total, run_dir)."""

from __future__ import annotations

import json
import math

import torch
from tqdm.auto import tqdm

from .. import checkpoint, metrics
from ..evaluate import BLEU_TOKENIZE, bleu
from ..tokenizer import EOS
from ..decoding.candidates import decode_texts
from ..decoding.search import Search


def spread(total: int, n: int) -> list[int]:
    """n line indices spread evenly over range(total) (all of them when n >= total)."""
    return list(range(total)) if n >= total else [i * total // n for i in range(n)]


class DevEvaluation:
    """Dev transfers scored every train.eval_every steps, and the checkpoint the run keeps. `ctx`: the
    trainer."""

    def __init__(self, ctx):
        self.ctx = ctx

    def eval_due(self, phase: str) -> bool:
        """After this step: the dev evaluation? Every eval_every steps (ae_eval_every in the autoencoder and
        bootstrap phases), none while D pretrains, and always at the end of the autoencoder phase, of the
        bootstrap phase and of the run."""
        t, step = self.ctx.cfg.train, self.ctx.state.step
        if step in (t.ae_steps, self.ctx.starts["d"], self.ctx.total):
            return True
        every = {"ae": t.ae_eval_every or t.eval_every, "boot": t.ae_eval_every or t.eval_every, "d": 0,
                 "adv": t.eval_every}[phase]
        return every > 0 and step % every == 0

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Dev transfers in both directions: style accuracy by the run's n-gram judge (dev/acc_*) and by the
        reward's style classifier when the run has one (dev/style_acc_*), self-BLEU, samples."""
        for g in self.ctx.generators:
            g.eval()
        scheme = self.ctx.cfg.data.normalize
        results = {}
        n = self.ctx.cfg.train.eval_lines
        for src, tgt, g in [(self.ctx.a, self.ctx.b, self.ctx.g_ab), (self.ctx.b, self.ctx.a, self.ctx.g_ba)]:
            paired = self.ctx.dev_pairs.get(f"{src}2{tgt}")       # dev sources with references (translation, summaries)
            # dev pairs: lines spread over the whole set (corpora sorted by length, Tatoeba's are, would
            # make the first n the shortest and easiest); unpaired dev text: the first n
            rows = spread(len(paired.inputs), n) if paired else None
            inputs = [paired.inputs[i] for i in rows] if paired else self.ctx.dev_texts[src][:n]
            words = [self.ctx.default_words[tgt]] * len(inputs) if self.ctx.controls_length else None
            stats: dict = {}
            outputs = decode_texts(g, self.ctx.tok, inputs, tgt, Search(max_len=self.ctx.cfg.train.max_gen_len), words=words,
                                   stats=stats)
            tokenize = self.ctx.cfg.eval.bleu_tokenize.get(tgt, BLEU_TOKENIZE.get(scheme, "13a"))
            if self.ctx.judge is not None:
                results[f"dev/acc_{src}2{tgt}"] = self.ctx.judge.accuracy(outputs, tgt)
            if self.ctx.style is not None:
                results[f"dev/style_acc_{src}2{tgt}"] = self.style_accuracy(outputs, tgt)
            if paired:
                references = [[r[i] for i in rows] for r in paired.references]
                results[f"dev/bleu_{src}2{tgt}"] = bleu(outputs, references, tokenize).score
                if self.ctx.cfg.eval.rouge:
                    results[f"dev/rougeL_{src}2{tgt}"] = metrics.rouge(outputs, references[0])["rougeL"]
            else:
                results[f"dev/self_bleu_{src}2{tgt}"] = bleu(outputs, [inputs], tokenize).score
            if words is not None:          # output length, and the share the cap cut to the request
                results[f"dev/words_{src}2{tgt}"] = metrics.mean_words(outputs)
                results[f"dev/cut_{src}2{tgt}"] = 100 * stats.get("cut", 0) / max(1, len(inputs))
            for x, y in list(zip(inputs, outputs))[:2]:
                tqdm.write(f"  [{src}->{tgt}] {x}\n         -> {y}")
        tqdm.write("  " + "  ".join(f"{k.split('/')[1]}={v:.1f}" for k, v in results.items()))
        for g in self.ctx.generators:
            g.train()
        return results

    def style_accuracy(self, texts: list[str], domain: str) -> float:
        """Share (%) of normalized `texts` that the reward's style classifier puts in `domain`."""
        ids = [x or [EOS] for x in self.ctx.tok.encode(texts, self.ctx.cfg.data.max_len)]
        probs = self.ctx.style.probabilities(ids, self.ctx.acc.device)                  # (N, k)
        return 100.0 * float((probs.argmax(-1) == self.ctx.cfg.data.domains.index(domain)).float().mean())

    def keeps_best(self) -> bool:
        return self.ctx.cfg.train.keep_best

    def dev_score(self, results: dict) -> tuple[float, str, str] | None:
        """The model-selection score of a dev evaluation, its formula and what judged style: with dev
        references (summaries, translations) the mean dev ROUGE-L (eval.rouge) or BLEU against them;
        without, sqrt(mean style ACC * mean self-BLEU), the ACC of train.select_by's classifier (`style`:
        the reward's style classifier, which the evaluator never uses; `judge`: the run's n-gram judge, the
        evaluator's ACC judge's twin). None when the evaluation lacks its parts."""
        def mean(prefix):
            values = [v for k, v in results.items() if k.startswith(prefix)]
            return sum(values) / len(values) if values else None

        reference = mean("dev/rougeL_") if self.ctx.cfg.eval.rouge else mean("dev/bleu_")
        if reference is not None:
            metric = "dev ROUGE-L" if self.ctx.cfg.eval.rouge else "dev BLEU"
            return reference, metric, f"{metric} against the dev references (no style judge)"
        if self.ctx.cfg.train.select_by == "style":
            acc, formula = mean("dev/style_acc_"), "sqrt(style-classifier ACC * self-BLEU)"
            selector = "the reward's style classifier (style.safetensors), which the evaluator does not use"
        else:
            acc, formula = mean("dev/acc_"), "sqrt(ACC * self-BLEU)"
            selector = "the run's n-gram judge (judge.pt), the test judge's twin: test ACC is optimistic"
        self_bleu = mean("dev/self_bleu_")
        if acc is None or self_bleu is None:
            return None
        return math.sqrt(acc * self_bleu), formula, selector

    def keep_if_best(self, results: dict) -> None:
        """Save the inference files when the dev score (`dev_score`) beats best.json's."""
        scored = self.dev_score(results)
        if scored is None:
            return
        score, formula, selector = scored
        best_file = self.ctx.run_dir / "best.json"
        best = json.loads(best_file.read_text())["score"] if best_file.exists() else -1.0
        if score > best:
            checkpoint.save_models(self.ctx.run_dir, self.ctx.cfg, self.ctx.generators, self.ctx.critic)
            best_file.write_text(json.dumps({"step": self.ctx.state.step, "score": score, "formula": formula,
                                             "selector": selector, **results}, indent=2) + "\n")
            tqdm.write(f"  best dev score so far ({score:.1f} = {formula}): model saved")
