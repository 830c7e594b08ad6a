"""The style judges (models/judge.py): the word CNN learns the toy split, is seeded, and saves and loads."""

import pytest
import torch
from conftest import ROOT

from textgan.models.judge import NeuralJudge, NgramJudge

TOY = ROOT / "corpora" / "toy"
DOMAINS = ["neg", "pos"]


def read(split: str) -> dict[str, list[str]]:
    return {d: (TOY / f"{split}.{d}").read_text().splitlines() for d in DOMAINS}


def tiny_neural_judge(seed: int = 0) -> NeuralJudge:
    return NeuralJudge(DOMAINS, vocab_size=1000, dim=32, filters=16).fit(read("train"), epochs=2, seed=seed)


@pytest.fixture(scope="module")
def neural_judge():
    return tiny_neural_judge()


def test_the_neural_judge_learns_the_toy_split(neural_judge):
    test = read("test")
    assert all(neural_judge.accuracy(test[d], d) > 90 for d in DOMAINS)
    texts = ["the food was great and the staff friendly .", "awful , rude and cold ."]
    assert neural_judge.predict(texts) == ["pos", "neg"]
    assert "great" in neural_judge.vocab and len(neural_judge.vocab) < 1000


def test_the_neural_judge_is_seeded_and_leaves_the_callers_rng_alone(neural_judge):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = tiny_neural_judge()
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(a, b) for a, b in zip(neural_judge.state_dict().values(), again.state_dict().values()))


def test_save_load_gives_the_same_predictions(neural_judge, tmp_path):
    texts = read("test")["neg"] + read("test")["pos"] + ["", "unseen words only", "great"]
    neural_judge.save(tmp_path / "neural_judge.pt")
    loaded = NeuralJudge.load(tmp_path / "neural_judge.pt")
    assert loaded.vocab == neural_judge.vocab and not loaded.training
    assert torch.equal(loaded(texts), neural_judge(texts))
    assert loaded.predict(texts) == neural_judge.predict(texts)


def test_a_texts_score_does_not_depend_on_its_batch(neural_judge):
    """Padding to the longest text of a batch must not change the shorter texts' logits."""
    texts = ["good .", "the owner felt so bad . we hated it and will never come back to this place again ."]
    one_by_one = torch.cat([neural_judge([t]) for t in texts])
    assert torch.allclose(neural_judge(texts), one_by_one, atol=1e-6)


def test_units_beyond_the_vocabulary_and_max_len_are_handled():
    judge = NeuralJudge(DOMAINS, vocab_size=2, dim=8, filters=4, max_len=3)
    judge.fit({"neg": ["bad bad awful"] * 8, "pos": ["good good nice"] * 8}, epochs=1, batch_size=4)
    assert judge.vocab == ["bad", "good"]                      # the 2 most frequent units; the rest are UNK
    assert judge.encode(["good nice zzz bad more"]).tolist() == [[3, 1, 1]]     # cut to max_len units


def test_the_ngram_judge_lives_beside_it():
    test = read("test")
    judge = NgramJudge(DOMAINS).fit(read("train"), epochs=1)
    assert all(judge.accuracy(test[d], d) > 90 for d in DOMAINS)
