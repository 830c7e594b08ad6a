"""Batched inference: rewrite sentences into a target domain. Used by the CLI, training-time eval and convert.

    >>> import textgan
    >>> model = textgan.load("runs/sentiment/20261121-101500")
    >>> model.transfer(["the food was cold and the staff rude ."], to="pos")
"""

from __future__ import annotations

from pathlib import Path

import torch

from .config import TEMPERATURE_RANGE
from .checkpoint import default_words, latest_run, load_run
from .data import pad
from .models.generator import Generator
from .models.judge import NgramJudge
from .tokenizer import Tokenizer

ENGINES = ("torch", "ctranslate2")


def check_temperature(temperature) -> float:
    """A sampling temperature as a float (2 -> 2.0: transformers refuses ints); ValueError outside
    TEMPERATURE_RANGE or for what is not a number."""
    low, high = TEMPERATURE_RANGE
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not low <= temperature <= high:
        raise ValueError(f"temperature must be a number in [{low:g}, {high:g}]; got {temperature!r}")
    return float(temperature)


def transfer_normalized(generator: Generator, tok: Tokenizer, texts: list[str], to: str, beam: int = 1,
                        sample: bool = False, temperature: float = 1.0, max_len: int = 32,
                        batch_size: int = 256, words: list[int] | None = None, stats: dict | None = None,
                        guidance: float = 0.0, away: str | None = None, nbest: int = 1) -> list[str]:
    """Normalized sentences -> normalized rewrites in domain `to`, in input order; with `nbest` n > 1 (beam
    search), the n best of each, text i's at i*n .. i*n + n - 1.

    Sentences are sorted by length so each batch carries little padding; empty inputs give "".
    Length control (a tokenizer with <len_k> tokens): `words[i]` is the length asked of text i (the
    generator reads the request, see models/generator.py); decoding stops at 2 * words + 4 pieces, and
    an output still longer than asked is cut to `words` words, counted in stats["cut"] (how often the
    model needed the cap). guidance > 0 (causal generators): classifier-free guidance away from domain
    `away` (CausalGenerator.guided).
    """
    if tok.length_ids and words is None:
        raise ValueError("this model controls length: give the number of words wanted per text")
    device = generator.device
    encoded = tok.encode(texts, max_len)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    outputs = [""] * (len(texts) * nbest)
    todo = [i for i in order if encoded[i]]
    for start in range(0, len(todo), batch_size):
        rows = todo[start:start + batch_size]
        src, mask = pad([encoded[i] for i in rows])
        asked = None if words is None else torch.tensor([words[i] for i in rows], dtype=torch.long, device=device)
        budget = max_len if words is None else min(max_len, 2 * max(words[i] for i in rows) + 4)
        guide = {"guidance": guidance, "away": tok.domain_ids[away]} if guidance else {}
        ids = generator.generate(src.to(device), mask.to(device), tok.domain_ids[to], beam=beam,
                                 sample=sample, temperature=temperature, max_len=budget, words=asked, nbest=nbest, **guide)
        for at, text in zip([i * nbest + j for i in rows for j in range(nbest)], tok.decode(ids)):
            i = at // nbest
            if words is not None and len(text.split()) > words[i]:
                text = " ".join(text.split()[: words[i]])
                if stats is not None:
                    stats["cut"] = stats.get("cut", 0) + 1
            outputs[at] = text
    return outputs


class StyleTransfer:
    """A trained run, loaded for inference: `transfer`, `detect`."""

    def __init__(self, run_dir: str | Path, device: str | None = None, engine: str = "torch",
                 quantization: str = "int8"):
        self.device = device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.run_dir = Path(run_dir)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
        self.engine = engine
        if engine == "ctranslate2":          # refused before any model is loaded when it cannot run exactly
            from .checkpoint import load_run_config
            from .fast import check_exportable

            check_exportable(load_run_config(run_dir))
        self.cfg, self.tok, self.generators, self.critic = load_run(run_dir, device, generators=engine == "torch")
        if engine == "ctranslate2":
            from .fast import load_generators

            self.generators = load_generators(run_dir, self.cfg, self.tok, device, quantization)
        self.domains = self.cfg.data.domains
        judge_file = self.run_dir / "judge.pt"
        self.judge = NgramJudge.load(judge_file) if judge_file.exists() else None
        self.default_words = default_words(self.run_dir) if self.tok.length_ids else {}
        self.style = None                    # the run's style classifier, loaded when reranking needs it
        self.fluency = None                  # the reranker's fluency LM (decode.fluency_weight > 0), loaded then
        self.encoder = None                  # its sentence encoder (decode.semantic_weight, decode.retrieve)
        self.retrieval = None                # the target domains' training sentences to retrieve from
        self.second_style = None             # the style classifier over the encoder's embeddings (semantic_style)
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

    def generator_for(self, to: str) -> Generator:
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

    def candidates_for(self, candidates: int | None, beam: int, sample: bool) -> int:
        """How many candidates compete per input: `candidates`, or the run's decode.candidates when greedy
        decoding is asked; ValueError for requests that do not go together or this engine cannot serve."""
        if candidates is None:
            candidates = self.cfg.decode.candidates if beam == 1 and not sample else 1
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        if candidates > 1 and (beam > 1 or sample):
            raise ValueError("candidates > 1 reranks the greedy rewrite and sampled ones; it does not combine "
                             "with beam search or plain sampling")
        if candidates > 1 and self.engine != "torch":
            raise ValueError(f"reranking {candidates} candidates (decode.candidates of {self.run_dir}) needs the "
                             "torch engine, which scores each candidate with the back generator; use "
                             "--engine torch, or --candidates 1 for greedy decoding with ctranslate2")
        return candidates

    def extras_for(self, candidates: int | None, beam: int, sample: bool) -> tuple[int, int]:
        """What else joins the candidates, (retrieve, nbest): the run's decode.retrieve retrieved sentences
        and decode.nbest beam hypotheses, unless one greedy rewrite (candidates=1), beam search or sampling
        is asked."""
        d = self.cfg.decode
        if candidates == 1 or beam > 1 or sample or not (d.retrieve or d.nbest):
            return 0, 0
        if self.engine != "torch":
            raise ValueError(f"reranking retrieved sentences or beam hypotheses (decode.retrieve, decode.nbest of "
                             f"{self.run_dir}) needs the torch engine: use --engine torch, or --candidates 1 for "
                             "greedy decoding with ctranslate2")
        return d.retrieve, d.nbest

    def sentence_encoder(self):
        """The reranker's sentence encoder (decode.encoder), loaded once."""
        if self.encoder is None:
            from .pretrained.encoder import Encoder

            self.encoder = Encoder.load(self.cfg.decode.encoder, device=self.device)
        return self.encoder

    def splits(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """The training and dev sentences of each domain, read as the run read them (data.prepare_data: the
        corpora must be where it found them), once: retrieval's pools and the EmbeddingStyle's text."""
        if self._splits is None:
            from .data import prepare_data

            train, dev = prepare_data(self.cfg)[:2]
            self._splits = tuple({d: list(split[d]["text"]) for d in self.domains} for split in (train, dev))
        return self._splits

    def retrieved(self, norm: list[str], domain: str, r: int) -> list[list[str]]:
        """The r training sentences of `domain` nearest to each normalized input (rerank.Retrieval)."""
        if self.retrieval is None:
            from .corpora import cache_dir
            from .rerank import Retrieval

            self.retrieval = Retrieval(self.sentence_encoder(), self.splits()[0], cache_dir("embeddings"))
        return self.retrieval.nearest(norm, domain, r)

    def embedding_style(self):
        """The run's style classifier over decode.encoder's embeddings (decode.semantic_style), fitted into
        the run on first use (rerank.embedding_style)."""
        if self.second_style is None:
            from .corpora import cache_dir
            from .rerank import embedding_style

            self.second_style = embedding_style(self.run_dir, self.sentence_encoder(), self.domains, self.splits(),
                                                cache_dir("embeddings")).to(self.device)
        return self.second_style

    def guidance_for(self, guidance: float | None, beam: int) -> float:
        """The classifier-free guidance weight to decode with: `guidance`, or the run's decode.guidance
        unless beam search is asked; ValueError where it cannot apply."""
        if guidance is None:
            guidance = self.cfg.decode.guidance if beam == 1 else 0.0
        if guidance < 0:
            raise ValueError(f"guidance must be at least 0, got {guidance}")
        if guidance and (self.cfg.generator.arch != "causal" or self.engine != "torch" or beam > 1
                         or len(self.domains) != 2):
            raise ValueError(f"guidance {guidance} (decode.guidance of {self.run_dir} or --guidance) steers a "
                             "causal generator away from the source domain on the torch engine, greedy or "
                             "sampled, in a two-domain task; use --guidance 0 here")
        return guidance

    def ladder_for(self, candidates: int | None, beam: int, sample: bool, guidance: float) -> list[float]:
        """The extra guidance weights whose greedy rewrites compete (decode.guidance_candidates): used with
        the run's default decoding (`candidates` None) or reranking asked (> 1), with guidance on; never with
        beam search, sampling, guidance 0 or `candidates` 1 (one greedy rewrite asked)."""
        if candidates == 1 or beam > 1 or sample or not guidance:
            return []
        return list(self.cfg.decode.guidance_candidates)

    def check_beam(self, beam: int) -> None:
        """ValueError for a beam this run cannot search: below 1, or above 1 on a causal generator with the
        torch engine (CausalGenerator.generate decodes greedily or by sampling only)."""
        if beam < 1:
            raise ValueError(f"beam must be at least 1, got {beam}")
        if beam > 1 and self.cfg.generator.arch == "causal" and self.engine == "torch":
            raise ValueError(f"beam {beam}: beam search is not implemented for a causal generator "
                             "(generator.arch=causal) on the torch engine; the largest beam is 1 (greedy), "
                             "or sample instead")

    def decodes(self, beam: int = 1, sample: bool = False) -> int:
        """Decoder runs per input that `transfer` makes with these options and the run's decode config (the
        unit of serve.py's cost model), checked by the resolvers `transfer` uses, so ValueError for the decode
        options it would refuse (beam, guidance, candidates, n-best; temperature and domains are checked apart). Beam search of width b runs b hypotheses; guidance runs every row twice (with and
        without the source domain's prompt): steered = 2 with guidance on, else 1. The run's reranking decodes

            passes x (steered x (1 + rungs + candidates - 1) + nbest)

        (the greedy rewrite, one greedy rewrite per ladder rung, the samples, the beam's hypotheses); the
        candidates' scoring and retrieval are not counted (cheaper than decoding: one forward pass each)."""
        self.check_beam(beam)
        guidance = self.guidance_for(None, beam)
        ladder = self.ladder_for(None, beam, sample, guidance)
        retrieve, nbest = self.extras_for(None, beam, sample)
        candidates = self.candidates_for(None, beam, sample)
        steered = 2 if guidance else 1
        if candidates > 1 or ladder or retrieve or nbest:
            return self.cfg.decode.passes * (steered * (len(ladder) + candidates) + nbest)
        return steered * beam

    def reranked(self, norm: list[str], domain: str, candidates: int, batch_size: int,
                 words: list[int] | None, stats: dict | None, guidance: float = 0.0,
                 ladder: list[float] = (), retrieve: int = 0, nbest: int = 0) -> list[str]:
        """Normalized rewrites into `domain`: per input the best (rerank.py) of the greedy one, one greedy
        rewrite per guidance weight of `ladder`, candidates - 1 samples drawn under decode.seed (so the
        same input gives the same output), the `nbest` hypotheses of a beam search of that width and the
        `retrieve` nearest training sentences of `domain`; with
        decode.passes P > 1, the winner is rewritten again the same way (no retrieval), P - 1 times, and
        every pass's candidates compete, scored against the input."""
        from .rerank import load_style_classifier

        if self.style is None and self.cfg.decode.style_weight:
            self.style = load_style_classifier(self.run_dir, self.cfg, self.tok.vocab_size, self.device)
        sources = self.tok.encode(norm, self.cfg.data.max_len)
        scores: list[dict[str, float]] = [{} for _ in norm]     # per input: candidate -> score, in drafted order
        current = list(norm)
        for p in range(self.cfg.decode.passes):
            drafted = self.drafts(current, domain, candidates, batch_size, words, stats if p == 0 else None,
                                  guidance, ladder, retrieve if p == 0 else 0, seed=self.cfg.decode.seed + p,
                                  nbest=nbest)
            new = [(i, text) for i in range(len(norm)) if sources[i]
                   for text in dict.fromkeys(drafted[i]) if text not in scores[i]]   # each scored once
            values = self.scored([norm[i] for i, _ in new], [sources[i] for i, _ in new], [t for _, t in new], domain)
            for (i, text), value in zip(new, values.tolist()):
                scores[i][text] = value
            current = [max(scores[i], key=scores[i].get) if sources[i] else drafted[i][0] for i in range(len(norm))]
        return current

    def drafts(self, norm: list[str], domain: str, candidates: int, batch_size: int, words: list[int] | None,
               stats: dict | None, guidance: float, ladder: list[float], retrieve: int, seed: int,
               nbest: int = 0) -> list[list[str]]:
        """Per input the candidates of one pass: the greedy rewrite(s), candidates - 1 samples under `seed`, the
        `nbest` hypotheses of beam search and the `retrieve` nearest training sentences of `domain`."""
        d = self.cfg.decode
        gen, max_len = self.generator_for(domain), self.cfg.train.max_gen_len
        n, extra, away = len(norm), candidates - 1, self.other_domain(domain)
        greedy = [transfer_normalized(gen, self.tok, norm, domain, max_len=max_len, batch_size=batch_size,
                                      words=words, stats=stats if k == 0 else None, guidance=w, away=away)
                  for k, w in enumerate([guidance, *ladder])]
        drawn: list[str] = []
        if extra:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                drawn = transfer_normalized(gen, self.tok, [t for t in norm for _ in range(extra)], domain,
                                            sample=True, temperature=d.temperature, max_len=max_len,
                                            batch_size=batch_size,
                                            words=[w for w in words for _ in range(extra)] if words else None,
                                            stats=stats, guidance=guidance, away=away)
        beams = (transfer_normalized(gen, self.tok, norm, domain, beam=nbest, nbest=nbest, max_len=max_len,
                                     batch_size=batch_size, words=words) if nbest else [])
        found = self.retrieved(norm, domain, retrieve) if retrieve else [[] for _ in norm]
        return [[*(g[i] for g in greedy), *drawn[i * extra:(i + 1) * extra], *beams[i * nbest:(i + 1) * nbest],
                 *found[i]] for i in range(n)]

    def scored(self, norm: list[str], sources: list[list[int]], candidates: list[str], domain: str) -> torch.Tensor:
        """The reranker's score (rerank.best_candidates) of each candidate (normalized) as a rewrite of the
        input beside it (normalized, and its ids), (M,). The sentence encoder, where decode.semantic_weight
        or decode.semantic_style reads it, embeds each distinct text once."""
        from .models.prompted import PromptedLM
        from .rerank import best_candidates, content_logprob
        from .rewards import log_cosine

        if not candidates:
            return torch.zeros(0)
        d, max_len = self.cfg.decode, self.cfg.train.max_gen_len
        fluency = semantic = second = None
        if d.fluency_weight and (not d.fluency_domains or domain in d.fluency_domains):
            if self.fluency is None:
                self.fluency = PromptedLM.load(d.fluency_lm or self.cfg.generator.init, device=self.device)
            fluency = torch.tensor(self.fluency.logprob(candidates)[0])
        if d.semantic_weight or d.semantic_style:
            distinct = list(dict.fromkeys([*candidates, *(norm if d.semantic_weight else [])]))
            at = {text: j for j, text in enumerate(distinct)}
            emb = self.sentence_encoder().embed(distinct)
            out = emb[[at[t] for t in candidates]]
            if d.semantic_weight:
                semantic = log_cosine(emb[[at[t] for t in norm]], out, [not t.strip() for t in candidates])
            if d.semantic_style:
                second = self.embedding_style().probabilities(out.to(self.device)).cpu()[:, self.domains.index(domain)]
        away, ids = self.other_domain(domain), self.tok.encode(candidates, max_len)
        direct = (content_logprob(self.generator_for(domain), ids, sources, self.tok.domain_ids[domain])
                  if d.direct_weight else None)
        _, table = best_candidates(self.style, self.generator_for(away), sources, [[y] for y in ids],
                                   self.domains.index(domain), self.tok.domain_ids[away], d.style_weight,
                                   d.content_weight, fluency, d.fluency_weight, semantic, d.semantic_weight, second,
                                   d.length_penalty, direct, d.direct_weight)
        return table[:, 0].cpu()

    def transfer(self, texts: list[str], to: str | list[str] | None = None, beam: int = 1, sample: bool = False,
                 temperature: float = 1.0, tokenized: bool = False, batch_size: int = 256,
                 normalized: bool = False, max_words: int | None = None, ratio: float | None = None,
                 stats: dict | None = None, candidates: int | None = None,
                 guidance: float | None = None) -> list[str]:
        """Rewrite `texts` into domain `to`: one domain, one per text, or None for "the other one"
        (two-domain tasks; each text's domain is detected).

        `tokenized=True` returns the normalized (tokenized) form used by benchmarks; `normalized=True`
        says the texts already are in that form. Models with length control (summarization) write
        `max_words` words, or `ratio` times the input's words, or by default the target domain's median
        length; `stats["cut"]` counts outputs the hard cap had to shorten (see `transfer_normalized`).
        `candidates` > 1 reranks the greedy rewrite and candidates - 1 samples by the run's reward
        (rerank.py); None takes the run's decode.candidates for greedy decoding. `guidance` > 0 steers a
        causal generator away from the source domain (CausalGenerator.guided); None takes decode.guidance.
        With guidance on, the greedy rewrites at decode.guidance_candidates compete too, unless candidates=1;
        so do the decode.retrieve nearest training sentences of the target domain and the decode.nbest
        hypotheses of beam search, if the run asks for them.
        """
        self.check_beam(beam)
        guidance = self.guidance_for(guidance, beam)
        ladder = self.ladder_for(candidates, beam, sample, guidance)
        retrieve, nbest = self.extras_for(candidates, beam, sample)
        candidates = self.candidates_for(candidates, beam, sample)
        temperature = check_temperature(temperature)
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
            if candidates > 1 or ladder or retrieve or nbest:
                out = self.reranked([norm[i] for i in rows], domain, candidates, batch_size, row_words, stats,
                                    guidance, ladder, retrieve, nbest)
            else:
                out = transfer_normalized(self.generator_for(domain), self.tok, [norm[i] for i in rows], domain,
                                          beam=beam, sample=sample, temperature=temperature,
                                          max_len=self.cfg.train.max_gen_len, batch_size=batch_size,
                                          words=row_words, stats=stats, guidance=guidance,
                                          away=self.other_domain(domain))
            for i, text in zip(rows, out):
                outputs[i] = text if tokenized else self.tok.detokenize(text)
        return outputs


def load(run_dir: str | Path | None = None, task: str = "sentiment", device: str | None = None,
         engine: str = "torch", quantization: str = "int8") -> StyleTransfer:
    """Load a run for inference; without `run_dir`, the newest run of `task` under ./runs. `engine`:
    torch, or ctranslate2 (fast.py: the generators converted to `quantization` weights)."""
    return StyleTransfer(run_dir or latest_run(task), device, engine, quantization)
