"""Reranking at inference (a plan that `reranks`): per input, the candidates of candidates.drafts compete and
the input keeps the one scores.combine likes best. The greedy rewrite is candidate 0, so a plan with one
candidate and nothing else competing is plain greedy decoding, and ties keep it.

Retrieved candidates are the target domain's training sentences nearest to x by the sentence encoder
(candidates.Retrieval): real sentences, fluent by construction, that win only where they score above the
model's own rewrites (retrieval-augmented reranking; for translation the mined "neighbours, not
translations" compete with the model's translations).

With `passes` P > 1 the chosen candidate is rewritten again, P - 1 times (iterative refinement: a first
rewrite often turns one complaint and leaves the next standing); every pass's candidates join the earlier
ones, all scored against the original input x, so a later pass wins only where it scores higher.

The `Reranker` holds what scoring reads, each loaded on first use: the run's style classifier, the fluency
LM, the sentence encoder, the retrieval pools and the encoder's style classifier.
"""

from __future__ import annotations

import torch

from ..corpora import cache_dir
from ..models.prompted import PromptedLM
from ..pretrained.encoder import Encoder
from ..rewards import log_cosine
from .candidates import Retrieval, Writer, drafts
from .plan import DecodePlan, Scoring
from .scores import Features, combine, content_logprob, growth
from .style import embedding_style, load_style_classifier


class Reranker:
    """Reranking for one loaded run. `model` is the run as transfer.StyleTransfer loads it: its cfg, tok,
    domains, run_dir, device, generator_for(domain), other_domain(domain) and splits() are read."""

    def __init__(self, model):
        self.model = model
        self.style = None                    # the run's style classifier (style.safetensors)
        self.fluency = None                  # the fluency LM (decode.fluency_lm)
        self.encoder = None                  # the sentence encoder (decode.encoder)
        self.retrieval = None                # the target domains' training sentences to retrieve from
        self.second_style = None             # the style classifier over the encoder's embeddings

    def style_classifier(self):
        """The run's style classifier (a clear error for a run trained without one)."""
        if self.style is None:
            m = self.model
            self.style = load_style_classifier(m.run_dir, m.cfg, m.tok.vocab_size, m.device)
        return self.style

    def sentence_encoder(self) -> Encoder:
        if self.encoder is None:
            self.encoder = Encoder.load(self.model.cfg.decode.encoder, device=self.model.device)
        return self.encoder

    def retrieved(self, norm: list[str], domain: str, r: int) -> list[list[str]]:
        """The r training sentences of `domain` nearest to each normalized input."""
        if self.retrieval is None:
            self.retrieval = Retrieval(self.sentence_encoder(), self.model.splits()[0], cache_dir("embeddings"))
        return self.retrieval.nearest(norm, domain, r)

    def embedding_style(self):
        """The run's style classifier over the encoder's embeddings, fitted into the run on first use."""
        if self.second_style is None:
            m = self.model
            self.second_style = embedding_style(m.run_dir, self.sentence_encoder(), m.domains, m.splits(),
                                                cache_dir("embeddings")).to(m.device)
        return self.second_style

    def rewrite(self, norm: list[str], domain: str, plan: DecodePlan, batch_size: int = 256,
                words: list[int] | None = None, stats: dict | None = None) -> list[str]:
        """Normalized rewrites into `domain`, per input the best of each pass's drafts (module docstring)."""
        m = self.model
        if plan.scoring.style:
            self.style_classifier()          # before any decoding: a run without one says so at once
        writer = Writer(m.generator_for(domain), m.tok, domain, m.other_domain(domain), batch_size)
        sources = m.tok.encode(norm, m.cfg.data.max_len)
        scores: list[dict[str, float]] = [{} for _ in norm]     # per input: candidate -> score, in drafted order
        current = list(norm)
        for p in range(plan.passes):
            found = self.retrieved(current, domain, plan.retrieve) if plan.retrieve and p == 0 else None
            drafted = drafts(writer, current, plan, words, stats if p == 0 else None, plan.seed + p, found)
            new = [(i, text) for i in range(len(norm)) if sources[i]
                   for text in dict.fromkeys(drafted[i]) if text not in scores[i]]   # each scored once
            values = self.score([norm[i] for i, _ in new], [sources[i] for i, _ in new], [t for _, t in new], domain,
                                plan.scoring)
            for (i, text), value in zip(new, values.tolist()):
                scores[i][text] = value
            current = [max(scores[i], key=scores[i].get) if sources[i] else drafted[i][0] for i in range(len(norm))]
        return current

    def score(self, norm: list[str], sources: list[list[int]], candidates: list[str], domain: str,
              scoring: Scoring) -> torch.Tensor:
        """The score (scores.combine) of each candidate (normalized) as a rewrite of the input beside it
        (normalized, and its ids), (M,)."""
        if not candidates:
            return torch.zeros(0)
        return combine(self.features(norm, sources, candidates, domain, scoring), scoring).cpu()

    def features(self, norm: list[str], sources: list[list[int]], candidates: list[str], domain: str,
                 scoring: Scoring) -> Features:
        """What scoring reads of each candidate. The sentence encoder, where the semantic or the second style
        term reads it, embeds each distinct text once."""
        m = self.model
        away, ids = m.other_domain(domain), m.tok.encode(candidates, m.cfg.train.max_gen_len)
        f = Features(content_logprob(m.generator_for(away), sources, ids, m.tok.domain_ids[away]), growth(sources, ids))
        if scoring.style:
            style = self.style_classifier()
            f.style = style.probabilities([c or [] for c in ids], device=next(style.parameters()).device)[
                :, m.domains.index(domain)]
        if scoring.fluency_into(domain):
            if self.fluency is None:
                self.fluency = PromptedLM.load(m.cfg.decode.fluency_lm or m.cfg.generator.init, device=m.device)
            f.fluency = torch.tensor(self.fluency.logprob(candidates)[0])
        if scoring.semantic or scoring.semantic_style:
            distinct = list(dict.fromkeys([*candidates, *(norm if scoring.semantic else [])]))
            at = {text: j for j, text in enumerate(distinct)}
            emb = self.sentence_encoder().embed(distinct)
            out = emb[[at[t] for t in candidates]]
            if scoring.semantic:
                f.semantic = log_cosine(emb[[at[t] for t in norm]], out, [not t.strip() for t in candidates])
            if scoring.semantic_style:
                f.second_style = self.embedding_style().probabilities(out.to(m.device)).cpu()[:, m.domains.index(domain)]
        if scoring.direct:
            f.direct = content_logprob(m.generator_for(domain), ids, sources, m.tok.domain_ids[domain])
        return f
