import random

import pytest

from textgan.corpora import CorpusError, corpus_dir, load_card, load_split, read_lines
from textgan.data import DomainBatches, add_noise, pad
from textgan.tokenizer import EOS, PAD, UNK, Tokenizer, detokenize, normalize


def test_ptb_normalization_matches_the_yelp_corpus_form():
    assert normalize("I feel SO sad!", "ptb_lower") == "i feel so sad !"
    assert normalize("We don't tip\tunder 20 dollars.", "ptb_lower") == "we do n't tip under _num_ dollars ."
    assert normalize("  \x00 ", "ptb_lower") == ""
    assert detokenize("i feel so sad !", "ptb_lower") == "I feel so sad!"
    assert detokenize("we do n't like it .", "ptb_lower") == "We don't like it."


def test_tokenizer_round_trip_and_domain_tokens(tmp_path):
    lines = read_lines(corpus_dir(load_card("toy")) / "train.pos")[:500]
    tok = Tokenizer.train(lines, tmp_path / "t.model", ["neg", "pos"], "ptb_lower", vocab_size=120)
    assert set(tok.domain_ids) == {"neg", "pos"} and len(set(tok.domain_ids.values())) == 2
    ids = tok.encode(lines[:5], max_len=64)
    assert tok.decode([x + [EOS, 7] for x in ids]) == lines[:5]           # stops at EOS
    assert all(len(x) <= 3 for x in tok.encode(lines[:5], max_len=3))     # truncation
    # the domain tokens are control symbols: typing them does not produce them
    assert tok.domain_ids["pos"] not in tok.encode(["<2pos> good"], 10)[0]


def test_noise_drops_blanks_and_shuffles_locally():
    rng = random.Random(0)
    seq = list(range(10, 30))
    assert add_noise([seq], 0.0, 0.0, 0.0, rng) == [seq]
    dropped = add_noise([seq] * 50, 0.3, 0.0, 0.0, rng)
    assert all(set(d) <= set(seq) for d in dropped) and sum(map(len, dropped)) < 0.85 * 50 * len(seq)
    blanked = add_noise([seq], 0.0, 1.0, 0.0, rng)[0]
    assert blanked == [UNK] * len(seq)
    for shuffled in add_noise([seq] * 20, 0.0, 0.0, 3.0, rng):
        assert sorted(shuffled) == seq
        assert all(abs(shuffled.index(t) - seq.index(t)) <= 3 for t in seq)


def test_batches_are_length_bucketed_and_sharded():
    rng = random.Random(1)
    seqs = [[5] * rng.randint(1, 30) for _ in range(1000)]
    stream = iter(DomainBatches(seqs, batch_size=20, bucket_batches=50, seed=0))
    spreads = [max(map(len, b)) - min(map(len, b)) for b in (next(stream) for _ in range(50))]
    assert sum(spreads) / len(spreads) < 3            # random batches would spread ~25
    shard = DomainBatches(seqs, 20, rank=1, world=2)
    assert len(shard.seqs) == 500


def test_pad_appends_eos_and_masks_padding():
    ids, mask = pad([[7, 8, 9], [7]])
    assert ids.tolist() == [[7, 8, 9, EOS], [7, EOS, PAD, PAD]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]


def test_missing_corpus_says_where_it_looked_and_how_to_get_it(monkeypatch, tmp_path):
    import textgan.corpora as corpora

    monkeypatch.setattr(corpora, "data_roots", lambda data_dir=None: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(CorpusError) as err:
        corpus_dir(load_card("yelp"))
    message = str(err.value)
    assert str(tmp_path / "a" / "yelp") in message and "textgan data download yelp" in message
    with pytest.raises(CorpusError, match="known corpora: .*yelp"):
        load_card("yelpp")


def test_data_dir_comes_first(tmp_path):
    fake = tmp_path / "toy"
    fake.mkdir()
    for split in ("train", "dev", "test"):
        for d in ("neg", "pos"):
            (fake / f"{split}.{d}").write_text(f"only {split} {d}\n\n")
    assert corpus_dir(load_card("toy"), ("train",), data_dir=tmp_path) == fake
    split = load_split(load_card("toy"), "train", data_dir=tmp_path)     # blank lines dropped
    assert list(split["neg"]["text"]) == ["only train neg"]


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nbad \xff\xfe here\n")
    with pytest.raises(CorpusError, match="line 2 is not valid UTF-8"):
        read_lines(path)


def test_a_corpus_without_dev_split_holds_dev_out_of_train_never_test(monkeypatch, tmp_path):
    """Fails if prepare_data falls back to the test split (as it once did) or leaves dev lines in train."""
    import textgan.corpora as corpora
    from textgan.config import load_config
    from textgan.data import prepare_data

    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "nodev.yaml").write_text("name: nodev\ndomains: [neg, pos]\nfiles:\n"
                                      "  train: {neg: train.neg, pos: train.pos}\n  test: {neg: test.neg, pos: test.pos}\n")
    root = tmp_path / "data" / "nodev"
    root.mkdir(parents=True)
    for d in ("neg", "pos"):
        (root / f"train.{d}").write_text("".join(f"{d} train line {chr(97 + i // 26)}{chr(97 + i % 26)}\n"
                                                 for i in range(200)))
        (root / f"test.{d}").write_text(f"{d} test line\n")
    monkeypatch.setattr(corpora, "CARD_DIR", cards)
    train, dev = prepare_data(load_config("toy", "cpu", ["data.corpus=nodev"]), tmp_path / "data")
    for d in ("neg", "pos"):
        kept, held = list(train[d]["text"]), list(dev[d]["text"])
        assert len(held) == 10 and len(kept) == 190                 # 5 % of train, out of train
        assert all("train line" in x for x in held) and not set(kept) & set(held)
