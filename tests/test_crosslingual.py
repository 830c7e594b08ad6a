"""Cross-lingual piece embeddings (crosslingual.py): alignment without bilingual data, word-by-word
tables, and their use in translation training."""

import json
import random

import pytest
import torch

from textgan import crosslingual as X
from textgan.crosslingual import CrossLingual


def markov_corpus(n_sent: int, seed: int, n_words: int = 60) -> list[list[int]]:
    """Sentences from one fixed Markov chain over piece ids 4..4+n_words (each word has 3 likely
    successors); `seed` only changes which sentences are drawn."""
    chain, rng = random.Random(0), random.Random(seed)
    successors = [chain.sample(range(n_words), 3) for _ in range(n_words)]
    sentences = []
    for _ in range(n_sent):
        w, s = rng.randrange(n_words), []
        for _ in range(rng.randint(5, 12)):
            s.append(4 + w)
            w = rng.choice(successors[w]) if rng.random() < 0.9 else rng.randrange(n_words)
        sentences.append(s)
    return sentences


@pytest.fixture(scope="module")
def two_languages():
    """Language b: other sentences of the same chain, every word renamed (ids 100 + a permutation)."""
    perm = list(range(60))
    random.Random(1).shuffle(perm)
    a = markov_corpus(3000, seed=1)
    b = [[100 + perm[i - 4] for i in s] for s in markov_corpus(3000, seed=2)]
    return a, b, perm


def test_unsupervised_alignment_recovers_a_renamed_language(two_languages):
    a, b, perm = two_languages
    xl = CrossLingual.learn({"a": a, "b": b}, dim=16, size=60, seed_size=60, log=lambda *_: None)
    table = xl.table("a", "b", vocab_size=200)
    correct = sum(int(table[4 + i]) == 100 + perm[i] for i in range(60))
    assert correct >= 55, correct
    assert table[:4].tolist() == [0, 1, 2, 3] and int(table[199]) == 199      # specials, unknown ids kept
    back = xl.table("b", "a", vocab_size=200)
    assert sum(int(back[int(table[4 + i])]) == 4 + i for i in range(60)) >= 55
    assert xl.translate_ids([[4, 5, 3], []], "a", "b", 200) == [[int(table[4]), int(table[5]), 3], []]


def test_self_learning_from_a_small_seed_dictionary(two_languages):
    a, b, perm = two_languages
    va, vb = X.piece_vocab(a, 60, set()), X.piece_vocab(b, 60, set())
    x = X.ppmi_vectors(X.cooccurrence(a, va, 4), 16)
    z = X.ppmi_vectors(X.cooccurrence(b, vb, 4), 16)
    where_b = {int(i): k for k, i in enumerate(vb)}
    gold = torch.tensor([where_b[100 + perm[int(i) - 4]] for i in va])
    wx, wz, _ = X.self_learning(x, z, torch.arange(20), gold[:20], 60, p=1.0)
    predicted = ((x @ wx) @ (z @ wz).T).argmax(1)
    assert predicted.eq(gold).sum().item() >= 57


def test_embedding_init_rows_and_scale(two_languages):
    a, b, _ = two_languages
    xl = CrossLingual.learn({"a": a, "b": b}, dim=16, size=60, seed_size=60, log=lambda *_: None)
    rows, has = xl.embedding_init(vocab_size=200, std=0.02)
    assert rows.shape == (200, 16) and has.sum().item() == 120 and not has[:4].any()
    assert abs(rows[has].std().item() - 0.02) < 0.005


def test_cedict_seed_pairs_from_a_dictionary_file(tmp_path):
    from textgan.tokenizer import Tokenizer

    text = ["我 喜欢 猫 。", "i like cats .", "猫 喝 茶", "the cat drinks tea", "tea cat like"] * 20
    tok = Tokenizer.train(text, tmp_path / "t.model", ["zh", "en"], "zh", vocab_size=40)
    (tmp_path / "cedict").mkdir()
    (tmp_path / "cedict" / "cedict.simp_trad_pinyin_gloss.tsv").write_text(
        "simplified\ttraditional\tpinyin\tglosses\n猫\t貓\tmao1\tcat/CL:隻|只[zhi1]\n"
        "茶\t茶\tcha2\ttea/tea plant\n喝\t喝\the1\tto drink\n喜欢\t喜歡\txi3 huan5\tto like/to be fond of\n")
    pairs = {(word, tok.sp.id_to_piece(en)) for _, en, word in X.cedict_pairs(tok, tmp_path)}
    expected = {(w, "▁" + e) for w, e in [("猫", "cat"), ("茶", "tea"), ("喝", "drinks"), ("喜欢", "like")]
                if tok.sp.piece_to_id(w) > 3 and tok.sp.piece_to_id("▁" + e) > 3}
    assert pairs == {p for p in pairs if p in expected | {("喝", "▁drink")}} and ("茶", "▁tea") in pairs


def test_translation_with_wordbyword_back_translation(tmp_path):
    """train.crosslingual=unsupervised learns crosslingual.pt before training, starts the embeddings from it,
    and the first back-translation steps use its word-by-word tables; without it, the option is refused."""
    from textgan.config import ConfigError, load_config
    from textgan.runner import train

    cfg = load_config("toy_translation", "cpu", ["train.crosslingual=unsupervised", "train.bt_wordbyword_steps=5",
                                                 "train.ae_steps=10", "train.adv_steps=10"])
    run = train(cfg, runs_dir=tmp_path, name="xl", command=["pytest"])
    info = json.loads((run / "crosslingual.json").read_text())
    assert info["method"] == "unsupervised" and info["dim"] == cfg.generator.d_model
    xl = CrossLingual.load(run / "crosslingual.pt")
    assert xl.vectors["zh"].shape[1] == cfg.generator.d_model
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 20 and any("train/cycle_en" in r for r in rows)

    bad = load_config("toy_translation", "cpu", ["train.bt_wordbyword_steps=5"])
    with pytest.raises(ConfigError, match="needs cross-lingual embeddings"):
        train(bad, runs_dir=tmp_path, name="bad")
