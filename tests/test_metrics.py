"""Evaluation metrics on small hand-made inputs whose answers are known, and the fluency LM."""

import math
import random

import pytest
import sacrebleu
import torch

from textgan.evaluate import bleu
from textgan.metrics import (
    distinct,
    duplicate_share,
    g_score,
    length_ratio,
    rouge,
    self_bleu_among,
)

REPEATED = ["the food was good ."] * 50
DISJOINT = ["alpha beta gamma delta", "one two three four", "red green blue cyan", "cat dog cow pig"]


def test_bleu_of_identical_text_is_100():
    texts = ["the food was good .", "the staff was rude and slow ."]
    assert bleu(texts, [texts]).score == pytest.approx(100.0)


def test_distinct_by_hand():
    assert distinct(["a b a b"], 1) == pytest.approx(50.0)          # {a, b} of 4 tokens
    assert distinct(["a b a b"], 2) == pytest.approx(100 * 2 / 3)   # {ab, ba} of 3 bigrams
    assert distinct(["a b", "b c"], 2) == pytest.approx(100.0)      # no bigram across sentences
    assert distinct(["", "a"], 2) == 0.0                            # no bigrams at all
    assert distinct(DISJOINT, 1) == 100.0


def test_one_repeated_sentence_is_not_diverse():
    assert distinct(REPEATED, 2) < 3                                # 4 unique of 200 bigrams
    assert duplicate_share(REPEATED) == pytest.approx(98.0)         # 49 of 50 repeat the first
    assert self_bleu_among(REPEATED) == pytest.approx(100.0)


def test_all_different_outputs_are_diverse():
    assert duplicate_share(DISJOINT) == 0.0
    assert self_bleu_among(DISJOINT) == pytest.approx(0.0, abs=1e-6)
    assert self_bleu_among(["just one"]) == 0.0


def test_self_bleu_excludes_each_output_from_its_own_references():
    """Two copies of A and one B: each A finds its twin, but B finds nothing like itself."""
    texts = ["the food was good here", "the food was good here", "my cat likes warm milk"]
    assert 0 < self_bleu_among(texts) < 100


def test_self_bleu_equals_sacrebleu_with_all_other_outputs_as_references():
    rng = random.Random(0)
    words = ["the", "food", "was", "good", "bad", "great", "staff", "slow", "pizza", "not", "very"]
    for trial in range(10):
        texts = [" ".join(rng.choices(words, k=rng.randint(0, 9))) for _ in range(rng.randint(2, 25))]
        texts += texts[:trial]                                      # some exact duplicates
        n = len(texts)
        streams = [[texts[k + (k >= i)] for i in range(n)] for k in range(n - 1)]
        expected = sacrebleu.metrics.BLEU(tokenize="13a").corpus_score(texts, streams).score
        assert self_bleu_among(texts) == pytest.approx(expected, abs=1e-9)


def test_g_score_and_length_ratio():
    assert g_score(81, 1) == pytest.approx(9.0)
    assert g_score(0, 50) == 0.0
    assert length_ratio(["a b", "c"], ["a b c", "d e f"]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        length_ratio(["a"], ["a", "b"])


def test_rouge_by_hand():
    same = rouge(["police arrest man in paris"], ["police arrest man in paris"])
    assert same == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})
    disjoint = rouge(["stocks fall sharply"], ["police arrest man in paris"])
    assert disjoint == pytest.approx({"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0})
    assert rouge(["police arrested a man"], ["police arrest man"])["rouge1"] > 80   # stemmed: arrested ~ arrest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny LM gains nothing from intra-op threads, and on a busy 2-core machine they spin-wait
    against other work (75 s instead of 8 s for this file)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lm_corpus():
    rng = random.Random(0)
    nouns, adjs = ["food", "service", "staff", "pizza", "soup"], ["good", "great", "bad", "cold", "fresh"]
    return [f"the {rng.choice(nouns)} was {rng.choice(adjs)} ." for _ in range(200)]


@pytest.fixture(scope="module")
def fluency_lm(lm_corpus, tmp_path_factory):
    from textgan.lm import FluencyLM

    return FluencyLM.train(lm_corpus, tmp_path_factory.mktemp("lm"), steps=60, batch_size=16, seed=0,
                           max_len=16, vocab_size=60, d_model=64, heads=2)


def test_fluency_lm_prefers_in_domain_text(fluency_lm):
    in_domain = fluency_lm.perplexity(["the soup was cold .", "the staff was great ."])
    shuffled = fluency_lm.perplexity(["cold . soup the was", "was great the . staff"])
    foreign = fluency_lm.perplexity(["das essen war kalt .", "le personnel était super ."])
    assert in_domain < shuffled / 3
    assert in_domain < foreign / 10


def test_fluency_lm_scores_empty_and_long_text(fluency_lm):
    assert math.isfinite(fluency_lm.perplexity([""]))
    long = " ".join(["the food was good ."] * 10)                   # longer than the 16-piece context
    assert math.isfinite(fluency_lm.perplexity([long]))
    with pytest.raises(ValueError):
        fluency_lm.perplexity([])


def test_fluency_lm_same_seed_and_save_load_give_the_same_perplexity(fluency_lm, lm_corpus, tmp_path):
    from textgan.lm import FluencyLM

    texts = ["the pizza was fresh .", "", "the food was good . the soup was bad ."]
    again = FluencyLM.train(lm_corpus, tmp_path, steps=60, batch_size=16, seed=0,
                            max_len=16, vocab_size=60, d_model=64, heads=2)
    assert again.perplexity(texts) == pytest.approx(fluency_lm.perplexity(texts), rel=1e-5)
    assert FluencyLM.load(tmp_path).perplexity(texts) == pytest.approx(again.perplexity(texts), rel=1e-6)


def test_repeat_share_counts_stutters_in_words_and_characters():
    from textgan.metrics import repeat_share

    assert repeat_share(["very very very good", "very very good", "太太太好了", "太好了"]) == 50.0
    assert repeat_share(["哈哈", "a a b a"]) == 0.0 and repeat_share([]) == 0.0
