"""Cross-lingual piece embeddings learnt from monolingual text, and the word-by-word translator they give.

Unsupervised translation (Lample et al. 2018; Artetxe et al. 2018) uses them three ways, all optional
(`train.crosslingual`): as a baseline (each piece replaced by its nearest piece in the other language),
to initialise the generator's embeddings, and as the first back-translation model (`bt_wordbyword_steps`).
The unit is a SentencePiece piece of the task's shared vocabulary: Chinese has no spaces, and frequent
pieces are whole words in both languages.

1. Monolingual vectors (Levy et al. 2015), per language over its `size` most frequent pieces:
       C[i, j]     = sum over occurrences of j at distance k <= window from i of 1/k
       PPMI[i, j]  = max(0, log P(i, j) / (P(i) P_0.75(j)))        (context counts smoothed by ^0.75)
       E           = U_d S_d^1/2                                    (truncated SVD of PPMI)
   rows then unit length, mean-centred, unit length again.
2. A seed dictionary. `unsupervised` (VecMap, Artetxe et al. 2018): a piece's row of sqrt(E E^T) = U S U^T,
   sorted, is its similarity *distribution*, which is comparable across languages; each frequent piece is
   paired with the piece of the other language whose sorted row is nearest. `anchors` (no bilingual
   dictionary either): identical strings, numerals and transliterated names (anchors.py). `cedict` (weak
   supervision, labelled as such): half of the CC-CEDICT headwords whose translation is one piece.
3. Self-learning: orthogonal maps W_x, W_z from the SVD of X_D^T Z_D = U S V^T (W_x = U, W_z = V, Procrustes),
   then a new dictionary from CSLS nearest neighbours in both directions (Conneau et al. 2018),
       CSLS(x, z) = 2 cos(x, z) - r_z(x) - r_x(z),   r = mean cosine to the k nearest of the other language,
   keeping each similarity with probability p (stochastic dictionary induction); p doubles when the
   objective stalls, and the loop stops when it stalls at p = 1.

Quality is measured by bilingual lexicon induction on the CC-CEDICT headwords that were not in a seed:
precision@1 of zh -> en (`evaluate_bli`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import anchors
from .corpora import corpus_dir, load_card, read_lines
from .tokenizer import EOS, Tokenizer

FIRST_PIECE = 4               # ids below it: PAD, UNK, BOS, EOS


def piece_vocab(seqs: list[list[int]], size: int, skip: set[int]) -> torch.Tensor:
    """The `size` most frequent piece ids of one language (ids in `skip` left out)."""
    counts = torch.bincount(torch.tensor([i for s in seqs for i in s], dtype=torch.long))
    for i in skip:
        if i < len(counts):
            counts[i] = 0
    top = counts.argsort(descending=True)[:size]
    return top[counts[top] > 0]


def cooccurrence(seqs: list[list[int]], vocab: torch.Tensor, window: int) -> torch.Tensor:
    """C [n, n]: 1/k-weighted counts of vocab pieces k <= window apart within a sentence (symmetric)."""
    n = len(vocab)
    index = torch.full((int(max(vocab.max().item(), max(max(s, default=0) for s in seqs))) + 1,), -1)
    index[vocab] = torch.arange(n)
    flat = []
    for s in seqs:              # `window` gaps between sentences so that no pair crosses one
        flat.extend(s)
        flat.extend([-1] * window)
    ids = torch.tensor(flat)
    pos = torch.where(ids >= 0, index[ids.clamp(min=0)], -1)
    counts = torch.zeros(n * n, dtype=torch.float64)
    for k in range(1, window + 1):
        x, y = pos[:-k], pos[k:]
        ok = (x >= 0) & (y >= 0)
        counts += torch.bincount(x[ok] * n + y[ok], minlength=n * n).double() / k
    counts = counts.view(n, n)
    return (counts + counts.T).float()


def ppmi_vectors(counts: torch.Tensor, dim: int, alpha: float = 0.75) -> torch.Tensor:
    """Normalized rows of U_d S_d^1/2 from the truncated SVD of the PPMI matrix of `counts`."""
    total = counts.sum()
    row = counts.sum(1, keepdim=True) / total
    ctx = counts.sum(0, keepdim=True) ** alpha
    ctx = ctx / ctx.sum()
    pmi = torch.log(counts / total) - torch.log(row) - torch.log(ctx)
    ppmi = torch.where(counts > 0, pmi.clamp(min=0), torch.zeros_like(pmi))
    u, s, _ = torch.linalg.svd(ppmi, full_matrices=False)   # exact (~20 s at 5000 pieces on 2 cores)
    e = u[:, :dim] * s[:dim].sqrt()
    return normalize(torch.nn.functional.pad(e, (0, dim - e.size(1))))    # zero columns if n < dim


def normalize(e: torch.Tensor) -> torch.Tensor:
    """Unit length, mean-centred, unit length (the VecMap normalization)."""
    e = torch.nn.functional.normalize(e, dim=1)
    return torch.nn.functional.normalize(e - e.mean(0, keepdim=True), dim=1)


def similarity_profile(e: torch.Tensor) -> torch.Tensor:
    """Each row of sqrt(E E^T) = U S U^T sorted descending: a language-independent signature of a piece."""
    u, s, _ = torch.linalg.svd(e, full_matrices=False)
    return normalize(((u * s) @ u.T).sort(dim=1, descending=True).values)


def knn_mean(sims: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each row's k largest similarities: r(x) in CSLS."""
    return sims.topk(min(k, sims.size(1)), dim=1).values.mean(1)


def csls(sims: torch.Tensor, k: int = 10) -> torch.Tensor:
    """2 cos(x, z) - r_z(x) - r_x(z) for a [n_x, n_z] cosine matrix."""
    return 2 * sims - knn_mean(sims, k)[:, None] - knn_mean(sims.T, k)[None, :]


def unsupervised_seed(x: torch.Tensor, z: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """VecMap's initial dictionary from the `size` most frequent pieces of each language, both directions
    (the profiles of both languages need the same length: the smaller vocabulary's)."""
    size = min(size, len(x), len(z))
    px, pz = similarity_profile(x[:size]), similarity_profile(z[:size])
    sims = csls(px @ pz.T)
    fwd, bwd = sims.argmax(1), sims.argmax(0)
    n_x, n_z = len(px), len(pz)
    return torch.cat([torch.arange(n_x), bwd]), torch.cat([fwd, torch.arange(n_z)])


def self_learning(x: torch.Tensor, z: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor, size: int,
                  p: float = 0.1, patience: int = 8, max_iter: int = 150, seed: int = 0, log=None):
    """Alternate Procrustes and CSLS dictionary induction (see the module doc), starting from the seed
    dictionary x[src] ~ z[tgt]. Returns W_x, W_z and the final objective (mean best CSLS both ways)."""
    gen = torch.Generator().manual_seed(seed)
    best, stall = -float("inf"), 0
    xs, zs = x[:size], z[:size]
    for it in range(max_iter):
        u, _, vt = torch.linalg.svd(x[src].T @ z[tgt])
        wx, wz = u, vt.T
        sims = csls((xs @ wx) @ (zs @ wz).T)
        objective = (sims.max(1).values.mean() + sims.max(0).values.mean()).item() / 2
        if p < 1:
            sims = sims.masked_fill(torch.rand(sims.shape, generator=gen) > p, -float("inf"))
        src = torch.cat([torch.arange(len(xs)), sims.argmax(0)])
        tgt = torch.cat([sims.argmax(1), torch.arange(len(zs))])
        if objective > best + 1e-4:
            best, stall = objective, 0
        else:
            stall += 1
        if stall >= patience:
            if p >= 1:
                break
            p, stall, best = min(1.0, 2 * p), 0, -float("inf")
        if log and it % 10 == 0:
            log(f"  self-learning {it}: p={p:.2f} objective={objective:.4f}")
    u, _, vt = torch.linalg.svd(x[src].T @ z[tgt])
    sims = csls((xs @ u) @ (zs @ vt.T).T)
    return u, vt.T, (sims.max(1).values.mean() + sims.max(0).values.mean()).item() / 2


def anchor_seed(tok: Tokenizer, seqs: dict[str, list[list[int]]], vocab: dict[str, torch.Tensor], la: str, lb: str):
    """The `anchors` seed dictionary as positions in vocab[la] and vocab[lb]: identical pieces, and for
    Chinese and English numerals and transliterated names (anchors.py). Returns (src, tgt, info)."""
    pieces = {lang: [tok.sp.id_to_piece(int(i)) for i in vocab[lang]] for lang in (la, lb)}
    counts, inside = {}, {}
    for lang in (la, lb):
        flat = torch.tensor([i for s in seqs[lang] for i in s], dtype=torch.long)
        later = torch.tensor([i for s in seqs[lang] for i in s[1:]], dtype=torch.long)
        counts[lang] = torch.bincount(flat, minlength=tok.vocab_size)[vocab[lang]].tolist()
        inside[lang] = torch.bincount(later, minlength=tok.vocab_size)[vocab[lang]].tolist()
    found = {"identical": anchors.identical(pieces[la], pieces[lb], counts[la], counts[lb])}
    if {la, lb} == {"zh", "en"}:
        zh, en = ("zh", "en")
        flip = (lambda pairs: pairs) if la == "zh" else (lambda pairs: [(j, i) for i, j in pairs])
        found["numerals"] = flip(anchors.numerals(pieces[zh], pieces[en]))
        found["names"] = flip(anchors.names(pieces[zh], pieces[en], counts[zh], counts[en], inside[en]))
    pairs = list(dict.fromkeys(p for kind in found.values() for p in kind))
    if not pairs:
        raise ValueError(f"no anchor (identical piece, numeral or name) is shared by {la} and {lb}")
    src, tgt = (torch.tensor(c) for c in zip(*pairs))
    info = {"anchors": {"counts": {k: len(v) for k, v in found.items()},
                        **{k: [f"{pieces[la][i]} = {pieces[lb][j]}" for i, j in v[:40]] for k, v in found.items()
                           if k != "identical"}}}
    return src, tgt, info


def cedict_pairs(tok: Tokenizer, data_dir=None) -> list[tuple[int, int, str]]:
    """(zh piece id, en piece id, headword) for CC-CEDICT entries whose headword and one gloss word are
    each a single piece of `tok` (explanatory glosses, abbreviations and names skipped)."""
    card = load_card("cedict")
    path = corpus_dir(card, ("dictionary",), data_dir) / card.files["dictionary"]["zh"]
    pairs = set()
    for line in read_lines(path)[1:]:
        simplified, _, _, glosses = line.split("\t")
        zh = tok.sp.piece_to_id(simplified)
        if zh < FIRST_PIECE or not simplified.isalpha():
            continue
        for gloss in glosses.split("/"):
            gloss = gloss.strip().lower()
            if gloss.startswith("to "):
                gloss = gloss[3:]
            if gloss.isalpha() and gloss.isascii():
                en = tok.sp.piece_to_id("▁" + gloss)
                if en >= FIRST_PIECE:
                    pairs.add((zh, en, simplified))
    return sorted(pairs)


def held_out(headword: str) -> bool:
    """The fixed half of CC-CEDICT used only for testing (a hash of the headword)."""
    return hashlib.md5(headword.encode()).digest()[0] % 2 == 1


@dataclass
class CrossLingual:
    """Aligned piece vectors of two languages and the word-by-word tables they give."""
    langs: tuple[str, str]
    vocab: dict[str, torch.Tensor]          # lang -> piece ids [n_lang]
    vectors: dict[str, torch.Tensor]        # lang -> aligned unit vectors [n_lang, dim]
    method: str
    info: dict

    @classmethod
    def learn(cls, seqs: dict[str, list[list[int]]], dim: int, method: str = "unsupervised", tok: Tokenizer | None = None,
              size: int = 5000, seed_size: int = 2500, window: int = 4, data_dir=None, log=print) -> "CrossLingual":
        """Monolingual PPMI-SVD vectors per language ({lang: piece id sequences}, two languages), aligned by
        `method` (unsupervised | cedict, which needs `tok` to find the dictionary's pieces)."""
        la, lb = seqs
        skip = set(range(FIRST_PIECE)) | (set(tok.domain_ids.values()) if tok else set())
        vocab = {lang: piece_vocab(seqs[lang], size, skip) for lang in (la, lb)}
        vecs = {lang: ppmi_vectors(cooccurrence(seqs[lang], vocab[lang], window), dim) for lang in (la, lb)}
        x, z = vecs[la], vecs[lb]
        found = {}
        if method == "unsupervised":
            src, tgt = unsupervised_seed(x, z, seed_size)
        elif method == "anchors":
            if tok is None:
                raise ValueError("the anchors seed needs the tokenizer (piece strings)")
            src, tgt, found = anchor_seed(tok, seqs, vocab, la, lb)
            log(f"anchor seed: {found['anchors']['counts']}")
        elif method == "cedict":
            if tok is None or {la, lb} != {"zh", "en"}:
                raise ValueError(f"the cedict seed dictionary needs a tokenizer and languages zh and en, not {la}, {lb}")
            pos = {lang: {int(i): k for k, i in enumerate(vocab[lang])} for lang in (la, lb)}
            seed_pairs = [(pos["zh"][zh], pos["en"][en]) for zh, en, word in cedict_pairs(tok, data_dir)
                          if not held_out(word) and zh in pos["zh"] and en in pos["en"]]
            if not seed_pairs:
                raise ValueError("no CC-CEDICT entry is a pair of pieces of this vocabulary")
            zh_idx, en_idx = (torch.tensor(c) for c in zip(*seed_pairs))
            src, tgt = (zh_idx, en_idx) if la == "zh" else (en_idx, zh_idx)
            log(f"cedict seed dictionary: {len(seed_pairs)} pairs")
        else:
            raise ValueError(f"unknown cross-lingual method '{method}' (unsupervised | cedict)")
        # Self-learning from the seed as it is (p = 1) and, for the unsupervised seed, also with VecMap's
        # stochastic induction (p = 0.1, which escapes a poor seed but can leave a good one); the run with
        # the higher final objective wins (no bilingual signal needed to choose).
        runs = [(*self_learning(x, z, src, tgt, min(size, len(x), len(z)), p=p, log=log), p)
                for p in ((1.0, 0.1) if method in ("unsupervised", "anchors") else (1.0,))]
        wx, wz, objective, p = max(runs, key=lambda r: r[2])
        return cls((la, lb), vocab, {la: normalize(x @ wx), lb: normalize(z @ wz)}, method,
                   {"method": method, **found, "dim": dim, "size": size, "window": window, "p_start": p,
                    "objective": round(objective, 4), "vocab": {lang: len(v) for lang, v in vocab.items()}})

    def table(self, src: str, tgt: str, vocab_size: int, k: int = 10) -> torch.Tensor:
        """[vocab_size] ids: each piece of `src`'s vocabulary -> its CSLS nearest piece of `tgt`; every other
        id (specials, domain tokens, rare pieces) maps to itself."""
        table = torch.arange(vocab_size)
        sims = csls(self.vectors[src] @ self.vectors[tgt].T, k)
        table[self.vocab[src]] = self.vocab[tgt][sims.argmax(1)]
        return table

    def candidates(self, src: str, tgt: str, k: int, csls_k: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The k best `tgt` pieces for each piece of `src`'s vocabulary, by CSLS: (src ids [n], tgt ids
        [n, k], CSLS scores [n, k], best first). The word-by-word miner's translation options."""
        scores, best = csls(self.vectors[src] @ self.vectors[tgt].T, csls_k).topk(min(k, len(self.vocab[tgt])), dim=1)
        return self.vocab[src], self.vocab[tgt][best], scores

    def translate_ids(self, seqs: list[list[int]], src: str, tgt: str, vocab_size: int) -> list[list[int]]:
        table = self.table(src, tgt, vocab_size)
        return [table[torch.tensor(s, dtype=torch.long)].tolist() if s else [] for s in seqs]

    def word_by_word(self, tok: Tokenizer, texts: list[str], src: str, tgt: str, max_len: int = 256) -> list[str]:
        """Normalized sentences of `src` -> normalized text made of `tgt` pieces, one piece for one."""
        seqs = tok.encode(texts, max_len)
        return tok.decode([s + [EOS] for s in self.translate_ids(seqs, src, tgt, tok.vocab_size)])

    def evaluate_bli(self, tok: Tokenizer, data_dir=None) -> dict:
        """Precision@1 of zh -> en piece translation (CSLS) on the held-out half of CC-CEDICT, over headwords
        whose piece is in the zh vocabulary and that have a translation in the en vocabulary."""
        if set(self.langs) != {"zh", "en"}:
            return {}
        table = self.table("zh", "en", tok.vocab_size)
        in_zh, in_en = set(self.vocab["zh"].tolist()), set(self.vocab["en"].tolist())
        gold: dict[int, set[int]] = {}
        for zh, en, word in cedict_pairs(tok, data_dir):
            if held_out(word) and zh in in_zh and en in in_en:
                gold.setdefault(zh, set()).add(en)
        hits = sum(int(table[zh]) in ens for zh, ens in gold.items())
        examples = [f"{tok.sp.id_to_piece(zh)} -> {tok.sp.id_to_piece(int(table[zh]))}" for zh in list(gold)[:12]]
        return {"bli_p1_zh2en": 100.0 * hits / max(1, len(gold)), "bli_test_words": len(gold), "examples": examples}

    def embedding_init(self, vocab_size: int, std: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows for the generator's token embeddings: each piece's aligned vector (the mean where a piece is
        in both languages' vocabularies), scaled so components have standard deviation `std`. Returns
        (weights [vocab_size, dim], bool mask of the rows that have a vector)."""
        dim = next(iter(self.vectors.values())).size(1)
        total, count = torch.zeros(vocab_size, dim), torch.zeros(vocab_size)
        for lang in self.langs:
            total.index_add_(0, self.vocab[lang], self.vectors[lang])
            count.index_add_(0, self.vocab[lang], torch.ones(len(self.vocab[lang])))
        has = count > 0
        rows = total / count.clamp(min=1)[:, None]
        return rows * (std * dim ** 0.5), has

    def save(self, path: Path) -> None:
        torch.save({"langs": self.langs, "vocab": self.vocab, "vectors": self.vectors, "method": self.method,
                    "info": self.info}, path)
        path.with_suffix(".json").write_text(json.dumps(self.info, indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> "CrossLingual":
        state = torch.load(path, weights_only=True)
        return cls(tuple(state["langs"]), state["vocab"], state["vectors"], state["method"], state["info"])
