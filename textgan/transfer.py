"""Batched inference: rewrite sentences into a target domain. Used by the CLI, training-time eval and convert.

    >>> import textgan
    >>> model = textgan.load("runs/sentiment/20261121-101500")
    >>> model.transfer(["the food was cold and the staff rude ."], to="pos")
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .config import Config, ConfigError, check, merge, parse_override
from .checkpoint import default_words, latest_run, load_run, load_run_config
from .data import pad, prepare_data
from .decoding.candidates import decode_texts
from .decoding.plan import ENGINES, DecodePlan, Request, make_plan
from .decoding.rerank import Reranker
from .fast import check_exportable, load_generators
from .models.judge import NgramJudge


def override_decode(cfg: Config, overrides: Sequence[str]) -> None:
    """Apply "decode.key=value" overrides to a loaded run's config, checked as `textgan train` checks its
    overrides; ConfigError for a typo or a key outside the decode section (what the run learnt stays)."""
    for text in overrides:
        update = parse_override(text)
        if set(update) != {"decode"}:
            raise ConfigError(f"{text!r}: only the run's decode section can change after training "
                              "(decode.<key>=<value>)")
        merge(cfg, update)
    if overrides:
        check(cfg)


class StyleTransfer:
    """A trained run, loaded for inference: `transfer`, `detect`."""

    def __init__(self, run_dir: str | Path, device: str | None = None, engine: str = "torch",
                 quantization: str = "int8", decode: Sequence[str] = ()):
        self.device = device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.run_dir = Path(run_dir)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
        self.engine = engine
        if engine == "ctranslate2":          # refused before any model is loaded when it cannot run exactly
            check_exportable(load_run_config(run_dir))
        self.cfg, self.tok, self.generators, self.critic = load_run(run_dir, device, generators=engine == "torch")
        if engine == "ctranslate2":
            self.generators = load_generators(run_dir, self.cfg, self.tok, device, quantization)
        override_decode(self.cfg, decode)
        self.domains = self.cfg.data.domains
        judge_file = self.run_dir / "judge.pt"
        self.judge = NgramJudge.load(judge_file) if judge_file.exists() else None
        self.default_words = default_words(self.run_dir) if self.tok.length_ids else {}
        self.reranker = Reranker(self)       # what reranking reads, loaded on first use
        self._splits = None                  # the run's training and dev sentences (retrieval, second_style)

    @property
    def controls_length(self) -> bool:
        return bool(self.tok.length_ids)

    def check_length_request(self, max_words: int | None, ratio: float | None) -> None:
        """ValueError unless this model can honour the request (length control; positive values)."""
        if not self.controls_length and (max_words is not None or ratio is not None):
            raise ValueError(f"the model in {self.run_dir} has no length control (trained without "
                             "data.length_tokens); --max-words and --ratio need one")
        if max_words is not None and max_words < 1 or ratio is not None and ratio <= 0:
            raise ValueError(f"a length must be positive (max_words={max_words}, ratio={ratio})")

    def lengths(self, norm: list[str], targets: list[str], max_words: int | None, ratio: float | None) -> list[int] | None:
        """Words asked of each transfer: max_words, or ratio * the input's words, or the target domain's
        median training length. None for models without length control (asking then is an error)."""
        self.check_length_request(max_words, ratio)
        if not self.controls_length:
            return None
        if max_words is not None:
            return [max_words] * len(norm)
        if ratio is not None:
            return [max(1, round(ratio * len(t.split()))) for t in norm]
        return [self.default_words[t] for t in targets]

    def generator_for(self, to: str):
        """g_ab writes domain b (index 1); g_ba writes domain a. One shared generator writes all."""
        return self.generators[-1] if to == self.domains[0] else self.generators[0]

    def detect(self, texts: list[str], normalized: bool = False) -> list[str]:
        """The domain each sentence is in: the argmax of `domain_probs`."""
        probs = self.domain_probs(texts, normalized)
        return [self.domains[i] for i in probs.argmax(-1).tolist()]

    @torch.no_grad()
    def domain_probs(self, texts: list[str], normalized: bool = False) -> torch.Tensor:
        """(N, k) probability of each domain (order of self.domains) per sentence, by the run's n-gram
        judge (judge.pt, fitted on the training text when the run started) or, in runs without one, a
        softmax over its discriminator's scores (which a run without an adversary, e.g. translation,
        never trains)."""
        norm = texts if normalized else [self.tok.normalize(t) for t in texts]
        if not norm:
            return torch.zeros(0, len(self.domains))
        if self.judge is not None:
            order = [self.judge.domains.index(d) for d in self.domains]
            return self.judge(norm).softmax(-1)[:, order]
        encoded = [ids or [0] for ids in self.tok.encode(norm, self.cfg.data.max_len)]
        ids, mask = pad(encoded)
        device = next(self.critic.parameters()).device
        return self.critic.domain_scores(ids.to(device), mask.to(device)).float().softmax(-1).cpu()

    def other_domain(self, domain: str) -> str:
        a, b = self.domains[0], self.domains[-1]
        return b if domain == a else a

    def plan(self, beam: int = 1, sample: bool = False, temperature: float = 1.0, candidates: int | None = None,
             guidance: float | None = None) -> DecodePlan:
        """The decode plan for these options and the run's decode section (decoding/plan.py); ValueError for
        options that do not go together or this run or engine cannot decode."""
        return make_plan(self.cfg, Request(beam, sample, temperature, candidates, guidance), self.engine, self.run_dir)

    def splits(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The training and dev sentences of each domain, read as the run read them (data.prepare_data: the
        corpora must be where it found them), once: retrieval's pools and the EmbeddingStyle's text."""
        if self._splits is None:
            train, dev = prepare_data(self.cfg)[:2]
            self._splits = tuple({d: list(split[d]["text"]) for d in self.domains} for split in (train, dev))
        return self._splits

    def transfer(self, texts: list[str], to: str | list[str] | None = None, plan: DecodePlan | None = None,
                 tokenized: bool = False, normalized: bool = False, batch_size: int = 256,
                 max_words: int | None = None, ratio: float | None = None, stats: dict | None = None,
                 **options) -> list[str]:
        """Rewrite `texts` into domain `to`: one domain, one per text, or None for "the other one"
        (two-domain tasks; each text's domain is detected).

        How: `plan` (a DecodePlan from `self.plan`), or the plan of `options` (beam, sample, temperature,
        candidates, guidance; see decoding/plan.py): by default the run's own decode section, which may
        rerank candidates (decoding/rerank.py). `tokenized=True` returns the normalized (tokenized) form
        used by benchmarks; `normalized=True` says the texts already are in that form. Models with length
        control (summarization) write `max_words` words, or `ratio` times the input's words, or by default
        the target domain's median length; `stats["cut"]` counts outputs the hard cap had to shorten
        (decoding.candidates.decode_texts).
        """
        if plan is not None and options:
            raise ValueError(f"give either a plan or decode options ({', '.join(options)}), not both")
        plan = plan or self.plan(**options)
        norm = list(texts) if normalized else [self.tok.normalize(t) for t in texts]
        if to is None:
            targets = [self.other_domain(d) for d in self.detect(norm, normalized=True)]
        else:
            targets = [to] * len(texts) if isinstance(to, str) else list(to)
        unknown = sorted(set(targets) - set(self.domains))
        if unknown:
            raise ValueError(f"unknown domain '{unknown[0]}'; this model knows: {', '.join(self.domains)}")
        words = self.lengths(norm, targets, max_words, ratio)
        outputs = [""] * len(texts)
        for domain in sorted(set(targets)):
            rows = [i for i, t in enumerate(targets) if t == domain]
            row_words = [words[i] for i in rows] if words else None
            if plan.reranks:
                out = self.reranker.rewrite([norm[i] for i in rows], domain, plan, batch_size, row_words, stats)
            else:
                out = decode_texts(self.generator_for(domain), self.tok, [norm[i] for i in rows], domain, plan.search,
                                   batch_size, row_words, stats, self.other_domain(domain))
            for i, text in zip(rows, out):
                outputs[i] = text if tokenized else self.tok.detokenize(text)
        return outputs


def load(run_dir: str | Path | None = None, task: str = "sentiment", device: str | None = None,
         engine: str = "torch", quantization: str = "int8", decode: Sequence[str] = ()) -> StyleTransfer:
    """Load a run for inference; without `run_dir`, the newest run of `task` under ./runs. `engine`:
    torch, or ctranslate2 (fast.py: the generators converted to `quantization` weights)."""
    return StyleTransfer(run_dir or latest_run(task), device, engine, quantization, decode)
