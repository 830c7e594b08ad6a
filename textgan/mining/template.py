"""The `template` and `retrieve` miners (sentiment and other styles): Li et al. 2018, "Delete, Retrieve,
Generate", and its retrieval step alone (IMaT's and TSST's starting point).

Style markers are the n-grams u far more frequent in one domain v than in the other, v', by salience

    s(u, v) = (f(u, v) + lambda) / (f(u, v') + lambda)

(f: counts scaled to the mean domain size). For x of domain s and target domain t, `template` deletes s's
markers from x (a template with slots), retrieves the t-sentence y whose content (y without t's markers)
is most similar to x's content (TF-IDF cosine over non-marker units) and that has markers, and fills x's
slots with y's markers; `retrieve` takes y itself as the pseudo target. Both share the markers and the
content index (RetrievalMiner is TemplateMiner without the filling). The pair's score is the retrieval's
cosine.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from .pairs import Pairs
from .segment import WordUnits

Ngram = tuple[str, ...]


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

