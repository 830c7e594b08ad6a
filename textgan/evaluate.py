"""Scoring on plain text: independent style judges, sacreBLEU, and the Evaluator that applies one
protocol (textgan.metrics, a fluency LM) to any system's outputs on a task's test set.

The judges (models/judge.py) are trained apart from the GAN's discriminators, on the task's training
text only, so a generator cannot score well by exploiting the very network it was trained against; two
of different kinds (n-gram and CNN) are reported side by side, so a generator that games one classifier
(e.g. one it was rewarded by) shows as a gap between their accuracies.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import sacrebleu

from .models.judge import NeuralJudge, NgramJudge
from .tokenizer import normalize

BLEU_TOKENIZE = {"ptb_lower": "none", "gigaword": "none", "zh": "zh", "none": "13a"}


def bleu(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a") -> sacrebleu.metrics.bleu.BLEUScore:
    """Corpus BLEU of hypotheses against one or more reference lists (each aligned with hypotheses)."""
    # force: text scored with tok:none is tokenized on purpose; sacreBLEU would warn about " ." endings
    return sacrebleu.corpus_bleu(hypotheses, references, tokenize=tokenize, force=tokenize == "none")


def bleu_with_signature(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a"):
    """(corpus BLEU score, sacreBLEU signature string naming the references count and tokenizer)."""
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize, force=tokenize == "none")
    return metric.corpus_score(hypotheses, references), str(metric.get_signature())


# ---------------------------------------------------------------- one protocol for every system
EVALUATOR_INFO = "evaluator.json"
NEURAL_JUDGE_FILE = "neural_judge.pt"
NEURAL_JUDGE_SETTINGS = ("neural_judge_epochs", "neural_judge_dim", "neural_judge_filters", "neural_judge_vocab")
# What shapes an evaluator's models; recorded in evaluator.json and checked against the config on load
# (the neural judge's once the evaluator has one: evaluators from before it get it added on load).
EVALUATOR_SETTINGS = ("lm_steps", "lm_batch_size", "lm_d_model", "lm_layers", "lm_vocab_size", "judge_epochs",
                      *NEURAL_JUDGE_SETTINGS)


def bleu_tokenizer(cfg, target: str) -> str:
    """sacreBLEU tokenizer for text of a target domain: `eval.bleu_tokenize`, else the normalization's."""
    return cfg.eval.bleu_tokenize.get(target, BLEU_TOKENIZE.get(cfg.data.normalize, "13a"))


def mean_over_directions(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """{direction: metrics} -> each metric averaged over the directions that have it."""
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    return {k: sum(r[k] for r in rows.values() if k in r) / sum(k in r for r in rows.values()) for k in keys}


def evaluator_settings(cfg) -> dict:
    """The eval.* settings and training corpora an evaluator for `cfg` must have been trained with."""
    return {**{k: getattr(cfg.eval, k) for k in EVALUATOR_SETTINGS},
            "train_corpora": [cfg.data.corpus, *cfg.data.extra_train]}


def evaluator_dir(task: str, runs_dir=None) -> Path:
    """Where `textgan judge train` keeps a task's evaluator: <runs>/eval/<task>/."""
    from .checkpoint import runs_root

    return runs_root(runs_dir) / "eval" / task


@dataclass
class Direction:
    """One transfer direction of a task's test set, in the task's normalized form."""

    src: str
    tgt: str
    inputs: list[str]
    references: list[list[str]]      # one list per reference set, each aligned with inputs; may be empty

    @property
    def name(self) -> str:
        return f"{self.src}2{self.tgt}"


def read_multiref(path: Path) -> tuple[list[str], list[list[str | None]]]:
    """TSV "source<TAB>ref1[<TAB>ref2 ...]" -> (sources, reference sets); a source with fewer references
    than the most has None in the other sets (sacreBLEU skips those)."""
    from .corpora import read_lines

    rows = [line.split("\t") for line in read_lines(path) if line.strip()]
    width = max(len(r) for r in rows) - 1
    return [r[0] for r in rows], [[r[k] if k < len(r) else None for r in rows] for k in range(1, width + 1)]


def test_card(cfg, test_set: str = "test"):
    """The card holding a test set: data.test_corpus for the `test` split when set, else data.corpus."""
    from .corpora import load_card

    return load_card(cfg.data.test_corpus if test_set == "test" and cfg.data.test_corpus else cfg.data.corpus)


DEV_SLICES = ("dev-a", "dev-b")


def dev_slice(inputs: list[str], refs: list[list], which: str) -> tuple[list[str], list[list]]:
    """The lines of a dev set in slice `which`: dev-a (decode sweeps) or dev-b (held out of every sweep, for
    the final choice between the sweep's pick and the run's current decode). A line's slice is the parity
    of the CRC-32 of its text, so a sentence that occurs twice (Tatoeba repeats sentences with a second
    translation) falls in one slice only, and the slices do not depend on the file's order."""
    if which not in DEV_SLICES:
        raise ValueError(f"a dev slice is one of {', '.join(DEV_SLICES)}; got {which!r}")
    keep = [i for i, x in enumerate(inputs) if zlib.crc32(x.encode("utf-8")) % 2 == DEV_SLICES.index(which)]
    return [inputs[i] for i in keep], [[r[i] for i in keep] for r in refs]


def task_directions(cfg, data_dir=None, test_set: str = "test") -> list[Direction]:
    """Every src -> tgt direction of a test set (the card's `test` split, or one of its `test_sets`, or a
    slice of its dev split, `dev-a` / `dev-b`: dev_slice), with its human references, normalized as the
    task normalizes."""
    from .corpora import corpus_dir, read_lines, references

    if test_set in DEV_SLICES:
        return [Direction(d.src, d.tgt, *dev_slice(d.inputs, d.references, test_set))
                for d in task_directions(cfg, data_dir, "dev")]
    card = test_card(cfg, test_set)
    scheme = cfg.data.normalize
    if card.normalized == scheme:      # already in the task's form: references stay exactly as published
        norm = lambda texts: list(texts)  # noqa: E731
    else:
        norm = lambda texts: [normalize(t, scheme) if t is not None else None for t in texts]  # noqa: E731
    out = []
    for src in cfg.data.domains:
        if test_set in card.test_sets:
            spec = card.test_sets[test_set].get(src)
            if spec is None:
                continue
            root = corpus_dir(card, (), data_dir, files=[spec["source"], *spec["references"]])
            inputs = read_lines(root / spec["source"])
            refs = [read_lines(root / f) for f in spec["references"]]
        elif test_set in card.files:
            if src not in card.files[test_set]:      # e.g. summarization: articles have headlines, not vice versa
                continue
            root = corpus_dir(card, (test_set,), data_dir)
            if src in card.multiref.get(test_set, {}):
                inputs, refs = read_multiref(root / card.multiref[test_set][src])
            else:
                inputs = read_lines(root / card.files[test_set][src])
                refs = references(card, test_set, src, data_dir)
        else:
            raise ValueError(f"corpus '{card.name}' has no test set {test_set!r}; it has: "
                             f"{', '.join([s for s in card.files if s != 'train'] + list(card.test_sets))}")
        for tgt in cfg.data.domains:
            if tgt != src:
                out.append(Direction(src, tgt, norm(inputs), [norm(r) for r in refs]))
    return out


def published_baselines(cfg, data_dir=None, test_set: str = "test") -> dict[str, dict[str, list[str]]]:
    """Baseline outputs a test card ships (`baselines`, e.g. Gigaword's lead-8): {name: {direction: lines}}."""
    from .corpora import corpus_dir, read_lines

    card = test_card(cfg, test_set)
    systems: dict[str, dict[str, list[str]]] = {}
    for src, named in card.baselines.get(test_set, {}).items():
        for name, rel in named.items():
            lines = read_lines(corpus_dir(card, (), data_dir, files=[rel]) / rel)
            for tgt in cfg.data.domains:
                if tgt != src:
                    systems.setdefault(f"{name} (published outputs)", {})[f"{src}2{tgt}"] = lines
    return systems


def first_words(texts: list[str], n: int) -> list[str]:
    """The first-N-words baseline: each input cut to its first n words."""
    return [" ".join(t.split()[:n]) for t in texts]


class Evaluator:
    """Scores a system's outputs on a task's test set with models trained apart from any GAN:

    - style accuracy by two judges trained on the training text: the NgramJudge (hashed 1-2-grams of
      words / CJK characters, logistic regression) gives ACC, the NeuralJudge (word CNN) ACC-nn;
    - fluency: perplexity per word under a small GPT-2 per domain (`lm.FluencyLM`), trained on that
      domain's training text;
    - sacreBLEU against the inputs (self-BLEU) and the human references (ref-BLEU), signature kept;
    - G = sqrt(ACC * ref-BLEU) with the n-gram judge's ACC, length ratio, distinct-1/2, self-BLEU among
      outputs, duplicates, and ROUGE-1/2/L when the task asks for it (`eval.rouge`).
    """

    def __init__(self, cfg, path: Path, judge: NgramJudge, neural_judge: NeuralJudge, lms: dict, info: dict):
        self.cfg, self.path, self.judge, self.neural_judge = cfg, Path(path), judge, neural_judge
        self.lms, self.info = lms, info
        self.signatures: dict[str, str] = {}

    @classmethod
    def train(cls, cfg, out_dir: Path, data_dir=None, progress: bool = True) -> "Evaluator":
        """Fit the two judges and one fluency LM per target domain of the test directions on the task's
        training text; save them in out_dir."""
        from .lm import FluencyLM
        from .data import prepare_data

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        train_split, _ = prepare_data(cfg, data_dir)
        texts = {d: list(train_split[d]["text"]) for d in cfg.data.domains}
        e = cfg.eval
        started = time.time()
        judge = NgramJudge(cfg.data.domains).fit(texts, epochs=e.judge_epochs)
        judge.save(out_dir / "judge.pt")
        dirs = task_directions(cfg, data_dir)
        neural_judge, neural_info = cls._train_neural_judge(cfg, texts, dirs, out_dir, progress)
        targets = [d for d in cfg.data.domains if any(x.tgt == d for x in dirs)]   # (summaries: headlines only)
        lms = {d: FluencyLM.train(texts[d], out_dir / f"lm_{d}", steps=e.lm_steps, batch_size=e.lm_batch_size,
                                  d_model=e.lm_d_model, layers=e.lm_layers, vocab_size=e.lm_vocab_size,
                                  max_len=cfg.data.max_len + 8, progress=progress)
               for d in targets}
        trained_on = " + ".join(f"{name}/train" for name in [cfg.data.corpus, *cfg.data.extra_train])
        info = {
            "task": cfg.task, "corpus": cfg.data.corpus, "seconds": round(time.time() - started, 1),
            "settings": evaluator_settings(cfg),
            "judge": "NgramJudge: hashed 1-2-gram logistic regression (fastText-style) over words, "
                     f"CJK characters counted as words, trained on {trained_on} only",
            "judge_acc_on_test_inputs": sum(judge.accuracy(d.inputs, d.src) for d in dirs) / len(dirs),
            **neural_info,
            "lm": {},
        }
        for dom, lm in lms.items():
            # PPL on human text of the domain: the test inputs written in it or else (summaries) its references
            texts, where = [x for d in dirs if d.src == dom for x in d.inputs], "test inputs"
            if not texts:
                texts = [x for d in dirs if d.tgt == dom for refs in d.references for x in refs if x is not None]
                where = "test references"
            info["lm"][dom] = {**lm.info, "ppl_on_test_inputs": lm.perplexity(texts or [""]), "ppl_measured_on": where}
        (out_dir / EVALUATOR_INFO).write_text(json.dumps(info, indent=2) + "\n")
        return cls(cfg, out_dir, judge, neural_judge, lms, info)

    @staticmethod
    def _train_neural_judge(cfg, texts: dict[str, list[str]], dirs: list[Direction], out_dir: Path,
                            progress: bool) -> tuple[NeuralJudge, dict]:
        """Fit the NeuralJudge on the training texts, save it in out_dir -> (judge, its evaluator.json entries)."""
        e = cfg.eval
        started = time.time()
        judge = NeuralJudge(cfg.data.domains, vocab_size=e.neural_judge_vocab, dim=e.neural_judge_dim,
                            filters=e.neural_judge_filters).fit(texts, epochs=e.neural_judge_epochs, progress=progress)
        judge.save(out_dir / NEURAL_JUDGE_FILE)
        trained_on = " + ".join(f"{name}/train" for name in [cfg.data.corpus, *cfg.data.extra_train])
        return judge, {
            "neural_judge": f"{judge.describe()}, {e.neural_judge_epochs} epoch(s) of Adam on {trained_on} only, "
                            "domains weighted alike",
            "neural_judge_acc_on_test_inputs": sum(judge.accuracy(d.inputs, d.src) for d in dirs) / len(dirs),
            "neural_judge_seconds": round(time.time() - started, 1),
        }

    def _add_neural_judge(self, data_dir=None) -> None:
        """Train the missing neural judge of an evaluator made before it existed, beside its other models
        (which stay as they are), and record it in evaluator.json."""
        from .data import prepare_data

        print(f"the evaluator in {self.path} has no neural style judge yet (it predates ACC-nn): training just "
              f"that ({NEURAL_JUDGE_FILE}); its n-gram judge and fluency LMs are kept", file=sys.stderr)
        train_split, _ = prepare_data(self.cfg, data_dir)
        texts = {d: list(train_split[d]["text"]) for d in self.cfg.data.domains}
        self.neural_judge, neural_info = self._train_neural_judge(self.cfg, texts, task_directions(self.cfg, data_dir),
                                                                  self.path, progress=True)
        self.info.update(neural_info)
        if self.info.get("settings") is not None:
            wanted = evaluator_settings(self.cfg)
            self.info["settings"].update({k: wanted[k] for k in NEURAL_JUDGE_SETTINGS})
        (self.path / EVALUATOR_INFO).write_text(json.dumps(self.info, indent=2) + "\n")

    @classmethod
    def load_or_train(cls, cfg, path: Path, data_dir=None) -> "Evaluator":
        """The evaluator in `path`, trained there first (and said so) when there is none yet; one from before
        the neural judge gets that judge added (the rest is kept)."""
        if (Path(path) / EVALUATOR_INFO).is_file():
            return cls.load(cfg, path, data_dir)
        print(f"no evaluator in {path} yet: training it (textgan judge train --task {cfg.task})", file=sys.stderr)
        return cls.train(cfg, path, data_dir)

    @classmethod
    def load(cls, cfg, path: Path, data_dir=None) -> "Evaluator":
        """The evaluator in `path`, refused when trained with other settings than `cfg` asks for. One from
        before the neural judge gets that judge trained and added (said on stderr; its LMs are kept)."""
        from .lm import FluencyLM

        path = Path(path)
        if not (path / EVALUATOR_INFO).is_file():
            raise FileNotFoundError(f"no evaluator in {path}; train one with: textgan judge train --task {cfg.task}")
        info = cls.check_stored(cfg, path)
        has_neural = (path / NEURAL_JUDGE_FILE).is_file()
        lms = {d: FluencyLM.load(path / f"lm_{d}") for d in cfg.data.domains if (path / f"lm_{d}").is_dir()}
        neural_judge = NeuralJudge.load(path / NEURAL_JUDGE_FILE) if has_neural else None
        evaluator = cls(cfg, path, NgramJudge.load(path / "judge.pt"), neural_judge, lms, info)
        if not has_neural:
            evaluator._add_neural_judge(data_dir)
        return evaluator

    @classmethod
    def check_stored(cls, cfg, path: Path) -> dict:
        """The recorded info of the evaluator in `path`, after check_settings (a model it does not have yet,
        the neural judge of an older evaluator, is not checked): cheap, so a benchmark can refuse a
        mismatched evaluator before it trains anything."""
        path = Path(path)
        info = json.loads((path / EVALUATOR_INFO).read_text())
        has_neural = (path / NEURAL_JUDGE_FILE).is_file()
        cls.check_settings(cfg, path, info, skip=() if has_neural else NEURAL_JUDGE_SETTINGS)
        return info

    @staticmethod
    def check_settings(cfg, path: Path, info: dict, skip: tuple[str, ...] = ()) -> None:
        """ValueError when the evaluator in `path` was trained with other eval.* settings or corpora than
        `cfg` asks for (its scores would not be the ones the config describes); a warning when its
        settings were not recorded (evaluators from before they were). Settings in `skip` (those of a
        model the evaluator does not have yet) are not checked."""
        recorded = info.get("settings")
        wanted = {k: v for k, v in evaluator_settings(cfg).items() if k not in skip}
        retrain = f"retrain it: textgan judge train --task {cfg.task} (with the same key=value overrides)"
        if recorded is None:
            print(f"warning: the evaluator in {path} does not record its settings, so they cannot be checked "
                  f"against eval.*; {retrain}", file=sys.stderr)
            return
        diff = [f"{k}={recorded.get(k)!r} (config: {v!r})" for k, v in wanted.items() if recorded.get(k) != v]
        if diff:
            raise ValueError(f"the evaluator in {path} was trained with {', '.join(diff)}; {retrain}")

    def score(self, outputs: list[str], d: Direction) -> dict[str, float]:
        """All metrics of one direction's outputs (normalized text, aligned with d.inputs)."""
        from . import metrics

        if len(outputs) != len(d.inputs):
            raise ValueError(f"{d.name}: {len(outputs)} outputs for {len(d.inputs)} test inputs")
        row = {"acc": self.judge.accuracy(outputs, d.tgt),
               "acc_neural": self.neural_judge.accuracy(outputs, d.tgt),
               "self_bleu": self._bleu(outputs, [d.inputs], d.tgt, keep_signature=not d.references),
               "ppl": self.lms[d.tgt].perplexity(outputs),
               "len_ratio": metrics.length_ratio(outputs, d.inputs),
               "words": metrics.mean_words(outputs),
               "distinct1": metrics.distinct(outputs, 1), "distinct2": metrics.distinct(outputs, 2),
               "self_bleu_outputs": metrics.self_bleu_among(outputs, self.tokenize(d.tgt)),
               "duplicates": metrics.duplicate_share(outputs), "repeats": metrics.repeat_share(outputs)}
        if d.references:
            row["ref_bleu"] = self._bleu(outputs, d.references, d.tgt, keep_signature=True)
            row["g"] = metrics.g_score(row["acc"], row["ref_bleu"])
            if self.cfg.eval.rouge:
                row.update(metrics.rouge(outputs, d.references[0]))
        return row

    def tokenize(self, target: str) -> str:
        """sacreBLEU tokenizer for text of a target domain (`eval.bleu_tokenize`, e.g. zh for Chinese)."""
        return bleu_tokenizer(self.cfg, target)

    def _bleu(self, outputs: list[str], references: list[list[str]], target: str, keep_signature: bool) -> float:
        """sacreBLEU score; its signature is kept for the report, one per target domain (the ref-BLEU's,
        or the self-BLEU's when the task has no references)."""
        score, signature = bleu_with_signature(outputs, references, self.tokenize(target))
        if keep_signature:
            self.signatures[target] = signature
        return score.score

    def score_system(self, outputs: dict[str, list[str]], directions: list[Direction]) -> dict:
        """{direction name: outputs} -> {"directions": {name: row}, "mean": row averaged over directions}."""
        missing = [d.name for d in directions if d.name not in outputs]
        if missing:
            raise ValueError(f"no outputs for direction(s) {', '.join(missing)}: a system is scored on all of "
                             f"{', '.join(d.name for d in directions)}")
        rows = {d.name: self.score(outputs[d.name], d) for d in directions}
        return {"directions": rows, "mean": mean_over_directions(rows)}


def build_report(evaluator: Evaluator, systems: dict[str, dict[str, list[str]]], directions: list[Direction],
                 **extra) -> dict:
    """Score every system ({name: {direction: outputs}}) into one report (metrics.json's layout)."""
    report = {"task": evaluator.cfg.task, **extra, "evaluator": evaluator.info,
              "directions": [d.name for d in directions],
              "systems": {name: evaluator.score_system(outs, directions) for name, outs in systems.items()}}
    report["bleu_signature"] = "; ".join(f"into {t}: {sig}" if len(evaluator.signatures) > 1 else sig
                                         for t, sig in evaluator.signatures.items())
    return report


COLUMNS = [("acc", "ACC"), ("acc_neural", "ACC-nn"), ("ref_bleu", "ref-BLEU"), ("self_bleu", "self-BLEU"), ("ppl", "PPL"),
           ("g", "G"),
           ("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeL", "R-L"), ("len_ratio", "len"), ("words", "words"),
           ("distinct1", "dist-1"), ("distinct2", "dist-2"), ("self_bleu_outputs", "self-BLEU among"),
           ("duplicates", "dup %"), ("repeats", "rep3 %")]


def markdown_table(report: dict) -> str:
    """The systems of a report side by side (means over directions), then what measured them."""
    systems = report["systems"]
    present = [(k, title) for k, title in COLUMNS if any(k in s["mean"] for s in systems.values())]
    lines = ["| system | " + " | ".join(t for _, t in present) + " |", "|---" * (len(present) + 1) + "|"]
    for name, s in systems.items():
        cells = [f"{s['mean'][k]:.2f}" if k == "len_ratio" else f"{s['mean'][k]:.1f}" if k in s["mean"] else ""
                 for k, _ in present]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    info = report["evaluator"]
    lm_names = ", ".join(f"{d}: {v['steps']} steps, PPL {v['ppl_on_test_inputs']:.0f} on "
                         f"{v.get('ppl_measured_on', 'test inputs')}" for d, v in info["lm"].items())
    judges = [f"Style judge (ACC{', the one G uses' if any('g' in s['mean'] for s in systems.values()) else ''}): "
              f"{info['judge']}; {info['judge_acc_on_test_inputs']:.1f}% accurate on the untouched test inputs."]
    if "neural_judge" in info:        # (reports from before the second judge have one)
        judges.append(f"Second style judge (ACC-nn): {info['neural_judge']}; "
                      f"{info['neural_judge_acc_on_test_inputs']:.1f}% accurate on the untouched test inputs.")
    lines += ["", *judges, f"Fluency LM (GPT-2 per target domain, PPL per word or CJK character): {lm_names}.",
              f"sacreBLEU: {report['bleu_signature'] or 'no references'}. Means over the directions "
              f"{', '.join(report['directions'])}."]
    return "\n".join(lines) + "\n"
