"""The decode plan: a run's `decode` section and one request's options (beam, sampling, candidates,
guidance), worked out once into the record every later step reads. `transfer`, `convert` and `serve` build
a plan (`make_plan`) and hand it over; nothing after this module resolves a decode setting again.

    request (beam, sample, temperature, candidates, guidance)  +  DecodeConfig  ->  DecodePlan
        .search      how the main decode chooses pieces (search.Search: beam, sampling, guidance)
        .reranks     whether candidates compete (rerank.py): the greedy rewrite, a guidance `ladder`,
                     candidates - 1 samples, the `nbest` beam hypotheses, `retrieve` training sentences
        .scoring     the reranker's weights (scores.py)
        .decodes     decoder runs per input (serve.py's cost unit)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import TEMPERATURE_RANGE, Config
from .search import Search

ENGINES = ("torch", "ctranslate2")


def check_temperature(temperature) -> float:
    """A sampling temperature as a float (2 -> 2.0: transformers refuses ints); ValueError outside
    TEMPERATURE_RANGE or for what is not a number."""
    low, high = TEMPERATURE_RANGE
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not low <= temperature <= high:
        raise ValueError(f"temperature must be a number in [{low:g}, {high:g}]; got {temperature!r}")
    return float(temperature)


@dataclass(frozen=True)
class Scoring:
    """The reranker's weights (scores.combine; DecodeConfig's fields of the same names)."""

    style: float = 1.0                   # w_s of the harmonic mean with the content term (0: no style term)
    content: float = 1.0                 # w_c
    fluency: float = 0.0                 # w_f * log p_LM(y)
    fluency_domains: tuple[str, ...] = ()   # ... only for candidates written into these ((): all)
    semantic: float = 0.0                # w_e * log cos(e(x), e(y))
    semantic_style: bool = False         # r_style = min(p_C, p_E)
    length_penalty: float = 0.0          # beta in the content term's - beta * max(0, |y| / |x| - 1)
    direct: float = 0.0                  # w_d * mean log p_G(y | x)

    @classmethod
    def from_config(cls, d) -> "Scoring":
        return cls(d.style_weight, d.content_weight, d.fluency_weight, tuple(d.fluency_domains), d.semantic_weight,
                   d.semantic_style, d.length_penalty, d.direct_weight)

    def fluency_into(self, domain: str) -> bool:
        """Whether the fluency term scores candidates written into `domain`."""
        return bool(self.fluency) and (not self.fluency_domains or domain in self.fluency_domains)


@dataclass(frozen=True)
class DecodePlan:
    """Everything one `transfer` call decodes by. Without reranking, each input gets `search`'s rewrite;
    with it (`reranks`), per input the greedy rewrite at `search.guidance`, one greedy rewrite per `ladder`
    weight, `candidates` - 1 samples at `temperature` under `seed`, the `nbest` hypotheses of a beam search
    and the `retrieve` nearest training sentences compete, `passes` times (rerank.py)."""

    search: Search = field(default_factory=Search)
    candidates: int = 1
    ladder: tuple[float, ...] = ()
    retrieve: int = 0
    nbest: int = 0
    passes: int = 1
    temperature: float = 0.8             # the competing samples' (decode.temperature)
    seed: int = 0
    scoring: Scoring = field(default_factory=Scoring)

    @property
    def reranks(self) -> bool:
        return self.candidates > 1 or bool(self.ladder) or bool(self.retrieve) or bool(self.nbest)

    @property
    def decodes(self) -> int:
        """Decoder runs per input (serve.py's cost unit). Beam search of width b runs b hypotheses; guidance
        runs every row twice (with and without the source domain's prompt): steered = 2 with guidance on,
        else 1. Reranking decodes

            passes x (steered x (1 + rungs + candidates - 1) + nbest)

        (the greedy rewrite, one greedy rewrite per ladder rung, the samples, the beam's hypotheses); the
        candidates' scoring and retrieval are not counted (cheaper than decoding: one forward pass each)."""
        steered = 2 if self.search.guidance else 1
        if self.reranks:
            return self.passes * (steered * (len(self.ladder) + self.candidates) + self.nbest)
        return steered * self.search.beam


    def describe(self) -> str:
        """The plan in one line, for people (`textgan convert` prints it before a long file)."""
        s = self.search
        steer = f", guidance {s.guidance:g}" if s.guidance else ""
        if not self.reranks:
            how = (f"beam search of width {s.beam}" if s.beam > 1 else
                   f"sampling at temperature {s.temperature:g}" if s.sample else "greedy")
            return f"{how}{steer}; {self.decodes} decoder run(s) per line"
        competing = [f"the greedy rewrite{steer}"]
        if self.ladder:
            competing.append(f"greedy rewrites at guidance {', '.join(f'{w:g}' for w in self.ladder)}")
        if self.candidates > 1:
            competing.append(f"{self.candidates - 1} samples at temperature {self.temperature:g}")
        if self.nbest:
            competing.append(f"the {self.nbest} best of a beam search")
        if self.retrieve:
            competing.append(f"{self.retrieve} retrieved training sentences")
        w = self.scoring
        terms = [f"{name} {weight:g}" for name, weight in [("style", w.style), ("content", w.content),
                 ("fluency", w.fluency), ("semantic", w.semantic), ("direct", w.direct),
                 ("length penalty", w.length_penalty)] if weight]
        passes = f", {self.passes} passes" if self.passes > 1 else ""
        return (f"the best of {'; '.join(competing)}, scored by {', '.join(terms)}{passes}; "
                f"{self.decodes} decoder runs per line")


@dataclass(frozen=True)
class Request:
    """A caller's decode options; None takes the run's decode section."""

    beam: int = 1
    sample: bool = False
    temperature: float = 1.0
    candidates: int | None = None
    guidance: float | None = None


def make_plan(cfg: Config, request: Request = Request(), engine: str = "torch", run: str | Path = "this run") -> DecodePlan:
    """The plan for `request` on a run with config `cfg` served by `engine`; ValueError (naming `run`) for
    options that do not go together or that this run or engine cannot decode."""
    d, beam, sample = cfg.decode, request.beam, request.sample
    _check_beam(cfg, engine, beam)
    guidance = _guidance(cfg, engine, run, request.guidance, beam)
    plain = request.candidates == 1 or beam > 1 or sample          # one rewrite asked: nothing competes
    ladder = () if plain or not guidance else tuple(d.guidance_candidates)
    retrieve, nbest = (0, 0) if plain or not (d.retrieve or d.nbest) else (d.retrieve, d.nbest)
    if (retrieve or nbest) and engine != "torch":
        raise ValueError(f"reranking retrieved sentences or beam hypotheses (decode.retrieve, decode.nbest of {run}) "
                         "needs the torch engine: use --engine torch, or --candidates 1 for greedy decoding with "
                         "ctranslate2")
    candidates = _candidates(d, engine, run, request.candidates, beam, sample)
    temperature = check_temperature(request.temperature)
    search = Search(beam=beam, sample=sample, temperature=temperature, guidance=guidance,
                    max_len=cfg.train.max_gen_len)
    return DecodePlan(search, candidates, ladder, retrieve, nbest, d.passes, d.temperature, d.seed,
                      Scoring.from_config(d))


def _check_beam(cfg: Config, engine: str, beam: int) -> None:
    """ValueError for a beam this run cannot search: below 1, or above 1 on a causal generator with the
    torch engine (search.generate decodes a causal generator greedily or by sampling only)."""
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    if beam > 1 and cfg.generator.arch == "causal" and engine == "torch":
        raise ValueError(f"beam {beam}: beam search is not implemented for a causal generator "
                         "(generator.arch=causal) on the torch engine; the largest beam is 1 (greedy), "
                         "or sample instead")


def _guidance(cfg: Config, engine: str, run, guidance: float | None, beam: int) -> float:
    """The classifier-free guidance weight: `guidance`, or decode.guidance unless beam search is asked."""
    if guidance is None:
        guidance = cfg.decode.guidance if beam == 1 else 0.0
    if guidance < 0:
        raise ValueError(f"guidance must be at least 0, got {guidance}")
    if guidance and (cfg.generator.arch != "causal" or engine != "torch" or beam > 1 or len(cfg.data.domains) != 2):
        raise ValueError(f"guidance {guidance} (decode.guidance of {run} or --guidance) steers a causal generator "
                         "away from the source domain on the torch engine, greedy or sampled, in a two-domain "
                         "task; use --guidance 0 here")
    return guidance


def _candidates(d, engine: str, run, candidates: int | None, beam: int, sample: bool) -> int:
    """How many candidates compete per input: `candidates`, or decode.candidates when greedy decoding is
    asked."""
    if candidates is None:
        candidates = d.candidates if beam == 1 and not sample else 1
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if candidates > 1 and (beam > 1 or sample):
        raise ValueError("candidates > 1 reranks the greedy rewrite and sampled ones; it does not combine "
                         "with beam search or plain sampling")
    if candidates > 1 and engine != "torch":
        raise ValueError(f"reranking {candidates} candidates (decode.candidates of {run}) needs the torch engine, "
                         "which scores each candidate with the back generator; use --engine torch, or "
                         "--candidates 1 for greedy decoding with ctranslate2")
    return candidates
