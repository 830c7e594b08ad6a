"""Chinese: normalization and tokenization round trips, metrics units, and a few training steps of a
Chinese task (`toy_zh`, the same code path as `sentiment_zh`) on tiny data."""

import json

import pytest

from conftest import TINY
from textgan.metrics import distinct, length_ratio
from textgan.models.judge import ngrams
from textgan.tokenizer import Tokenizer, detokenize, normalize, units


@pytest.mark.parametrize("raw,normalized,for_people", [
    ("我的ＩＰＨＯＮＥ很好用，　真的！", "我的IPHONE很好用, 真的!", "我的IPHONE很好用，真的！"),
    ("价格 (很) 便宜?", "价格 (很) 便宜?", "价格（很）便宜？"),
    ("  菜\t很好吃。\n", "菜 很好吃。", "菜很好吃。"),
    ("iPhone 很好用，5 星", "iPhone 很好用,5 星", "iPhone 很好用，5 星"),
])
def test_zh_normalization_and_detokenization(raw, normalized, for_people):
    """Full-width letters, digits, punctuation and spaces become half width; output for people puts
    Chinese punctuation back in full width and drops the spaces between Chinese characters."""
    assert normalize(raw, "zh") == normalized
    assert detokenize(normalize(raw, "zh"), "zh") == for_people
    assert normalize(normalize(raw, "zh"), "zh") == normalized                     # idempotent


def test_units_count_chinese_characters_and_english_words():
    assert units("我很难过。") == ["我", "很", "难", "过", "。"]
    assert units("the food was cold .") == ["the", "food", "was", "cold", "."]
    assert units("iPhone很好用") == ["iPhone", "很", "好", "用"]
    assert "很 好" in ngrams("菜很好", 2)                  # character bigrams for the judge
    assert distinct(["好好好好"], 1) == 25.0
    assert length_ratio(["我很好"], ["我很好。"]) == 0.75


def test_sentencepiece_round_trip_on_chinese(tmp_path):
    """No word segmenter: SentencePiece over raw characters with CJK coverage; encode -> decode gives the
    normalized text back, detokenize gives text for people."""
    from textgan.corpora import corpus_dir, load_card, read_lines

    card = load_card("toy_zh")
    root = corpus_dir(card, ("train",))
    texts = [normalize(t, "zh") for d in ("neg", "pos") for t in read_lines(root / card.files["train"][d])]
    tok = Tokenizer.train(texts, tmp_path / "zh.model", ["neg", "pos"], "zh", vocab_size=120,
                          character_coverage=0.9995)
    sample = [normalize(t, "zh") for t in ["菜很难吃，再也不来了！", "房间非常干净。"]]
    ids = tok.encode(sample, max_len=64)
    assert all(1 not in x for x in ids)                                 # no <unk>: every character covered
    assert tok.decode([x + [3] for x in ids]) == sample                 # 3 = EOS
    assert [tok.detokenize(t) for t in tok.decode(ids)] == ["菜很难吃，再也不来了！", "房间非常干净。"]


def test_a_chinese_task_trains_and_transfers(tmp_path):
    """A few steps of every phase on toy_zh (the sentiment_zh code path), then transfer from Python and the CLI."""
    import textgan
    from textgan.cli import main
    from textgan.config import load_config
    from textgan.runner import train

    cfg = load_config("toy_zh", "cpu", [*TINY, "train.ae_steps=20", "train.adv_steps=4"])
    run = train(cfg, runs_dir=tmp_path, name="zh", command=["pytest"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 26 and all(v == v for r in rows for v in r.values() if isinstance(v, float))
    out = textgan.load(run).transfer(["菜很难吃。", "房间很干净，推荐！"], to="pos")
    assert len(out) == 2 and all(isinstance(x, str) and " " not in x.strip() for x in out)
    assert main(["transfer", "--model", str(run), "--to", "neg", "我肚子痛得厉害"]) == 0


def test_sentiment_zh_and_its_card_load():
    from textgan.config import load_config
    from textgan.corpora import load_card

    cfg = load_config("sentiment_zh", "cpu", [])
    assert cfg.data.normalize == "zh" and cfg.tokenizer.character_coverage == 0.9995
    assert load_card(cfg.data.corpus).domains == ["neg", "pos"]


def test_translation_trains_with_back_translation_and_is_scored_with_both_tokenizers(tmp_path):
    """toy_translation (translation's code path): denoising + on-the-fly back-translation without a
    discriminator, dev BLEU against references; the evaluator scores into-English with 13a and into-Chinese
    with tok zh, on the multi-reference test TSVs and on a further test set of the card."""
    from textgan.config import load_config
    from textgan.evaluate import Evaluator, build_report, task_directions
    from textgan.runner import train
    from textgan.transfer import StyleTransfer

    cfg = load_config("toy_translation", "cpu", ["train.eval_every=30"])
    run = train(cfg, runs_dir=tmp_path, name="mt", command=["pytest"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 30
    assert not any(k.startswith("train/d_") for r in rows for k in r)               # no discriminator trained
    assert any("train/cycle_zh" in r for r in rows) and any("dev/bleu_zh2en" in r for r in rows)

    directions = {d.name: d for d in task_directions(cfg)}
    assert set(directions) == {"zh2en", "en2zh"}
    assert len(directions["zh2en"].inputs) == len(directions["zh2en"].references[0])
    model = StyleTransfer(run)
    assert model.detect(["我喜欢猫。", "They buy tea."]) == ["zh", "en"]        # by the run's n-gram judge
    evaluator = Evaluator.train(cfg, tmp_path / "eval", progress=False)
    systems = {"mt": {name: model.transfer(d.inputs, to=d.tgt, tokenized=True) for name, d in directions.items()}}
    report = build_report(evaluator, {"input copy": {n: d.inputs for n, d in directions.items()}, **systems},
                          list(directions.values()))
    assert "into en:" in report["bleu_signature"] and "tok:13a" in report["bleu_signature"]
    assert "into zh:" in report["bleu_signature"] and "tok:zh" in report["bleu_signature"]
    copy = report["systems"]["input copy"]["directions"]
    assert copy["zh2en"]["ref_bleu"] < 5 and copy["zh2en"]["acc"] < 10          # copying is not translating

    extra = task_directions(cfg, test_set="aligned")
    assert [d.name for d in extra] == ["zh2en", "en2zh"] and len(extra[0].inputs) == 30
    with pytest.raises(ValueError, match="no test set 'wmt99'"):
        task_directions(cfg, test_set="wmt99")
