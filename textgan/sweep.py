"""Choosing decode settings on dev without the test set and without the evaluator's own judges.

A decode sweep (scripts/sweep_decode.py) transfers the `dev-a` slice of a task's dev set once per point of
a grid of `decode.*` settings and scores each with a `SweepJudge`, a style classifier of another family
than the evaluator's two (TF-IDF character n-grams, scikit-learn's logistic regression, on a sample of the
training text), plus sacreBLEU against the inputs and, where dev has them, the references. A rule picks
one point on dev-a; that point and the run's current decode then meet once on `dev-b` (held out of the
sweep: evaluate.dev_slice), which says whether the pick generalises before anything is scored on test.

The rule: maximise one metric among the points that meet every requirement, e.g.

    maximise gself = sqrt(ACC * self-BLEU)  subject to  self_bleu >= 50

(`parse_rule("max:gself,self_bleu>=50")`); with no point meeting them, the one that misses them least.
"""

from __future__ import annotations

import itertools
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

from . import metrics
from .evaluate import Direction, bleu

SWEEP_JUDGE_LINES = 50_000          # training sentences per domain the sweep judge reads (a fixed sample)


class SweepJudge:
    """p(domain | text) by logistic regression over TF-IDF character 2-5-grams within words (scikit-learn),
    trained on up to SWEEP_JUDGE_LINES sentences a domain of the training text, drawn with a fixed seed.
    Another model family than the evaluator's judges (hashed word n-grams; a word CNN) and than the run's
    own style classifiers, so a decode tuned against it is not tuned against what scores it on test."""

    def __init__(self, domains: list[str], pipeline, settings: dict | None = None):
        self.domains, self.pipeline, self.settings = list(domains), pipeline, settings or {}

    @classmethod
    def fit(cls, texts_by_domain: dict[str, list[str]], lines: int = SWEEP_JUDGE_LINES, seed: int = 0,
            settings: dict | None = None) -> "SweepJudge":
        """`settings`: what the training text depends on (corpora, normalization), kept to check a saved
        judge against the run it is asked to judge."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        texts, labels = [], []
        for label, (domain, lines_of) in enumerate(texts_by_domain.items()):
            sample = random.Random(seed).sample(lines_of, min(lines, len(lines_of)))
            texts += sample
            labels += [label] * len(sample)
        pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=300_000),
            LogisticRegression(max_iter=1000, class_weight="balanced"))
        return cls(list(texts_by_domain), pipeline.fit(texts, labels), settings)

    def accuracy(self, texts: list[str], domain: str) -> float:
        """Share of `texts` (percent) the judge puts in `domain`."""
        if not texts:
            return 0.0
        return 100.0 * float((self.pipeline.predict(texts) == self.domains.index(domain)).mean())

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps({"domains": self.domains, "pipeline": self.pipeline, "settings": self.settings}))

    @classmethod
    def load(cls, path: Path) -> "SweepJudge":
        state = pickle.loads(Path(path).read_bytes())
        return cls(state["domains"], state["pipeline"], state.get("settings"))


def score(judge: SweepJudge | None, outputs: list[str], d: Direction, tokenize: str) -> dict[str, float]:
    """One direction's dev outputs: the sweep judge's ACC (style tasks), self-BLEU, ref-BLEU where dev has
    references, gself = sqrt(ACC * self-BLEU), repeats and length ratio."""
    row = {"self_bleu": bleu(outputs, [d.inputs], tokenize).score,
           "repeats": metrics.repeat_share(outputs), "len_ratio": metrics.length_ratio(outputs, d.inputs)}
    if judge is not None:
        row["acc"] = judge.accuracy(outputs, d.tgt)
        row["gself"] = metrics.g_score(row["acc"], row["self_bleu"])
    if d.references:
        row["ref_bleu"] = bleu(outputs, d.references, tokenize).score
    return row


def parse_grid(specs: list[str]) -> list[dict[str, str]]:
    """["decode.style_weight=2,4", "decode.passes=1,3"] -> every combination, as {key: value} overrides
    (values kept as text, for config.parse_override). A list value is written in brackets and not split:
    "decode.guidance_candidates=[0.6,1.0];[1.0,2.0]" (points separated by ';' when any holds a comma)."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key.startswith("decode.") or not values:
            raise ValueError(f"a grid axis is decode.KEY=V1,V2,...; got {spec!r}")
        points = values.split(";") if ";" in values or values.startswith("[") else values.split(",")
        axes.append([(key, v.strip()) for v in points])
    return [dict(p) for p in itertools.product(*axes)]


@dataclass
class Rule:
    """Maximise `metric` among the points meeting every (metric, minimum) of `minimums`."""

    metric: str
    minimums: list[tuple[str, float]]

    def metrics(self) -> list[str]:
        return [self.metric, *(key for key, _ in self.minimums)]

    def shortfall(self, row: dict[str, float]) -> float:
        """How far a row misses the minimums (0: meets them all)."""
        return sum(max(0.0, low - row[key]) for key, low in self.minimums)

    def pick(self, rows: list[dict[str, float]]) -> int:
        """Index of the chosen row: the best by `metric` among the rows that meet the minimums, else the
        row that misses them least (ties: the better `metric`). ValueError for no rows or a metric they lack
        (a typo must not pick the first row)."""
        if not rows:
            raise ValueError("no rows to pick from")
        missing = [k for k in self.metrics() if any(k not in r for r in rows)]
        if missing:
            raise ValueError(f"the rule names {', '.join(missing)}, which the rows do not have; they have: "
                             f"{', '.join(rows[0])}")
        return min(range(len(rows)), key=lambda i: (self.shortfall(rows[i]), -rows[i][self.metric]))

    def describe(self) -> str:
        return f"maximise {self.metric}" + "".join(f", {k} >= {v:g}" for k, v in self.minimums)


def parse_rule(text: str) -> Rule:
    """"max:gself,self_bleu>=50,acc>=85" -> Rule("gself", [("self_bleu", 50.0), ("acc", 85.0)])."""
    head, *conditions = [part.strip() for part in text.split(",")]
    if not head.startswith("max:") or not head[4:]:
        raise ValueError(f"a rule starts with max:METRIC; got {text!r}")
    minimums = []
    for cond in conditions:
        key, sep, low = cond.partition(">=")
        try:
            value = float(low)
        except ValueError:
            value = None
        if not sep or not key.strip() or value is None:
            raise ValueError(f"a requirement is METRIC>=NUMBER; got {cond!r}")
        minimums.append((key.strip(), value))
    return Rule(head[4:], minimums)
