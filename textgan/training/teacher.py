"""Pairs a trained run writes: the data of self-training rounds and of distillation (train.bootstrap=teacher,
the config's teacher section).

A run's best decode (a guidance ladder reranked by its reward, n-best + noisy channel) writes better than its
greedy decode, but slowly. Fed back as training pairs, its rewrites move that quality into the weights, so
greedy decoding and a small student carry it (self-training / transductive rounds: IMaT, Jin et al. 2019;
TSST, Xiao et al. 2021; sequence-level knowledge distillation: Kim & Rush 2016):

    y~ = teacher(x)            the teacher run's decode (teacher.candidates / guidance / engine) of the
                               training sentences x[offset : offset + lines] of each domain, into each other domain
    score(x, y~) = r_content   = exp(1/|x| sum_t log p_back(x_t | y~, x_<t)), the teacher's back generator
                                 rebuilding x from y~ (the DualRL content reward, in (0, 1])

A rewrite that is empty, the input itself, or that repeats a word or a trigram the input does not repeat is
no pair. Which of the rest training learns from is the pair filters' choice (mining.training_pairs:
train.pairs_min_style on the run's style classifier's p(target | y~), train.pairs_min_score on r_content),
the same filters the miners' pairs pass. The rewrites are written a chunk at a time, so a run killed while
its teacher decodes goes on from the last chunk.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from ..config import TeacherConfig
from ..decoding.scores import content_logprob
from ..mining import Pairs
from ..transfer import StyleTransfer



def repeats(text: str) -> set[tuple[str, ...]]:
    """The doubled words ("great great") and the trigrams seen twice in a (normalized) text."""
    words = text.split()
    found = {(a,) for a, b in zip(words, words[1:]) if a == b}
    counts = Counter(tuple(words[i:i + 3]) for i in range(len(words) - 2))
    return found | {gram for gram, n in counts.items() if n > 1}


def verdict(source: str, rewrite: str) -> str | None:
    """Why a teacher's rewrite is no pair ("empty", "copy", "repeats"), or None for a usable one."""
    if not rewrite.strip():
        return "empty"
    if rewrite.split() == source.split():
        return "copy"
    if repeats(rewrite) - repeats(source):
        return "repeats"
    return None


class TeacherMiner:
    """A trained run as a miner (the `mine` interface of textgan/mining/): its rewrites of the training text
    as Pairs, scored by r_content (module docstring). `work_dir` keeps the rewrites decoded so far."""

    def __init__(self, cfg: TeacherConfig, work_dir: Path, device=None, log=print):
        self.cfg, self.work_dir, self.device, self.log = cfg, Path(work_dir), device, log
        self.report: dict[str, dict] = {}

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        c = self.cfg
        device = str(self.device) if self.device is not None else None
        model = StyleTransfer(c.run, device, engine=c.engine)
        scorer = model if c.engine == "torch" else StyleTransfer(c.run, device)
        plan = model.plan(candidates=c.candidates or None, guidance=None if c.guidance < 0 else c.guidance)
        missing = sorted(set(model.domains) - set(texts_by_domain))
        if missing:
            raise ValueError(f"the teacher {c.run} writes domains this run has no text of: {', '.join(missing)}")
        self.log(f"teacher {c.run} ({c.engine}) decoding by {plan.describe()}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        pairs = {}
        for src in model.domains:
            sources = texts_by_domain[src][c.offset:c.offset + c.lines]
            if not sources:
                raise ValueError(f"teacher.offset {c.offset} is past the {len(texts_by_domain[src])} training "
                                 f"sentences of {src}")
            for tgt in [d for d in model.domains if d != src]:
                pairs[(src, tgt)] = self.direction(model, scorer, plan, sources, src, tgt, progress_factory)
        return pairs

    def direction(self, model, scorer, plan, sources: list[str], src: str, tgt: str, progress_factory) -> Pairs:
        """One direction's rewrites (decoded, or read back from the partial file) turned into scored Pairs."""
        started = time.time()
        rewrites = self.rewrites(model, plan, sources, tgt, f"{src}2{tgt}", progress_factory)
        seconds = time.time() - started
        reasons = [verdict(x, y) for x, y in zip(sources, rewrites)]
        kept = [i for i, why in enumerate(reasons) if why is None]
        xs, ys = [sources[i] for i in kept], [rewrites[i] for i in kept]
        tok = scorer.tok
        content = content_logprob(scorer.generator_for(src), tok.encode(xs, scorer.cfg.data.max_len),
                                  tok.encode(ys, scorer.cfg.train.max_gen_len), tok.domain_ids[src]).exp().tolist()
        dropped = Counter(why for why in reasons if why)
        self.report[f"{src}2{tgt}"] = {"rewritten": len(sources), "seconds": round(seconds, 1),
                                       "no_pair": dict(dropped), "pairs": len(xs)}
        self.log(f"  teacher {src}->{tgt}: {len(sources)} lines in {seconds:.0f} s; no pair: "
                 + (", ".join(f"{n} {why}" for why, n in dropped.items()) or "none"))
        return Pairs(src, tgt, xs, ys, content)

    def rewrites(self, model, plan, sources: list[str], tgt: str, name: str, progress_factory) -> list[str]:
        """The teacher's rewrites (normalized) of `sources`, teacher.batch_size at a time, appended to
        <work_dir>/teacher.<name>.jsonl (every rewrite, in order, kept); what a killed run had written is read
        back, not decoded again."""
        partial = self.work_dir / f"teacher.{name}.jsonl"
        done = []
        if partial.exists():
            for line in partial.read_text(encoding="utf-8").splitlines():
                try:
                    done.append(json.loads(line))
                except json.JSONDecodeError:
                    break                    # a line cut by the kill: decoded again
            done = done[:len(sources)]
            partial.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in done), encoding="utf-8")
        bar = progress_factory(len(sources), f"teacher {name}") if progress_factory else None
        if bar:
            bar.update(len(done))
        step = self.cfg.batch_size
        with open(partial, "a", encoding="utf-8") as f:
            for start in range(len(done), len(sources), step):
                out = model.transfer(sources[start:start + step], tgt, plan=plan, tokenized=True, normalized=True,
                                     batch_size=step)
                f.write("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in out))
                f.flush()
                done.extend(out)
                if bar:
                    bar.update(len(out))
        if bar:
            bar.close()
        return done
