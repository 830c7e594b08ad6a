"""Pseudo-parallel pairs mined from unpaired corpora: the data of the bootstrap phase.

The strongest unpaired systems do not start their adversarial or RL phase from an autoencoder that
copies: they first learn, by maximum likelihood, from (source, pseudo-target) pairs mined from the two
unpaired corpora (DualRL, Luo et al. 2019; IMaT, Jin et al. 2019). A miner never sees a labelled pair:
it reads the training text of each domain and nothing else. Each kind of task has its own miner,
behind one interface, and the trainer's bootstrap phase learns from any of them:

    miner = MINERS[name](cfg.miner, scheme)
    pairs = miner.mine(texts_by_domain)          # {(src, tgt): Pairs}
    miner.transfer(texts, src, tgt)              # the miner alone as a system (a baseline row)

Miners here:
- `template`: TemplateBased (Li et al. 2018, "Delete, Retrieve, Generate"). Style markers are the
  n-grams far more frequent in one domain (salience); a sentence's markers are deleted, the target-domain
  sentence with the most similar content (TF-IDF cosine over non-marker units) is retrieved, and its
  markers fill the slots.
- `retrieve`: the retrieved nearest target-domain sentence itself is the pseudo target (IMaT's and
  TSST's starting point).
- `extract` (summarization): each sentence of the first domain (articles) is summarised into the second
  (headlines) by word-extraction search (extract.py, Schumann et al. 2020): the k of its words, in order,
  that a headline n-gram model finds fluent and that keep the article's rare words; k is drawn from the
  headlines' lengths, so the pairs also teach the length request. One direction is mined; the bootstrap
  trains the reverse (pseudo summary -> article) as back-translation.
- `wordbyword` (translation): each sentence translated piece by piece through the run's cross-lingual
  lexicon (train.crosslingual), a target-language n-gram model choosing among each piece's candidates
  (Kim et al. 2018); the reverse pairs teach the generator to turn word-by-word output into real text.
- `mine` (translation; mining.py): real sentences of both languages paired as translations when a
  pretrained multilingual encoder (miner.encoder, multilingual-e5-small) finds them mutual nearest
  neighbours by margin score (Artetxe & Schwenk 2019; CRISS).

Text is cut into units by a Segmenter (`miner.units`): `words` (whitespace words, every CJK character a
unit of its own: character n-gram markers for Chinese) or `pieces` (the run's SentencePiece pieces: for
Chinese, which has no spaces, the unsupervised segmenter's pieces are the nearest thing to words, and
markers no longer cut words in half, "垃|圾").
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from .extract import BOS, EOS, Extractor, NgramLM, idf_weights
from .margin import MiningMiner
from .pairs import Pairs
from ..tokenizer import _CJK, _CJK_GAP, units

Ngram = tuple[str, ...]


_CJK_CHAR = re.compile(f"[{_CJK}]")


def join_units(parts: list[str]) -> str:
    """Units -> text: words joined by spaces, none beside a CJK character (the `zh` form keeps none)."""
    out = ""
    for unit in parts:
        if out and not (_CJK_CHAR.fullmatch(out[-1]) or _CJK_CHAR.fullmatch(unit[0])):
            out += " "
        out += unit
    return out


class WordUnits:
    """miner.units = words: whitespace words, every CJK character a unit (tokenizer.units)."""

    name = "words"

    @staticmethod
    def split(text: str) -> list[str]:
        return units(text)

    @staticmethod
    def join(parts: list[str]) -> str:
        return join_units(parts)


class PieceUnits:
    """miner.units = pieces: the SentencePiece pieces of a tokenizer (a `Tokenizer` or anything with
    `.sp`); joined back by SentencePiece's own rule (U+2581 starts a word), without the spaces a
    word-initial piece leaves between two CJK characters once moved into a Chinese sentence."""

    name = "pieces"

    def __init__(self, tok):
        self.sp = tok.sp

    def split(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    @staticmethod
    def join(parts: list[str]) -> str:
        return _CJK_GAP.sub("", "".join(parts).replace("\u2581", " ").strip())


def segmenter(name: str, tok=None):
    """The Segmenter of miner.units; `pieces` needs the run's tokenizer."""
    if name == "words":
        return WordUnits()
    if tok is None:
        raise ValueError("miner.units=pieces needs the run's tokenizer")
    return PieceUnits(tok)


class StyleMarkers:
    """Attribute markers by salience (Li et al. 2018, section 3.1):

        s(u, v) = (f(u, v) + lambda) / (f(u, v') + lambda)

    for an n-gram u (n <= max_ngram) and domain v against the other domain v', with f the count scaled to
    the mean domain size (so an unbalanced corpus does not make every n-gram of the bigger domain a
    marker). u is a marker of v when s(u, v) >= threshold, it occurs at least min_count times in v, and
    it is more salient than each n-gram inside it: "pizza was blargish" is frequent in v only because
    "blargish" is, and taking it as a marker would delete the content words "pizza was" with it, while
    "not good" is a marker of its own.
    """

    def __init__(self, units_by_domain: dict[str, list[list[str]]], max_ngram: int = 4, threshold: float = 15.0,
                 smoothing: float = 1.0, min_count: int = 5):
        self.max_ngram = max_ngram
        domains = list(units_by_domain)
        if len(domains) != 2:
            raise ValueError(f"style markers need exactly two domains, got {domains}")
        counts = {d: Counter(g for sent in sents for g in self.ngrams(sent)) for d, sents in units_by_domain.items()}
        mean_size = sum(len(s) for s in units_by_domain.values()) / 2
        scale = {d: mean_size / max(1, len(s)) for d, s in units_by_domain.items()}
        self.markers: dict[str, dict[Ngram, float]] = {}
        for d, other in (domains, domains[::-1]):
            def salience(gram):
                return (counts[d].get(gram, 0) * scale[d] + smoothing) / (counts[other].get(gram, 0) * scale[other] + smoothing)

            candidates = {g: salience(g) for g, c in counts[d].items() if c >= min_count}
            self.markers[d] = {g: s for g, s in candidates.items() if s >= threshold and all(
                s > salience(g[i:j]) for i in range(len(g)) for j in range(i + 1, len(g) + 1) if j - i < len(g))}

    def ngrams(self, sent: list[str]):
        for n in range(1, self.max_ngram + 1):
            for i in range(len(sent) - n + 1):
                yield tuple(sent[i:i + n])

    def split(self, sent: list[str], domain: str) -> tuple[list[str | None], list[Ngram]]:
        """(template, markers): the sentence with each run of `domain`'s markers replaced by one slot
        (None), and the marker spans in order. Spans are matched left to right, longest first."""
        table = self.markers[domain]
        template: list[str | None] = []
        found: list[Ngram] = []
        i = 0
        while i < len(sent):
            for n in range(min(self.max_ngram, len(sent) - i), 0, -1):
                gram = tuple(sent[i:i + n])
                if gram in table:
                    if template and template[-1] is None:          # adjacent markers: one slot
                        found[-1] = found[-1] + gram
                    else:
                        template.append(None)
                        found.append(gram)
                    i += n
                    break
            else:
                template.append(sent[i])
                i += 1
        return template, found


def fill(template: list[str | None], markers: list[Ngram]) -> list[str]:
    """Slots of `template` filled with `markers` in order (TemplateBased): a surplus marker joins the
    last slot, a slot without one is dropped."""
    out: list[str] = []
    slots = sum(x is None for x in template)
    k = 0
    for unit in template:
        if unit is not None:
            out.append(unit)
            continue
        take = markers[k:] if k == slots - 1 else markers[k:k + 1]
        for m in take:
            out.extend(m)
        k += 1
    return out


# ---------------------------------------------------------------- retrieval
class ContentIndex:
    """Nearest neighbours by content: TF-IDF (sublinear tf, smooth idf) over units, cosine similarity,
    queried in batches of sparse products (scikit-learn + scipy). Units in more than `max_df` of the
    documents ("the", ".", "was") are left out: they say little about content, and they are what would
    make every product dense (the cost of a query is the length of its units' posting lists)."""

    def __init__(self, docs: list[list[str]], vocabulary_from: list[list[str]] | None = None, max_df: float = 1.0):
        self.vectorizer = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, max_df=max_df, dtype=np.float32)
        self.vectorizer.fit(vocabulary_from if vocabulary_from is not None else docs)
        self.matrix = self.vectorizer.transform(docs).T.tocsr()                 # (V, N)

    def search(self, queries: list[list[str]], k: int = 1, chunk: int = 1024,
               progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(indices, cosines), each (Q, k), best first; index -1 (cosine 0) where fewer than k documents
        share a unit with the query."""
        q = self.vectorizer.transform(queries)                                  # (Q, V), rows L2-normalized
        idx = np.full((len(queries), k), -1, dtype=np.int64)
        sim = np.zeros((len(queries), k), dtype=np.float32)
        for start in range(0, len(queries), chunk):
            scores = (q[start:start + chunk] @ self.matrix).tocsr()            # (c, N), sparse
            for row in range(scores.shape[0]):
                lo, hi = scores.indptr[row], scores.indptr[row + 1]
                values, columns = scores.data[lo:hi], scores.indices[lo:hi]
                top = np.argpartition(-values, k - 1)[:k] if len(values) > k else np.arange(len(values))
                top = top[np.argsort(-values[top], kind="stable")]
                idx[start + row, : len(top)], sim[start + row, : len(top)] = columns[top], values[top]
            if progress:
                progress(min(chunk, len(queries) - start))
        return idx, sim


# ---------------------------------------------------------------- miners
class TemplateMiner:
    """Salience markers, content retrieval, template filling (Li et al. 2018's TemplateBased).

    For x of domain s and target domain t: delete s's markers from x (template with slots), retrieve the
    t-sentence y whose content (y without t's markers) is most similar to x's content and that has
    markers, and fill x's slots with y's markers. Pairs of sentences without any marker are not mined
    (there is nothing to rewrite); `transfer` returns them unchanged. The pair's score is the cosine of
    the retrieval.
    """

    name = "template"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None):
        self.cfg, self.log = cfg, log
        self.seg = segment or WordUnits()
        self.markers: StyleMarkers | None = None
        self.units: dict[str, list[list[str]]] = {}
        self.index: dict[str, ContentIndex] = {}
        self.split: dict[str, list[tuple[list[str | None], list[Ngram]]]] = {}     # template, markers
        self.content: dict[str, list[list[str]]] = {}
        self.found: dict[str, list[list[Ngram]]] = {}
        self.retrieved: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self.tables: dict[tuple[str, str], dict[Ngram, Ngram]] = {}

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "TemplateMiner":
        started = time.time()
        self.units = {d: [self.seg.split(t) for t in texts] for d, texts in texts_by_domain.items()}
        c = self.cfg
        self.markers = StyleMarkers(self.units, c.max_ngram, c.salience, c.smoothing, c.min_count)
        self.log("style markers: " + ", ".join(f"{d} {len(m)}" for d, m in self.markers.markers.items())
                 + f" ({time.time() - started:.0f} s)")
        vocabulary = []
        for d, sents in self.units.items():
            self.split[d] = [self.markers.split(s, d) for s in sents]
            self.content[d] = [[u for u in tpl if u is not None] for tpl, _ in self.split[d]]
            self.found[d] = [m for _, m in self.split[d]]
            vocabulary += self.content[d]
        for d in self.units:
            self.index[d] = ContentIndex(self.content[d], vocabulary, self.cfg.max_df)
        self.log(f"content index built ({time.time() - started:.0f} s)")
        return self

    def retrieve(self, content: list[list[str]], tgt: str, progress=None) -> tuple[list[int], list[float]]:
        """For each content, the most similar target sentence that has markers, and the cosine (-1: none)."""
        idx, sim = self.index[tgt].search(content, self.cfg.neighbours, progress=progress)
        has = np.array([bool(m) for m in self.found[tgt]] + [False])             # (index -1: no neighbour)
        best, score = [], []
        for row_idx, row_sim in zip(idx, sim):
            ok = np.flatnonzero(has[row_idx])
            best.append(int(row_idx[ok[0]]) if len(ok) else -1)
            score.append(float(row_sim[ok[0]]) if len(ok) else -1.0)
        return best, score

    def neighbours(self, src: str, tgt: str, progress=None) -> tuple[list[int], list[float]]:
        """`retrieve` for every training sentence of src, computed once."""
        if (src, tgt) not in self.retrieved:
            self.retrieved[(src, tgt)] = self.retrieve(self.content[src], tgt, progress)
        return self.retrieved[(src, tgt)]

    def marker_table(self, src: str, tgt: str) -> dict[Ngram, Ngram]:
        """src marker -> the tgt marker found most often in its slot over all training sentences and their
        neighbours (slot i of a sentence with k slots <-> marker i of a neighbour with k markers), when
        seen at least twice. One retrieval is noisy; the vote over the corpus pairs "worst" with "best"."""
        if (src, tgt) not in self.tables:
            best, _ = self.neighbours(src, tgt)
            votes: dict[Ngram, Counter] = {}
            for found, j in zip(self.found[src], best):
                if found and j >= 0 and len(found) == len(self.found[tgt][j]):
                    for m, m_tgt in zip(found, self.found[tgt][j]):
                        votes.setdefault(m, Counter())[m_tgt] += 1
            top = {m: c.most_common(1)[0] for m, c in votes.items()}
            self.tables[(src, tgt)] = {m: m_tgt for m, (m_tgt, n) in top.items() if n >= 2}
        return self.tables[(src, tgt)]

    def fill_slots(self, split, best: list[int], src: str, tgt: str) -> list[list[str] | None]:
        """Each template's slots filled (miner.fill): `retrieved` with its neighbour's markers in order;
        `aligned` with marker_table's counterpart of each of its own markers (the neighbour's marker in
        that slot where the table has none). None where x has no marker or no neighbour has one."""
        table = self.marker_table(src, tgt) if self.cfg.fill == "aligned" else None
        out = []
        for (tpl, found), j in zip(split, best):
            if not found or j < 0:
                out.append(None)
                continue
            theirs = self.found[tgt][j]
            if table is not None:
                theirs = [table[m] if m in table else theirs[i] for i, m in enumerate(found) if m in table or i < len(theirs)]
            out.append(fill(tpl, theirs))
        return out

    def rewrite(self, sents: list[list[str]], src: str, tgt: str, progress=None) -> tuple[list[list[str] | None], list[float]]:
        """Template rewrites of `sents` (units of domain src) into tgt (see fill_slots), and the
        retrieval's cosines."""
        split = [self.markers.split(s, src) for s in sents]
        best, score = self.retrieve([[u for u in tpl if u is not None] for tpl, _ in split], tgt, progress)
        return self.fill_slots(split, best, src, tgt), score

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        if self.markers is None:
            self.fit(texts_by_domain)
        pairs = {}
        a, b = list(texts_by_domain)
        for src, tgt in ((a, b), (b, a)):
            started = time.time()
            bar = progress_factory(len(self.units[src]), f"mine {src}->{tgt}") if progress_factory else None
            best, scores = self.neighbours(src, tgt, bar.update if bar else None)
            if bar:
                bar.close()
            outs = self.fill_slots(self.split[src], best, src, tgt)
            keep = [(self.seg.join(s), self.seg.join(o), sc) for s, o, sc in zip(self.units[src], outs, scores) if o]
            pairs[(src, tgt)] = Pairs(src, tgt, [k[0] for k in keep], [k[1] for k in keep], [k[2] for k in keep])
            self.log(f"{src}->{tgt}: {len(keep)} pairs of {len(outs)} sentences ({time.time() - started:.0f} s)")
        return pairs

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The miner alone as a system: each text rewritten, unchanged where it has no marker."""
        sents = [self.seg.split(t) for t in texts]
        outs, _ = self.rewrite(sents, src, tgt)
        return [self.seg.join(o if o is not None else s) for s, o in zip(sents, outs)]


class RetrievalMiner(TemplateMiner):
    """The nearest target-domain sentence by content (that has markers) is the pseudo target (IMaT /
    TSST's retrieval)."""

    name = "retrieve"

    def fill_slots(self, split, best, src, tgt):
        return [list(self.units[tgt][j]) if j >= 0 else None for j in best]


def rewrite_all(texts: list[str], rewrite: Callable, desc: str, progress_factory=None):
    """Each text through `rewrite(text) -> (pseudo target, score) | None` (None: no pair), with a progress
    bar: (sources, targets, scores, seconds)."""
    started = time.time()
    bar = progress_factory(len(texts), desc) if progress_factory else None
    sources, targets, scores = [], [], []
    for text in texts:
        done = rewrite(text)
        if done is not None:
            sources.append(text)
            targets.append(done[0])
            scores.append(done[1])
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return sources, targets, scores, time.time() - started


class ExtractMiner:
    """Pseudo summaries by word-extraction search (see the module docstring and extract.py). The pair's score
    is the search objective J."""

    name = "extract"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None):
        if segment is not None and segment.name != "words":
            raise ValueError("the extract miner works on words: set miner.units=words")
        self.cfg, self.log = cfg, log
        self.extractor: Extractor | None = None
        self.lengths: list[int] = []

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "ExtractMiner":
        started = time.time()
        articles, headlines = ([t.split() for t in texts] for texts in texts_by_domain.values())
        c = self.cfg
        rescorer = None
        if c.rescore_lm:
            from ..models.prompted import PromptedLM

            rescorer = PromptedLM.load(c.rescore_lm, template=c.rescore_prompt)
        self.extractor = Extractor(NgramLM(headlines, c.lm_order), idf_weights(articles), c.sim_weight,
                                   c.search_steps, c.restarts, rescorer=rescorer, rescore_top=c.rescore_top,
                                   rescore_weight=c.rescore_weight)
        self.lengths = [len(h) for h in headlines if h]
        self.log(f"headline {c.lm_order}-gram model and article IDF ({time.time() - started:.0f} s)")
        return self

    def summarize(self, words: list[str], k: int) -> tuple[list[str], float]:
        chosen, score, _ = self.extractor.search(words, k)
        return [words[i] for i in chosen], score

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        if self.extractor is None:
            self.fit(texts_by_domain)
        src, tgt = list(texts_by_domain)
        articles = texts_by_domain[src][: self.cfg.max_sources or None]
        lengths = iter(np.random.default_rng(0).choice(self.lengths, len(articles)))

        def summary(text: str):
            words, k = text.split(), int(next(lengths))
            if len(words) < 2:
                return None
            chosen, score = self.summarize(words, min(k, len(words) - 1))
            return " ".join(chosen), score

        sources, targets, scores, seconds = rewrite_all(articles, summary, f"extract {src}->{tgt}", progress_factory)
        self.log(f"{src}->{tgt}: {len(sources)} pseudo summaries of {len(articles)} articles in {seconds:.0f} s "
                 f"({len(articles) / max(seconds, 1e-9):.0f} articles/s)")
        return {(src, tgt): Pairs(src, tgt, sources, targets, scores)}

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The search alone as a summarizer: miner.words words of each text (all of a shorter one)."""
        out = []
        for text in texts:
            words = text.split()
            out.append(" ".join(self.summarize(words, min(self.cfg.words, len(words)))[0]) if words else "")
        return out


def both_ways(texts_by_domain: dict) -> list[tuple[str, str]]:
    """(a, b) and (b, a) for the two domains."""
    a, b = texts_by_domain
    return [(a, b), (b, a)]


PUNCTUATION = {"。": ".", ".": "。", "、": ","}    # full stops of Chinese and English text, enumeration comma


class WordByWordMiner:
    """Translation: each sentence translated piece by piece through the run's cross-lingual lexicon
    (train.crosslingual), the choice among each piece's candidates made by a target-language n-gram model
    (Kim et al. 2018). A beam search over positions maximises

        sum_i [ log q(y_i | x_i) + lm_weight * log S_LM(y_i | y_<i) ] + lm_weight * log S_LM(</s> | y),
        q(. | x_i) = softmax(CSLS(x_i, .) / temperature) over x_i's `candidates` nearest pieces,

    one output piece per input piece. A piece the target language uses too (digits, punctuation, names)
    may stay itself, at log q = 0; a piece outside the lexicon that the target does not use is dropped.
    Both directions are mined. The bootstrap trains each pair both ways, so the reverse direction learns
    to turn word-by-word output into a real sentence: Kim et al.'s denoising step, learnt by the generator
    itself. The pair's score is the path's score per piece."""

    name = "wordbyword"

    def __init__(self, cfg, log: Callable[[str], None] = print, segment=None, lexicon=None):
        if segment is None or segment.name != "pieces":
            raise ValueError("the wordbyword miner translates SentencePiece pieces: set miner.units=pieces")
        if lexicon is None:
            raise ValueError("the wordbyword miner needs cross-lingual embeddings: set train.crosslingual")
        self.cfg, self.log, self.segment, self.lexicon = cfg, log, segment, lexicon
        self.lms: dict[str, NgramLM] = {}
        self.options: dict[tuple[str, str], dict[str, list[tuple[str, float]]]] = {}

    def fit(self, texts_by_domain: dict[str, list[str]]) -> "WordByWordMiner":
        started = time.time()
        c, sp = self.cfg, self.segment.sp
        self.lms = {lang: NgramLM([self.segment.split(t) for t in texts], c.lm_order)
                    for lang, texts in texts_by_domain.items()}
        for src, tgt in both_ways(texts_by_domain):
            src_ids, tgt_ids, scores = self.lexicon.candidates(src, tgt, c.candidates)
            logq = torch.log_softmax(scores / c.temperature, dim=1)
            self.options[(src, tgt)] = {
                sp.id_to_piece(int(x)): [(sp.id_to_piece(int(y)), float(q)) for y, q in zip(ys, qs)]
                for x, ys, qs in zip(src_ids, tgt_ids, logq)}
        self.log(f"{c.lm_order}-gram piece models of {', '.join(self.lms)} and {c.candidates} candidates "
                 f"per piece ({time.time() - started:.0f} s)")
        return self

    @staticmethod
    def choices(piece: str, options: dict, lm: NgramLM) -> list[tuple[str, float]]:
        """(target piece, log q) options of one source piece: the lexicon's candidates, plus the piece itself
        or its punctuation counterpart ("。" <-> ".", which NFKC does not unify) at log q = 0 when the
        target language uses it. The bare word-start piece "▁" is dropped: each target piece carries its
        own."""
        if piece == "▁":
            return []
        same = [p for p in (piece, PUNCTUATION.get(piece)) if p and (p,) in lm.counts[1]]
        return [(p, 0.0) for p in same] + [c for c in options.get(piece, []) if c[0] not in same]

    def translate(self, pieces: list[str], src: str, tgt: str) -> tuple[list[str], float]:
        """The best path's pieces and its score per piece (see the class docstring)."""
        lm, options, w = self.lms[tgt], self.options[(src, tgt)], self.cfg.lm_weight
        context = lambda out: tuple(([BOS] * (lm.order - 1) + out)[-(lm.order - 1):])  # noqa: E731
        beam: list[tuple[float, list[str]]] = [(0.0, [])]
        for piece in pieces:
            choices = self.choices(piece, options, lm)
            if not choices:
                continue
            grown = [(score + q + w * lm.logp(context(out), y), out + [y])
                     for score, out in beam for y, q in choices]
            beam = sorted(grown, key=lambda h: -h[0])[: self.cfg.beam]
        score, out = max(((s + w * lm.logp(context(o), EOS), o) for s, o in beam), key=lambda h: h[0])
        return out, score / (len(out) + 1)

    def mine(self, texts_by_domain: dict[str, list[str]], progress_factory=None) -> dict[tuple[str, str], Pairs]:
        if not self.lms:
            self.fit(texts_by_domain)
        pairs = {}
        for src, tgt in both_ways(texts_by_domain):
            texts = texts_by_domain[src][: self.cfg.max_sources or None]

            def translation(text: str, src=src, tgt=tgt):
                out, score = self.translate(self.segment.split(text), src, tgt)
                return (self.segment.join(out), score) if out else None

            sources, targets, scores, seconds = rewrite_all(texts, translation, f"word by word {src}->{tgt}",
                                                            progress_factory)
            self.log(f"{src}->{tgt}: {len(sources)} word-by-word translations of {len(texts)} sentences in "
                     f"{seconds:.0f} s ({len(texts) / max(seconds, 1e-9):.0f} sentences/s)")
            pairs[(src, tgt)] = Pairs(src, tgt, sources, targets, scores)
        return pairs

    def transfer(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """The miner alone as a translator (a baseline row)."""
        return [self.segment.join(self.translate(self.segment.split(t), src, tgt)[0]) for t in texts]


MINERS = {"template": TemplateMiner, "retrieve": RetrievalMiner, "extract": ExtractMiner,
          "wordbyword": WordByWordMiner, "mine": MiningMiner}


def make_miner(name: str, cfg, log=print, segment=None, lexicon=None):
    """MINERS[name] with the run's segmenter and, for `wordbyword`, its cross-lingual lexicon."""
    if name not in MINERS:
        raise ValueError(f"unknown miner {name!r}; choose from {', '.join(MINERS)}")
    return MINERS[name](cfg, log, segment, **({"lexicon": lexicon} if name == "wordbyword" else {}))


def mine_pairs(name: str, cfg, texts_by_domain: dict[str, list[str]], out_dir: Path, log=print,
               progress_factory=None, segment=None, lexicon=None) -> dict[tuple[str, str], Pairs]:
    """Mine with MINERS[name] and write `<out_dir>/<src>2<tgt>.tsv` (+ mining.json: settings, counts,
    seconds), or read them back when they are already there (a resumed run)."""
    out_dir = Path(out_dir)
    info_file = out_dir / "mining.json"
    if info_file.exists():
        info = json.loads(info_file.read_text())
        return {(p["src"], p["tgt"]): Pairs.load(out_dir / p["file"]) for p in info["pairs"]}
    started = time.time()
    pairs = make_miner(name, cfg, log, segment, lexicon).mine(texts_by_domain, progress_factory)
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = []
    for (src, tgt), p in pairs.items():
        p.save(out_dir / f"{src}2{tgt}.tsv")
        listing.append({"src": src, "tgt": tgt, "file": f"{src}2{tgt}.tsv", "pairs": len(p),
                        "of": len(texts_by_domain[src]),
                        "mean_score": sum(p.scores) / max(1, len(p))})
    info = {"miner": name, "settings": dict(vars(cfg)), "seconds": round(time.time() - started, 1), "pairs": listing}
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    log(f"mined pseudo-parallel pairs ({name}) in {info['seconds']:.0f} s: "
        + ", ".join(f"{p['src']}->{p['tgt']} {p['pairs']}" for p in listing))
    return pairs
