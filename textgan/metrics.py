"""Corpus metrics on plain text: diversity, self-BLEU among outputs, G-score, length and ROUGE.

Every function takes lists of strings exactly as a system emitted them (whitespace-tokenized where it
counts words) and returns percentages unless said otherwise, like sacreBLEU.
"""

from __future__ import annotations

import math
from collections import Counter

import sacrebleu
from sacrebleu.metrics.helpers import extract_all_word_ngrams

from .tokenizer import units


def distinct(texts: list[str], n: int) -> float:
    """Distinct-n (Li et al. 2016), in percent, over the whole corpus of `units` (words; CJK characters):

        distinct-n = 100 * |unique n-grams| / |n-grams|

    N-grams do not cross sentence boundaries. 0 when the texts hold no n-gram at all.
    """
    total, unique = 0, set()
    for text in texts:
        words = units(text)
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return 100.0 * len(unique) / total if total else 0.0


def mean_words(texts: list[str]) -> float:
    """Mean length in whitespace-separated words (the unit of length control); 0 for no texts."""
    return sum(len(t.split()) for t in texts) / len(texts) if texts else 0.0


def duplicate_share(texts: list[str]) -> float:
    """Share of outputs that repeat an earlier output verbatim, in percent: 100 * (N - |unique|) / N.

    0 when all N outputs differ; 100 * (N - 1) / N when every output is the same sentence.
    """
    return 100.0 * (len(texts) - len(set(texts))) / len(texts) if texts else 0.0


def repeat_share(texts: list[str], run: int = 3) -> float:
    """Share of texts (percent) in which one unit (word; CJK character) occurs `run` or more times in a
    row ("太太太", "very very very"): the stutter of a degenerate generator."""
    def stutters(text: str) -> bool:
        u = units(text)
        return any(len(set(u[i:i + run])) == 1 for i in range(len(u) - run + 1))

    return 100.0 * sum(map(stutters, texts)) / len(texts) if texts else 0.0


def self_bleu_among(texts: list[str], tokenize: str = "13a") -> float:
    """Self-BLEU among outputs (Zhu et al. 2018, Texygen; as used in Caccia et al. 2020, "Language GANs
    falling short"): how much each output looks like the *other* outputs. High means the generator
    says the same few things over and over (mode collapse); 100 for one repeated sentence.

    Every output i is a hypothesis whose references are all other outputs j != i, never itself, scored
    as one sacreBLEU corpus BLEU (same tokenizer, `exp` smoothing and brevity penalty):

        self-BLEU = corpus_bleu(texts, references = [texts[j] for j != i] for every i)

    Texygen instead averages sentence BLEU over hypotheses; corpus BLEU pools the n-gram counts, the
    way every other BLEU in this project is reported. Handing sacreBLEU N - 1 reference streams costs
    N^2 n-gram extractions (about 25 s for 1000 outputs), and scoring against a random subset of
    references is not a fix: the score climbs with the subset size (31 -> 69 -> 93 for 10, 100 and
    all 999 references, 1000 toy-corpus sentences). So the same statistics are gathered in one pass: a
    hypothesis n-gram g is clipped by the most any other output holds, max_{j != i} count_j(g), which
    is the largest count over the corpus, or the second largest for the output holding the largest.
    The reference length is the other outputs' length closest to the hypothesis's (ties: shorter),
    as sacreBLEU picks it. The tests check the result equals sacreBLEU's. 0 with fewer than 2 outputs.
    """
    if len(texts) < 2:
        return 0.0
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    order = metric.max_ngram_order
    grams, lengths = zip(*(extract_all_word_ngrams(metric.tokenizer(t.rstrip()), 1, order) for t in texts))

    top: dict[tuple, tuple[int, int, int]] = {}  # n-gram -> (largest count, output holding it, second largest)
    for i, counts in enumerate(grams):
        for gram, count in counts.items():
            first, holder, second = top.get(gram, (0, -1, 0))
            if count > first:
                top[gram] = (count, i, first)
            elif count > second:
                top[gram] = (first, holder, count)

    length_counts = Counter(lengths)
    correct, total = [0] * order, [0] * order
    ref_len = 0
    for i, counts in enumerate(grams):
        for gram, count in counts.items():
            first, holder, second = top[gram]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, second if holder == i else first)
        other_lengths = [n for n, c in length_counts.items() if c > (n == lengths[i])]
        ref_len += min(other_lengths, key=lambda n: (abs(n - lengths[i]), n))
    return metric.compute_bleu(correct, total, sum(lengths), ref_len, metric.smooth_method,
                               metric.smooth_value, metric.effective_order, order).score


def g_score(acc: float, bleu: float) -> float:
    """Geometric mean of style accuracy and content BLEU (Xu et al. 2018): sqrt(acc * bleu)."""
    return math.sqrt(acc * bleu)


def length_ratio(hyps: list[str], refs: list[str]) -> float:
    """Total `units` (words; CJK characters) of the hypotheses over those of their references (1.0 = same length)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    ref_words = sum(len(units(r)) for r in refs)
    if ref_words == 0:
        raise ValueError("references hold no words")
    return sum(len(units(h)) for h in hyps) / ref_words


def rouge(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 (Lin 2004), in percent, averaged over sentence pairs.

    Uses Google's `rouge-score` package with the Porter stemmer, the usual setting for Gigaword
    headlines. Its tokenizer lowercases and keeps only [a-z0-9] runs, so it suits English; text in
    other scripts scores 0.
    """
    # Imported here: only summarization needs the package.
    from rouge_score import rouge_scorer

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    types = ("rouge1", "rouge2", "rougeL")
    totals = dict.fromkeys(types, 0.0)
    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    for hyp, ref in zip(hyps, refs):
        scores = scorer.score(ref, hyp)  # score(target, prediction)
        for t in types:
            totals[t] += scores[t].fmeasure
    return {t: 100.0 * totals[t] / len(hyps) if hyps else 0.0 for t in types}
