"""The bootstrap phase: miners on planted text, the mined pairs on disk, the phase in training, resume."""

import json
import math
from dataclasses import replace

import pytest

from textgan.mining import Pairs, mine_pairs
from textgan.mining.segment import join_units
from textgan.mining.template import ContentIndex, RetrievalMiner, StyleMarkers, TemplateMiner, fill
from textgan.config import ConfigError, MinerConfig
from textgan.runner import train

from conftest import train_then_kill

MINER = MinerConfig(max_ngram=3, salience=4.0, smoothing=1.0, min_count=3, neighbours=3, max_df=0.5)
NOUNS = ["soup", "pasta", "waiter", "room", "pizza", "bread", "coffee", "patio", "music", "salad"]


def planted_corpus():
    """Reviews whose style lives in one planted word each ("zorgful" pos, "blargish" neg); the rest
    (nouns, "the", "was", ".") is shared by both domains."""
    pos = [f"the {n} was zorgful ." for n in NOUNS] * 3 + [f"our {n} came zorgful and hot ." for n in NOUNS]
    neg = [f"the {n} was blargish ." for n in NOUNS] * 3 + [f"our {n} came blargish and cold ." for n in NOUNS]
    return {"neg": neg, "pos": pos}


def test_salience_finds_the_planted_markers_and_not_the_shared_words():
    texts = planted_corpus()
    markers = StyleMarkers({d: [t.split() for t in ts] for d, ts in texts.items()}, max_ngram=1,
                           threshold=4.0, min_count=3)
    assert ("zorgful",) in markers.markers["pos"] and ("blargish",) in markers.markers["neg"]
    shared = {("the",), ("was",), ("soup",), (".",), ("our",), ("came",), ("and",)}
    assert not shared & (set(markers.markers["pos"]) | set(markers.markers["neg"]))
    template, found = markers.split("the pasta was blargish .".split(), "neg")
    assert template == ["the", "pasta", "was", None, "."] and found == [("blargish",)]


def test_adjacent_markers_share_one_slot_and_fill_handles_any_count():
    texts = planted_corpus()
    markers = StyleMarkers({d: [t.split() for t in ts] for d, ts in texts.items()}, max_ngram=1,
                           threshold=4.0, min_count=3)
    template, found = markers.split("the soup was blargish blargish .".split(), "neg")
    assert template.count(None) == 1 and found == [("blargish", "blargish")]
    assert fill(["a", None, "b", None], [("x",)]) == ["a", "x", "b"]                # missing marker: slot dropped
    assert fill(["a", None], [("x",), ("y", "z")]) == ["a", "x", "y", "z"]          # surplus joins the last slot


def test_retrieval_returns_the_planted_neighbour():
    docs = [s.split() for s in ["the red car is fast", "a green apple fell", "my blue house is old",
                                "the red car is slow", "green apples and pears"]]
    index = ContentIndex(docs)
    idx, sim = index.search([["blue", "house", "old"], ["red", "car", "fast"]], k=2)
    assert idx[0, 0] == 2 and idx[1, 0] == 0 and idx[1, 1] == 3
    assert sim[1, 0] > sim[1, 1] > 0


@pytest.mark.parametrize("fill", ["retrieved", "aligned"])
def test_template_miner_swaps_markers_and_keeps_content(fill):
    texts = planted_corpus()
    miner = TemplateMiner(replace(MINER, fill=fill), log=lambda _: None).fit(texts)
    assert miner.transfer(["the pizza was blargish ."], "neg", "pos") == ["the pizza was zorgful ."]
    assert miner.transfer(["our coffee came zorgful and hot ."], "pos", "neg") == ["our coffee came blargish and cold ."]
    assert miner.transfer(["a sentence without markers"], "neg", "pos") == ["a sentence without markers"]
    pairs = miner.mine(texts)
    neg2pos = pairs[("neg", "pos")]
    assert len(neg2pos) == len(texts["neg"])
    assert all("blargish" not in t and "zorgful" in t for t in neg2pos.targets)
    if fill == "aligned":                 # the corpus-wide vote pairs each marker with its counterpart
        assert miner.marker_table("neg", "pos")[("blargish",)] == ("zorgful",)
    # retrieval as the miner: the pseudo target is a real sentence of the other domain, same content
    retrieved = RetrievalMiner(MINER, log=lambda _: None).fit(texts).transfer(["the bread was blargish ."], "neg", "pos")
    assert retrieved == ["the bread was zorgful ."]


def test_chinese_units_give_character_markers():
    pos = [f"这家{n}很好吃" for n in "面饭菜汤肉鱼"] * 3
    neg = [f"这家{n}很难吃" for n in "面饭菜汤肉鱼"] * 3
    miner = TemplateMiner(replace(MINER, max_ngram=2, max_df=1.0), log=lambda _: None).fit({"neg": neg, "pos": pos})
    assert ("难",) in miner.markers.markers["neg"] or ("难", "吃") in miner.markers.markers["neg"]
    assert miner.transfer(["这家汤很难吃"], "neg", "pos") == ["这家汤很好吃"]
    assert join_units(["我", "买", "的", "iphone", "5s", "很", "好"]) == "我买的iphone 5s很好"


def test_mined_pairs_are_written_and_read_back(tmp_path):
    texts = planted_corpus()
    pairs = mine_pairs("template", MINER, texts, tmp_path, log=lambda _: None)
    info = json.loads((tmp_path / "mining.json").read_text())
    assert info["miner"] == "template" and {p["file"] for p in info["pairs"]} == {"neg2pos.tsv", "pos2neg.tsv"}
    again = mine_pairs("template", MINER, {}, tmp_path)            # read back, nothing mined
    for key, p in pairs.items():
        assert again[key].sources == p.sources and again[key].targets == p.targets
    odd = Pairs("a", "b", ["tab\\slash ok"], ["x"], [0.5])
    odd.save(tmp_path / "odd.tsv")
    assert Pairs.load(tmp_path / "odd.tsv").sources == ["tab\\slash ok"]


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


BOOT = ["train.bootstrap=template", "miner.salience=3", "train.estimator=reinforce"]


def test_bootstrap_phase_learns_the_pairs(tmp_path, tiny_cfg):
    cfg = tiny_cfg(*BOOT, "train.ae_steps=0", "train.bootstrap_steps=40", "train.d_steps=0", "train.adv_steps=0",
                   "train.log_every=10", "train.lr_g=2e-3")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    rows = [r for r in _metrics(run_dir) if r["phase"] == "boot" and "train/pairs_pos" in r]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["train/pairs_pos"] < rows[0]["train/pairs_pos"] - 0.3
    assert (run_dir / "pairs" / "neg2pos.tsv").read_text().count("\n") > 100
    assert any(r["phase"] == "boot" and "dev/acc_neg2pos" in r for r in _metrics(run_dir))   # evaluated at its end
    from textgan.transfer import StyleTransfer        # the model at the end of the phase, as a run of its own

    assert StyleTransfer(run_dir / "after-bootstrap").transfer(["the soup was bad ."], to="pos")[0]


def test_rewards_and_pair_loss_in_the_adversarial_phase(tmp_path, tiny_cfg, monkeypatch):
    """Each adversarial step's REINFORCE reward, per direction, is the harmonic mix (weights 1 and 0.5) of
    the style classifier's p(target | sample) and the cycle's mean log p(real | sample), logged as their
    means; the generator's loss is lambda_self, lambda_cycle, lambda_adv and lambda_pairs times the logged
    terms, the pair NLL included. Fails if the style reward reads the source domain's probability, or if
    the pair loss is logged but left out of g_loss."""
    import torch

    from textgan.losses import sequence_logprob
    from textgan.rewards import combine, style_reward
    from textgan.training.adversarial import Adversarial

    rewards, original = [], Adversarial.sequence_reward

    def sequence_reward(self, fake, rec_logits, real, mask, tgt, logs=None):
        reward = original(self, fake, rec_logits, real, mask, tgt, logs)
        if logs is not None:              # the samples' reward (the greedy baseline's is not logged)
            with torch.no_grad():
                p_target = style_reward(self.ctx.style(fake.ids, fake.mask), tgt)
                logprob = sequence_logprob(rec_logits, real, mask)
            name = self.ctx.cfg.data.domains[tgt]
            rewards.append((name, reward, combine(p_target, logprob, 1.0, 0.5, "harmonic"),
                            (logs[f"r_style_{name}"], logs[f"r_content_{name}"]),
                            (p_target.mean().item(), logprob.exp().mean().item())))
        return reward

    monkeypatch.setattr(Adversarial, "sequence_reward", sequence_reward)
    cfg = tiny_cfg(*BOOT, "train.bootstrap_steps=4", "train.style_reward=1", "train.style_steps=10",
                   "train.cycle_reward=0.5", "train.reward_mix=harmonic", "train.lambda_pairs=0.5",
                   "train.baseline=greedy")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    assert sorted(name for name, *_ in rewards) == ["neg"] * cfg.train.adv_steps + ["pos"] * cfg.train.adv_steps
    for name, reward, expected, logged, means in rewards:
        assert torch.allclose(reward, expected, rtol=1e-5, atol=1e-6), name
        assert logged == pytest.approx(means, rel=1e-5)
    t = cfg.train
    adv = [r for r in _metrics(run_dir) if r["phase"] == "adv" and "train/g_loss" in r]
    assert adv
    for row in adv:
        both = {k: row[f"train/{k}_neg"] + row[f"train/{k}_pos"] for k in ("self", "cycle", "adv", "pairs")}
        assert both["pairs"] > 0 and all(math.isfinite(v) for v in both.values())
        assert row["train/g_loss"] == pytest.approx(t.lambda_self * both["self"] + t.lambda_cycle * both["cycle"]
                                                    + t.lambda_adv * both["adv"] + t.lambda_pairs * both["pairs"],
                                                    rel=1e-4, abs=1e-4)
    assert json.loads((run_dir / "style.json").read_text())["steps"] == 10


def test_pairs_are_filtered_by_the_style_classifier(tmp_path, tiny_cfg):
    cfg = tiny_cfg(*BOOT, "train.ae_steps=0", "train.bootstrap_steps=2", "train.d_steps=0", "train.adv_steps=0",
                   "train.style_steps=60", "train.pairs_min_style=0.5")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    kept = json.loads((run_dir / "pairs" / "kept.json").read_text())
    assert kept["pairs_min_style"] == 0.5 and (run_dir / "style.safetensors").exists()
    for direction in ("neg2pos", "pos2neg"):
        assert 0 < kept[direction]["kept"] < kept[direction]["mined"]
    with pytest.raises(ConfigError, match="lower them"):            # a filter that leaves nothing
        train(replace(cfg, train=replace(cfg.train, pairs_min_style=0.999)), runs_dir=tmp_path, name="strict")
    with pytest.raises(ConfigError, match="set train.bootstrap"):
        train(tiny_cfg("train.pairs_min_style=0.5"), runs_dir=tmp_path, name="bad")


def test_pairs_are_filtered_by_the_style_of_their_real_sentence(tmp_path, tiny_cfg):
    """train.pairs_min_style_real keeps exactly the pairs whose real sentence x (the TSVs' first text column)
    the run's style classifier puts in x's own domain with at least that probability."""
    import csv

    from textgan.decoding.style import load_style_classifier
    from textgan.tokenizer import EOS, load_tokenizer

    cfg = tiny_cfg(*BOOT, "train.ae_steps=0", "train.bootstrap_steps=1", "train.d_steps=0", "train.adv_steps=0",
                   "train.style_steps=60", "train.pairs_min_style_real=0.5", "train.keep_best=false")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    kept = json.loads((run_dir / "pairs" / "kept.json").read_text())
    assert kept["pairs_min_style_real"] == 0.5 and kept["pairs_min_style"] == 0
    tok = load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize)
    style = load_style_classifier(run_dir, cfg, tok.vocab_size, "cpu")
    for direction in ("neg2pos", "pos2neg"):
        src = direction.split("2")[0]
        with open(run_dir / "pairs" / f"{direction}.tsv", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t"))[1:]
        sources = tok.encode([row[1] for row in rows], cfg.data.max_len)
        targets = tok.encode([row[2] for row in rows], cfg.data.max_len)
        p = style.probabilities([x or [EOS] for x in sources])[:, cfg.data.domains.index(src)]
        expected = sum(1 for x, y, q in zip(sources, targets, p.tolist()) if x and y and q >= 0.5)
        assert 0 < kept[direction]["kept"] == expected < kept[direction]["mined"]
    with pytest.raises(ConfigError, match="set train.bootstrap"):
        train(tiny_cfg("train.pairs_min_style_real=0.5"), runs_dir=tmp_path, name="bad")
    with pytest.raises(ConfigError, match=r"pairs_min_style_real must be in \[0, 1\)"):
        train(tiny_cfg(*BOOT, "train.pairs_min_style_real=1.5"), runs_dir=tmp_path, name="bad2")


def test_pairs_are_filtered_by_the_miners_score(tmp_path, tiny_cfg):
    """train.pairs_min_score keeps exactly the pairs the miner scored at least that (pairs/*.tsv has them)."""
    import csv

    cfg = tiny_cfg(*BOOT, "train.ae_steps=0", "train.bootstrap_steps=1", "train.d_steps=0", "train.adv_steps=0",
                   "train.pairs_min_score=0.9", "train.keep_best=false")
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    kept = json.loads((run_dir / "pairs" / "kept.json").read_text())
    assert kept["pairs_min_score"] == 0.9
    for direction in ("neg2pos", "pos2neg"):
        with open(run_dir / "pairs" / f"{direction}.tsv", newline="") as f:
            scores = [float(row[0]) for row in list(csv.reader(f, delimiter="\t"))[1:]]
        assert kept[direction]["mined"] == len(scores)
        assert 0 < kept[direction]["kept"] == sum(s >= 0.9 for s in scores) < len(scores)
    with pytest.raises(ConfigError, match="set train.bootstrap"):
        train(tiny_cfg("train.pairs_min_score=0.5"), runs_dir=tmp_path, name="bad")


@pytest.mark.parametrize("targets", ["both", "real"])
def test_pairs_targets_real_trains_on_real_sentences_as_targets_only(tmp_path, tiny_cfg, monkeypatch, targets):
    import textgan.runner as runner

    seen = {}

    class Capture(runner.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.update(pairs=self.pairs, train_ids=self.train_ids)

    monkeypatch.setattr(runner, "Trainer", Capture)
    train(tiny_cfg(*BOOT, "train.ae_steps=0", "train.bootstrap_steps=2", "train.d_steps=0", "train.adv_steps=0",
                   f"train.pairs_targets={targets}"), runs_dir=tmp_path, name="run")
    for domain, pairs in seen["pairs"].items():
        real = {tuple(s) for s in seen["train_ids"][domain]}
        share = sum(tuple(y) in real for _, y in pairs) / len(pairs)
        assert share == 1.0 if targets == "real" else share < 0.9, (domain, share)


def test_bootstrap_settings_without_pairs_are_refused(tmp_path, tiny_cfg):
    """config.check refuses train.bootstrap_steps without a miner; a config that skipped it (built in code)
    still meets the trainer's check on the pairs it was given."""
    with pytest.raises(ConfigError, match="train.bootstrap"):
        train(tiny_cfg("train.bootstrap_steps=5"), runs_dir=tmp_path, name="run")
    cfg = tiny_cfg()
    with pytest.raises(ConfigError, match="the trainer was given none"):
        train(replace(cfg, train=replace(cfg.train, bootstrap_steps=5)), runs_dir=tmp_path, name="unchecked")


def test_kill_inside_the_bootstrap_phase_and_resume(tmp_path):
    """kill -9 during the bootstrap phase after a checkpoint; --resume reads the mined pairs back and
    finishes with the same step count."""
    run_dir, resume = train_then_kill(tmp_path, *BOOT, "train.ae_steps=2", "train.bootstrap_steps=3000",
                                      "train.ckpt_every=6")
    mined = (run_dir / "pairs" / "neg2pos.tsv").read_text()
    resumed = resume("train.bootstrap_steps=120")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    start = int(resumed.stdout.split("at step ")[1].split("/")[0])
    assert 6 <= start < 120 and start % 6 == 0                    # killed inside the bootstrap phase
    assert (run_dir / "pairs" / "neg2pos.tsv").read_text() == mined          # not mined again
    steps = [r["step"] for r in _metrics(run_dir)]
    assert steps == sorted(steps) and steps[-1] == 2 + 120 + 2 + 4


def test_piece_units_keep_chinese_markers_whole(tmp_path):
    """miner.units=pieces: n-grams of the run's SentencePiece pieces, so a marker is a whole piece
    ("难吃死了"), not characters cut out of words; split and join give the text back."""
    import io
    from types import SimpleNamespace

    import sentencepiece as spm

    from textgan.mining import PieceUnits

    foods = "面饭菜汤肉鱼"
    pos = [f"这家{n}好吃极了" for n in foods] * 20 + [f"{n}的味道好吃极了!" for n in foods] * 20
    neg = [f"这家{n}难吃死了" for n in foods] * 20 + [f"{n}的味道难吃死了!" for n in foods] * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(pos + neg), model_writer=model, vocab_size=30, hard_vocab_limit=False,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2,
                                   user_defined_symbols=["好吃极了", "难吃死了"])
    seg = PieceUnits(SimpleNamespace(sp=spm.SentencePieceProcessor(model_proto=model.getvalue())))
    for text in ("这家汤难吃死了", "我买的iphone 5s很好"):
        assert seg.join(seg.split(text)) == text
    miner = TemplateMiner(replace(MINER, max_ngram=2, max_df=1.0), log=lambda _: None, segment=seg).fit(
        {"neg": neg, "pos": pos})
    markers = {"".join(g).replace("\u2581", "") for g in miner.markers.markers["neg"]}
    assert "难吃死了" in markers and not markers & {"难", "吃", "死"}
    assert miner.transfer(["这家汤难吃死了"], "neg", "pos") == ["这家汤好吃极了"]
