"""Translation without a dictionary (issue 16): the target vocabulary, the encoder's domain adversary, the
denoising anneal and the anchor seeds, each on its own and all together in a toy run."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from textgan import anchors
from textgan.checkpoint import write_target_vocab
from textgan.config import GeneratorConfig
from textgan.decoding.search import Search, generate
from textgan.models.generator import Generator, build_generator
from textgan.models.latent import LatentCritic, grad_reverse, latent_losses

V = 30
TO_ZH, TO_EN = 4, 5                       # domain tokens
ZH_ONLY, EN_ONLY = list(range(6, 14)), list(range(14, 22))    # pieces seen in one language's text only


def masked_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    cfg = GeneratorConfig(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, dropout=0.0)
    model = build_generator(cfg, V, max_len=20)
    with torch.no_grad():       # make the forbidden pieces the model's favourites: the mask must still win
        model.final_logits_bias[0, ZH_ONLY] += 5.0
    return Generator(model, banned={TO_EN: ZH_ONLY, TO_ZH: EN_ONLY}).eval()


def test_write_target_vocab_bans_the_pieces_seen_only_in_the_other_domain(tmp_path):
    write_target_vocab(tmp_path, {"zh": [[6, 7, 30], [8, 31]], "en": [[14, 30], [15, 31, 40]]})
    banned = json.loads((tmp_path / "target_vocab.json").read_text())
    assert banned == {"zh": [14, 15, 40], "en": [6, 7, 8]}          # 30, 31 are shared; none of a kind banned
    write_target_vocab(tmp_path, {"zh": [[99]], "en": [[98]]})       # written once: a resumed run keeps it
    assert json.loads((tmp_path / "target_vocab.json").read_text()) == banned


def test_the_target_vocabulary_never_lets_a_source_only_piece_through():
    g = masked_generator()
    src = torch.tensor([ZH_ONLY[:5], ZH_ONLY[3:8]])
    mask = torch.ones_like(src, dtype=torch.bool)
    unmasked = Generator(g.model).eval()
    assert any(t in ZH_ONLY for row in generate(unmasked, src, mask, TO_EN, Search(max_len=8)) for t in row)  # it would copy
    outputs = [generate(g, src, mask, TO_EN, Search(max_len=8)), generate(g, src, mask, TO_EN, Search(beam=3, max_len=8)),
               generate(g, src, mask, TO_EN, Search(sample=True, max_len=8))]
    for _ in range(5):
        drawn = g.sample(src, mask, TO_EN, mode="multinomial", max_len=8)
        outputs.append(drawn.ids[drawn.mask].view(1, -1).tolist())
    assert not any(t in ZH_ONLY for out in outputs for row in out for t in row)
    # relax rebuilds the same masked distribution: no mass on banned pieces, logprobs as in the loop
    relaxed = g.relax(src, mask, TO_EN, drawn, "soft")
    assert torch.allclose(relaxed.logprobs[drawn.mask], drawn.logprobs[drawn.mask], atol=1e-4)
    assert (relaxed.probs[..., ZH_ONLY] < 1e-6).all()
    rows_to = torch.tensor([TO_EN, TO_ZH])                           # one target per row: each its own mask
    logits = g.restrict(torch.zeros(2, V), rows_to)
    assert (logits[0, ZH_ONLY] < -1e8).all() and (logits[0, EN_ONLY] == 0).all()
    assert (logits[1, EN_ONLY] < -1e8).all() and (logits[1, ZH_ONLY] == 0).all()


@pytest.mark.parametrize("pool", ["mean", "tokens"])
def test_the_latent_critic_gradient_reaches_the_encoder_with_the_sign_asked(pool):
    torch.manual_seed(0)
    critic = LatentCritic(8, 2, pool, hidden=16)
    states = torch.randn(6, 5, 8, requires_grad=True)
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[0, 3:] = False
    domain = torch.tensor([0, 0, 0, 1, 1, 1])

    def critic_ce(x, target):
        logits, w = critic(x, mask)
        t = target.view(-1, *[1] * (w.dim() - 1)).expand_as(w)
        per = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), t.reshape(-1), reduction="none")
        return (per * w.reshape(-1)).sum() / w.sum()

    plain = torch.autograd.grad(critic_ce(states, domain), states)[0]
    loss, logs = latent_losses(critic, states, mask, domain, "reversal", 0.3)
    assert loss.item() == pytest.approx(logs["latent_critic"]) and 0 <= logs["latent_acc"] <= 1
    grads = torch.autograd.grad(loss, [states, *critic.parameters()])
    assert torch.allclose(grads[0], -0.3 * plain, atol=1e-6)          # the encoder climbs the critic's loss
    critic_grads = torch.autograd.grad(critic_ce(states.detach(), domain), list(critic.parameters()))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[1:], critic_grads))   # the critic descends

    loss, _ = latent_losses(critic, states, mask, domain, "nonsaturating", 0.3)
    grads = torch.autograd.grad(loss, [states, *critic.parameters()])
    flipped = torch.autograd.grad(critic_ce(states, 1 - domain), states)[0]
    assert torch.allclose(grads[0], 0.3 * flipped, atol=1e-6)         # the encoder makes C say the other domain
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[1:], critic_grads))
    with pytest.raises(ValueError, match="unknown latent adversarial loss"):
        latent_losses(critic, states, mask, domain, "wasserstein", 0.3)


def test_grad_reverse_is_the_identity_forward():
    x = torch.randn(3, requires_grad=True)
    y = grad_reverse(x, 2.0)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))


def test_each_anchor_source_finds_its_planted_pairs():
    zh = ["▁", "?", "3", "汤姆", "三", "二十", "波士顿", "伦敦", "喜欢", "猫", "结婚"]
    en = ["▁", "?", "3", "▁Tom", "▁three", "▁twenty", "▁Boston", "▁London", "▁like", "▁cats", "▁point",
          "▁John"]
    counts_zh = [50, 40, 9, 30, 12, 5, 10, 8, 20, 20, 10]
    counts_en = [60, 50, 11, 35, 14, 6, 12, 9, 22, 25, 5, 10]
    inside_en = [0, 50, 11, 30, 10, 4, 12, 9, 20, 25, 5, 9]
    same = anchors.identical(zh, en, counts_zh, counts_en)
    assert [(zh[i], en[j]) for i, j in same] == [("▁", "▁"), ("?", "?"), ("3", "3")]
    assert anchors.identical(zh, en, counts_zh, counts_en, min_count=10) == [(0, 0), (1, 1)]
    numbers = {(zh[i], en[j]) for i, j in anchors.numerals(zh, en)}
    assert numbers == {("三", "▁three"), ("二十", "▁twenty")}            # "point" is no numeral
    found = {(zh[i], en[j]) for i, j in anchors.names(zh, en, counts_zh, counts_en, inside_en)}
    assert ("波士顿", "▁Boston") in found and ("伦敦", "▁London") in found
    assert ("结婚", "▁John") not in found                # jiehun ~ John: too few consonants to trust
    assert anchors.skeleton("Boston") == anchors.skeleton("boshidun") == "bsdn"


TOY_ZH = ["Tom喜欢{n}只猫。", "Tom有{n}本书。", "我们买{n}杯茶?", "汤姆想要{n}本书。", "你们喜欢{n}个苹果!", "{n}!"]
TOY_EN = ["Tom likes {n} cats.", "Tom has {n} books.", "We buy {n} cups of tea?", "Tom wants {n} books.",
          "You like {n} apples!", "{n}!"]
NUMBERS_ZH, NUMBERS_EN = ["一", "两", "三", "四", "五", "2", "3", "10"], ["one", "two", "three", "four", "five", "2", "3", "10"]


def test_a_toy_translation_run_trains_with_all_of_it_on(tmp_path):
    """Anchors (identical strings and numerals planted in the training text), the word-by-word bootstrap
    and back-translation through the embeddings they align, the target vocabulary, the latent adversary and the anneal, in one
    run; its transfers into English hold no piece seen only in Chinese text."""
    from textgan.config import load_config
    from textgan.runner import train
    from textgan.transfer import StyleTransfer

    data = tmp_path / "data" / "toy_zh_en"
    shutil.copytree(Path(__file__).parent.parent / "corpora" / "toy_zh_en", data)
    for name, templates, numbers in [("train.zh", TOY_ZH, NUMBERS_ZH), ("train.en", TOY_EN, NUMBERS_EN)]:
        lines = (data / name).read_text().splitlines()
        planted = [t.format(n=n) for t in templates for n in numbers] * 12
        (data / name).write_text("\n".join(lines + planted) + "\n")
    cfg = load_config("toy_translation", "cpu", ["generator.target_vocab=true", "train.crosslingual=anchors",
                                                 "train.bt_wordbyword_steps=5", "train.latent_adv=0.5",
                                                 "train.lambda_self_end=0.1", "train.ae_steps=10", "train.adv_steps=15",
                                                 "train.bootstrap=wordbyword", "miner.units=pieces",
                                                 "train.bootstrap_steps=5", "tokenizer.vocab_size=200"])
    run = train(cfg, runs_dir=tmp_path, name="all", data_dir=tmp_path / "data", command=["pytest"])
    info = json.loads((run / "crosslingual.json").read_text())
    assert info["method"] == "anchors" and info["anchors"]["counts"]["identical"] > 0
    assert info["anchors"]["counts"]["numerals"] >= 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 30
    assert any("train/latent_critic" in r for r in rows) and any("train/cycle_en" in r for r in rows)
    assert json.loads((run / "target_vocab.json").read_text())["en"]
    mined = json.loads((run / "pairs" / "mining.json").read_text())
    assert mined["miner"] == "wordbyword" and all(p["pairs"] > 0 for p in mined["pairs"])
    outputs = StyleTransfer(run).transfer(["我们喜欢猫。", "你们买三本书。", "他们想要茶。"], to="en")
    assert not any(re.search("[\u4e00-\u9fff。]", text) for text in outputs), outputs


class ToyPieces:
    """A segmenter over pieces written with spaces between them (the miner's `pieces` interface)."""
    name = "pieces"

    def __init__(self, vocab: list[str]):
        self.vocab = vocab
        self.sp = self
        self.id_to_piece = vocab.__getitem__

    def split(self, text: str) -> list[str]:
        return text.split(" ")

    @staticmethod
    def join(parts: list[str]) -> str:
        return "".join(parts).replace("\u2581", " ").strip()


class ToyLexicon:
    """candidates() of a CrossLingual, from a table {(src, tgt): {piece: [(piece, csls), ...]}}."""

    def __init__(self, pieces: ToyPieces, table: dict):
        self.pieces, self.table = pieces, table

    def candidates(self, src, tgt, k):
        rows = self.table[(src, tgt)]
        ids = lambda ps: torch.tensor([self.pieces.vocab.index(p) for p in ps])  # noqa: E731
        return (ids(list(rows)), torch.stack([ids([p for p, _ in c][:k]) for c in rows.values()]),
                torch.tensor([[s for _, s in c][:k] for c in rows.values()]))


def test_the_wordbyword_miner_lets_the_target_language_model_choose_among_candidates():
    from textgan.config import MinerConfig
    from textgan.mining import Pairs, make_miner

    vocab = ["\u2581", "\u2581我", "喜欢", "猫", "。", "\u2581I", "\u2581me", "\u2581like", "\u2581cats", "\u2581cat",
             ".", "\u2581too", "也", "\u2581Rome"]
    pieces = ToyPieces(vocab)
    lexicon = ToyLexicon(pieces, {
        ("zh", "en"): {"\u2581我": [("\u2581me", 0.5), ("\u2581I", 0.4)], "喜欢": [("\u2581like", 0.5), ("\u2581too", 0.1)],
                       "猫": [("\u2581cat", 0.5), ("\u2581cats", 0.45)]},
        ("en", "zh"): {"\u2581I": [("\u2581我", 0.5), ("也", 0.1)], "\u2581like": [("喜欢", 0.5), ("也", 0.1)],
                       "\u2581cats": [("猫", 0.5), ("也", 0.1)]}})
    texts = {"zh": ["\u2581我 喜欢 猫 。"] * 3 + ["\u2581我 也 。"],
             "en": ["\u2581I \u2581like \u2581cats ."] * 5 + ["\u2581me \u2581too ."]}
    cfg = MinerConfig(units="pieces", candidates=2, temperature=0.1, lm_weight=1.0, beam=4)
    miner = make_miner("wordbyword", cfg, segment=pieces, lexicon=lexicon, log=lambda *_: None).fit(texts)
    # the bare word start is dropped, "。" becomes ".", "Rome" (not in Chinese text, no candidate) is dropped
    assert miner.transfer(["\u2581 \u2581我 喜欢 猫 。"], "zh", "en") == ["I like cats."]
    assert miner.transfer(["\u2581I \u2581like \u2581cats \u2581Rome ."], "en", "zh") == ["我喜欢猫。"]
    no_lm = make_miner("wordbyword", MinerConfig(units="pieces", candidates=2, lm_weight=0.0), segment=pieces,
                       lexicon=lexicon, log=lambda *_: None).fit(texts)
    assert no_lm.transfer(["\u2581我 喜欢 猫 。"], "zh", "en") == ["me like cat."]     # the nearest alone
    pairs = miner.mine(texts)
    assert set(pairs) == {("zh", "en"), ("en", "zh")} and all(isinstance(p, Pairs) for p in pairs.values())
    assert pairs[("zh", "en")].targets[0] == "I like cats." and len(pairs[("en", "zh")]) == 6
    assert all(score < 0 for p in pairs.values() for score in p.scores)
    with pytest.raises(ValueError, match="train.crosslingual"):
        make_miner("wordbyword", cfg, segment=pieces)
