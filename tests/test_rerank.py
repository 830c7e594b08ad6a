"""Reranking candidates by the run's reward (textgan/decoding: plan, candidates, scores, rerank)."""

import shutil

import torch

import pytest

from textgan.config import ConfigError
from textgan.corpora import cache_dir
from textgan.data import pad
from textgan.decoding.candidates import Retrieval, Writer, decode_texts, drafts
from textgan.decoding.plan import Scoring
from textgan.decoding.scores import Features, combine, content_logprob, growth
from textgan.decoding.search import Search
from textgan.decoding.style import EmbeddingStyle, embedding_style, load_style_classifier
from textgan.transfer import StyleTransfer

LINES = ["the food was cold and the service slow .", "i loved the staff , so friendly !",
         "worst pizza ever .", "great place , will come back ."]


@pytest.fixture(scope="module")
def model(trained_run):
    return StyleTransfer(trained_run, device="cpu")


def best_candidates(style, back, sources, options, target, back_to, w_style=1.0, w_content=1.0, weights=None,
                    terms=None):
    """Per source (ids) the index of its best candidate (ids) and the scores (N, K), every source having K
    candidates: scores.Features read as the reranker reads them, then scores.combine. `weights`: more of
    Scoring's fields (semantic, length_penalty, ...); `terms`: Features' other terms as (N, K) tensors."""
    flat = [c for row in options for c in row]
    repeated = [s for s, row in zip(sources, options) for _ in row]
    extra = {k: v.reshape(-1) for k, v in (terms or {}).items()}
    f = Features(content_logprob(back, repeated, flat, back_to), growth(repeated, flat), **extra)
    if w_style:
        f.style = style.probabilities([c or [] for c in flat])[:, target]
    scores = combine(f, Scoring(style=w_style, content=w_content, **(weights or {}))).view(len(options), -1)
    return scores.argmax(1).tolist(), scores


def scored(model, norm, sources, candidates, domain):
    """The reranker's score of each candidate under the run's decode section as it is now."""
    return model.reranker.score(norm, sources, candidates, domain, model.plan().scoring)


def test_the_chosen_candidate_has_the_highest_harmonic_score(model):
    """Each source keeps the candidate with the highest (w_s + w_c) / (w_s / r_style + w_c / r_content),
    recomputed here one candidate at a time; with w_c = 0 the choice is the style classifier's alone."""
    tok, cfg = model.tok, model.cfg
    style = load_style_classifier(model.run_dir, cfg, tok.vocab_size, "cpu")
    sources = tok.encode(LINES, 32)
    options = [[tok.encode([text], 32)[0] for text in (LINES[i], LINES[(i + 1) % 4], LINES[(i + 2) % 4], "")]
               for i in range(len(LINES))]
    target, back = cfg.data.domains.index("pos"), model.generator_for("neg")
    back_to = tok.domain_ids["neg"]
    for w_s, w_c in ((1.0, 1.0), (3.0, 1.0), (1.0, 0.0)):
        chosen, scores = best_candidates(style, back, sources, options, target, back_to, w_s, w_c)
        for i, row in enumerate(options):
            want = []
            for cand in row:
                r_style = float(style.probabilities([cand])[0, target])
                r_content = float(content_logprob(back, [sources[i]], [cand], back_to).exp()[0])
                want.append((w_s + w_c) / (w_s / max(r_style, 1e-6) + w_c / max(r_content, 1e-6)))
            assert scores[i].tolist() == pytest.approx(want, rel=1e-4, abs=1e-6)
            assert chosen[i] == max(range(len(want)), key=lambda k: (want[k], -k))
    style_alone = style.probabilities([c for row in options for c in row])[:, target].view(len(LINES), 4)
    assert chosen == style_alone.argmax(1).tolist()


def test_reranked_transfer_is_seeded_and_never_worse_than_greedy_by_the_reward(model):
    greedy = model.transfer(LINES, to="pos", normalized=True, tokenized=True)
    assert model.transfer(LINES, to="pos", normalized=True, tokenized=True, candidates=1) == greedy
    assert model.cfg.decode.candidates == 1              # the run's default is plain greedy decoding
    reranked = model.transfer(LINES, to="pos", normalized=True, tokenized=True, candidates=6)
    assert model.transfer(LINES, to="pos", normalized=True, tokenized=True, candidates=6) == reranked
    assert reranked != greedy                            # a tiny model's samples win somewhere
    tok = model.tok
    style = load_style_classifier(model.run_dir, model.cfg, tok.vocab_size, "cpu")
    pairs = [[tok.encode([g], 32)[0], tok.encode([r], 32)[0]] for g, r in zip(greedy, reranked)]
    _, scores = best_candidates(style, model.generator_for("neg"), tok.encode(LINES, 32), pairs,
                                model.cfg.data.domains.index("pos"), tok.domain_ids["neg"])
    assert bool((scores[:, 1] >= scores[:, 0] - 1e-6).all())


def test_the_runs_decode_candidates_is_the_default_and_flags_override_it(model, monkeypatch):
    monkeypatch.setattr(model.cfg.decode, "candidates", 6)
    assert model.transfer(LINES, to="pos", normalized=True) == model.transfer(LINES, to="pos", normalized=True,
                                                                              candidates=6)
    assert model.plan(beam=4).candidates == 1                         # beam search asked: no reranking
    assert model.plan(sample=True).candidates == 1
    assert model.plan().candidates == 6 and model.plan().reranks
    with pytest.raises(ValueError, match="does not combine with beam search"):
        model.transfer(LINES, to="pos", beam=4, candidates=3)
    with pytest.raises(ValueError, match="at least 1"):
        model.transfer(LINES, to="pos", candidates=0)
    monkeypatch.setattr(model, "engine", "ctranslate2")
    with pytest.raises(ValueError, match="needs the torch engine"):
        model.plan()


def test_a_run_without_a_style_classifier_says_so(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("state", "tensorboard"))
    (copy / "style.safetensors").unlink()
    model = StyleTransfer(copy, device="cpu")
    assert model.transfer(LINES[:1], to="pos")                           # greedy needs no classifier
    with pytest.raises(ValueError, match="style classifier"):
        model.transfer(LINES[:1], to="pos", candidates=2)


def test_decode_settings_are_checked(tiny_cfg):
    with pytest.raises(ConfigError, match="candidates >= 1"):
        tiny_cfg("decode.candidates=0")
    with pytest.raises(ConfigError, match="temperature > 0"):
        tiny_cfg("decode.temperature=0")
    assert tiny_cfg("decode.candidates=4").decode.candidates == 4
    with pytest.raises(ConfigError, match="needs a pretrained LM to score fluency"):
        tiny_cfg("decode.fluency_weight=0.01")                     # an encoder-decoder from scratch: no LM
    assert tiny_cfg("decode.fluency_weight=0.01", "decode.fluency_lm=smollm2").decode.fluency_lm == "smollm2"
    with pytest.raises(ConfigError, match="direct_weight=-1"):
        tiny_cfg("decode.direct_weight=-1")
    with pytest.raises(ConfigError, match="fluency_domains names en, not a domain"):
        tiny_cfg("decode.fluency_domains=[en]")
    assert tiny_cfg("decode.fluency_domains=[pos]").decode.fluency_domains == ["pos"]
    with pytest.raises(ConfigError, match="nbest=-1"):
        tiny_cfg("decode.nbest=-1")
    with pytest.raises(ConfigError, match="causal generator .* has no beam search"):
        tiny_cfg("generator.arch=causal", "decode.nbest=4")


def test_the_fluency_term_reads_only_the_domains_it_is_asked_for(model, monkeypatch):
    """decode.fluency_domains: candidates written into a listed domain get + w_f * log p_LM; into another
    domain the LM is not asked at all (translation: an English LM says nothing about Chinese)."""
    class FakeLM:
        asked: list[str] = []

        def logprob(self, texts):
            self.asked.extend(texts)
            return [-float(len(t.split())) for t in texts], [len(t.split()) for t in texts]

    monkeypatch.setattr(model.cfg.decode, "style_weight", 0.0)          # content alone, as in translation
    sources = model.tok.encode(LINES[:2], 32)
    before = {d: scored(model, LINES[:2], sources, LINES[2:4], d) for d in ("neg", "pos")}
    lm = FakeLM()
    monkeypatch.setattr(model.reranker, "fluency", lm)
    monkeypatch.setattr(model.cfg.decode, "fluency_weight", 2.0)
    monkeypatch.setattr(model.cfg.decode, "fluency_domains", ["pos"])
    torch.testing.assert_close(scored(model, LINES[:2], sources, LINES[2:4], "neg"), before["neg"])
    assert lm.asked == []
    words = torch.tensor([len(t.split()) for t in LINES[2:4]], dtype=torch.float)
    torch.testing.assert_close(scored(model, LINES[:2], sources, LINES[2:4], "pos"), before["pos"] - 2.0 * words)
    assert lm.asked == LINES[2:4]


def test_the_direct_term_is_the_generators_own_mean_log_prob_of_the_candidate(model, monkeypatch):
    """decode.direct_weight w_d: + w_d * 1/|y| sum_t log p_G(y_t | x, y_<t), G the generator writing y (the
    noisy channel's direct model); the channel term p(x | y) stays as it was."""
    monkeypatch.setattr(model.cfg.decode, "style_weight", 0.0)
    sources, ids = model.tok.encode(LINES[:2], 32), model.tok.encode(LINES[2:4], model.cfg.train.max_gen_len)
    before = scored(model, LINES[:2], sources, LINES[2:4], "pos")
    monkeypatch.setattr(model.cfg.decode, "direct_weight", 3.0)
    direct = content_logprob(model.generator_for("pos"), ids, sources, model.tok.domain_ids["pos"])
    assert (direct < 0).all()
    torch.testing.assert_close(scored(model, LINES[:2], sources, LINES[2:4], "pos"), before + 3.0 * direct)
    with torch.no_grad():                                    # the same number, teacher-forced by hand
        src, src_mask = pad(sources[:1])
        tgt, tgt_mask = pad(ids[:1])
        logits = model.generator_for("pos")(src, src_mask, tgt, model.tok.domain_ids["pos"])
    by_hand = logits.log_softmax(-1).gather(2, tgt[..., None]).squeeze(-1)[tgt_mask].mean()
    torch.testing.assert_close(direct[0], by_hand)


def test_beam_hypotheses_join_the_candidates(model, monkeypatch):
    """decode.nbest N: the N hypotheses of a beam search of width N compete beside the greedy rewrite (even
    with decode.candidates 1), and each input keeps the one the reranker scores best."""
    monkeypatch.setattr(model.cfg.decode, "nbest", 3)
    assert (model.plan().retrieve, model.plan().nbest) == (0, 3)
    assert not model.plan(candidates=1).reranks                          # one greedy rewrite asked
    max_len = model.cfg.train.max_gen_len
    gen = model.generator_for("pos")
    beams = decode_texts(gen, model.tok, LINES, "pos", Search(beam=3, nbest=3, max_len=max_len))
    assert beams[::3] == decode_texts(gen, model.tok, LINES, "pos", Search(beam=3, max_len=max_len))
    drafted = drafts(Writer(gen, model.tok, "pos", "neg"), LINES, model.plan(), None, None, seed=0)
    greedy = decode_texts(gen, model.tok, LINES, "pos", Search(max_len=max_len))
    assert drafted == [[greedy[i], *beams[3 * i:3 * i + 3]] for i in range(len(LINES))]
    out = model.transfer(LINES, to="pos", normalized=True, tokenized=True)
    sources = model.tok.encode(LINES, model.cfg.data.max_len)
    for i, row in enumerate(drafted):
        row = list(dict.fromkeys(row))
        scores = scored(model, [LINES[i]] * len(row), [sources[i]] * len(row), row, "pos")
        assert out[i] == row[int(scores.argmax())]


def test_cli_transfer_and_convert_take_candidates(trained_run, model, tmp_path, capsys):
    from textgan.cli import main

    want = model.transfer(LINES, to="pos", candidates=4)
    assert main(["transfer", "--model", str(trained_run), "--to", "pos", "--candidates", "4", *LINES]) == 0
    assert capsys.readouterr().out.splitlines() == want
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in LINES))
    assert main(["convert", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt"), "--model", str(trained_run),
                 "--to", "pos", "--candidates", "4", "--quiet"]) == 0
    assert (tmp_path / "out.txt").read_text().splitlines() == want
    capsys.readouterr()
    assert main(["transfer", "--model", str(trained_run), "--candidates", "3", "--beam", "2", LINES[0]]) == 1
    assert "does not combine with beam search" in capsys.readouterr().err


def test_without_a_style_term_the_score_is_content_and_semantic_log_scores(model):
    """w_s = 0 (translation): no classifier is read; score = w_c * mean log p(x | y) + w_e * semantic."""
    tok = model.tok
    sources = tok.encode(LINES[:2], 32)
    options = [[tok.encode([t], 32)[0] for t in (LINES[i], LINES[i + 2])] for i in range(2)]
    back, back_to = model.generator_for("neg"), tok.domain_ids["neg"]
    semantic = torch.tensor([[-5.0, 0.0], [0.0, -5.0]])                # log cosines: prefer 1, then 0
    chosen, scores = best_candidates(None, back, sources, options, 0, back_to, 0.0, 0.5,
                                     weights={"semantic": 10.0}, terms={"semantic": semantic})
    content = content_logprob(back, [s for s in sources for _ in range(2)], [c for r in options for c in r],
                              back_to).view(2, 2)
    torch.testing.assert_close(scores, 0.5 * content + 10.0 * semantic)
    assert chosen == [1, 0]


def test_the_length_penalty_charges_only_growth_beyond_the_input(model):
    """decode.length_penalty: content log-prob - w * max(0, |y| / |x| - 1) in pieces; a candidate as long as
    its input, or shorter, pays nothing."""
    tok = model.tok
    sources = tok.encode(LINES[:2], 8)                                # room for 3 more pieces
    options = [[sources[i], sources[i][: len(sources[i]) // 2], sources[i] + sources[1 - i][:3]] for i in range(2)]
    back, back_to = model.generator_for("neg"), tok.domain_ids["neg"]
    _, plain = best_candidates(None, back, sources, options, 0, back_to, 0.0, 1.0)
    _, charged = best_candidates(None, back, sources, options, 0, back_to, 0.0, 1.0, weights={"length_penalty": 3.0})
    growth = torch.tensor([[0.0, 0.0, 3 / len(sources[i])] for i in range(2)])
    torch.testing.assert_close(charged, plain - 3.0 * growth)


def test_retrieved_sentences_join_the_candidates_and_the_encoder_picks_by_meaning(trained_run, tiny_e5, monkeypatch):
    """decode.retrieve: the target domain's training sentences nearest by the encoder compete; with the
    semantic term dominant, an input found verbatim in the target pool comes back as itself (cosine 1)."""
    model = StyleTransfer(trained_run, device="cpu")
    d = model.cfg.decode
    for key, value in {"encoder": str(tiny_e5[0]), "retrieve": 2, "semantic_weight": 1000.0,
                       "style_weight": 0.0}.items():
        monkeypatch.setattr(d, key, value)
    pool = ["the staff was rude .", LINES[2], "great food , great staff .", LINES[0]]
    reranker = model.reranker
    reranker.retrieval = Retrieval(reranker.sentence_encoder(), {"pos": pool, "neg": pool}, cache_dir("embeddings"))
    assert reranker.retrieval.nearest([LINES[0], LINES[2]], "pos", 1) == [[LINES[0]], [LINES[2]]]
    assert [len(r) for r in reranker.retrieval.nearest(LINES, "pos", 9)] == [4] * 4     # at most the pool
    out = model.transfer([LINES[0], LINES[2]], to="pos", normalized=True, tokenized=True)
    assert out == [LINES[0], LINES[2]]
    greedy = decode_texts(model.generator_for("pos"), model.tok, LINES, "pos", Search(max_len=model.cfg.train.max_gen_len))
    assert model.transfer(LINES, to="pos", normalized=True, tokenized=True, candidates=1) == greedy
    assert model.plan(candidates=1).retrieve == 0                        # one greedy rewrite asked
    assert model.plan(beam=4).retrieve == 0
    assert (model.plan().retrieve, model.plan().nbest) == (2, 0)
    monkeypatch.setattr(model, "engine", "ctranslate2")
    with pytest.raises(ValueError, match="needs the torch"):
        model.plan()


def test_semantic_reranking_needs_an_encoder(tiny_cfg):
    with pytest.raises(ConfigError, match="need a sentence encoder"):
        tiny_cfg("decode.retrieve=4")
    with pytest.raises(ConfigError, match="need a sentence encoder"):
        tiny_cfg("decode.semantic_weight=1")
    assert tiny_cfg("decode.retrieve=4", "decode.encoder=e5").decode.retrieve == 4


def test_the_embedding_style_classifier_learns_and_lives_in_the_run(trained_run, tiny_e5, tmp_path):
    """decode.semantic_style: an MLP over the encoder's embeddings, fitted once on the training sentences,
    saved in the run (with its dev accuracy) and read back identically; a run without it says so."""
    import json

    from textgan.pretrained.encoder import Encoder

    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(2, 16), dim=-1)
    clouds = [torch.nn.functional.normalize(c + 0.05 * torch.randn(64, 16), dim=-1) for c in centres]
    clf = EmbeddingStyle(16, 2).fit(clouds, epochs=200)
    assert clf.accuracy(clouds) == 100.0
    assert clf.probabilities(clouds[0]).shape == (64, 2)

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    encoder = Encoder.load(str(tiny_e5[0]))
    with pytest.raises(ValueError, match="is missing"):
        embedding_style(run, encoder, ["neg", "pos"])
    splits = ({"neg": LINES[::2] * 8, "pos": LINES[1::2] * 8}, {"neg": LINES[::2], "pos": LINES[1::2]})
    fitted = embedding_style(run, encoder, ["neg", "pos"], splits, tmp_path / "cache", log=lambda _: None)
    saved = json.loads((run / "style-hf.json").read_text())
    assert saved["train_sentences"] == 32 and 0 <= saved["dev_accuracy"] <= 100
    emb = encoder.embed(LINES)
    loaded = embedding_style(run, encoder, ["neg", "pos"])
    torch.testing.assert_close(loaded.probabilities(emb), fitted.probabilities(emb))


def test_a_second_style_classifier_counts_by_the_minimum(model):
    """r_style = min(p_C, p_E): a candidate the run's classifier likes but the second one does not scores
    as the second one says."""
    tok, cfg = model.tok, model.cfg
    style = load_style_classifier(model.run_dir, cfg, tok.vocab_size, "cpu")
    sources = tok.encode(LINES[:2], 32)
    options = [[tok.encode([t], 32)[0] for t in (LINES[1], LINES[3])] for _ in sources]
    target, back, back_to = cfg.data.domains.index("pos"), model.generator_for("neg"), tok.domain_ids["neg"]
    second = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    _, scores = best_candidates(style, back, sources, options, target, back_to, 4.0, 1.0, terms={"second_style": second})
    p_c = style.probabilities([c for row in options for c in row])[:, target].view(2, 2)
    content = content_logprob(back, [s for s in sources for _ in range(2)], [c for r in options for c in r], back_to)
    from textgan.rewards import combine

    want = combine(torch.minimum(p_c, second).reshape(-1), content, 4.0, 1.0, mix="harmonic").view(2, 2)
    torch.testing.assert_close(scores, want)
    assert scores[0].argmax() == 1 and scores[1].argmax() == 0


def test_later_passes_compete_with_the_first_and_win_only_by_score(model, monkeypatch):
    """decode.passes: the winner is rewritten again; the result scores at least as high as the one-pass
    result by the same reward (against the original input), is seeded, and scores a candidate drawn again
    in a later pass only once."""
    monkeypatch.setattr(model.cfg.decode, "candidates", 4)
    one = model.transfer(LINES, to="pos", normalized=True, tokenized=True)
    monkeypatch.setattr(model.cfg.decode, "passes", 3)
    three = model.transfer(LINES, to="pos", normalized=True, tokenized=True)
    assert model.transfer(LINES, to="pos", normalized=True, tokenized=True) == three
    asked, real = [], model.reranker.score
    monkeypatch.setattr(model.reranker, "score", lambda norm, sources, candidates, domain, scoring: (
        asked.extend(zip(norm, candidates)) or real(norm, sources, candidates, domain, scoring)))
    assert model.transfer(LINES, to="pos", normalized=True, tokenized=True) == three
    assert len(asked) == len(set(asked)) > len(LINES)                # no candidate of an input scored twice
    monkeypatch.undo()
    ids = model.tok.encode(LINES, 32)
    first, last = scored(model, [*LINES, *LINES], [*ids, *ids], [*one, *three], "pos").view(2, -1)
    assert bool((last >= first - 1e-6).all())


def test_semantic_style_and_passes_are_checked(tiny_cfg):
    with pytest.raises(ConfigError, match="need a sentence encoder"):
        tiny_cfg("decode.semantic_style=true")
    with pytest.raises(ConfigError, match="passes"):
        tiny_cfg("decode.passes=0")
    with pytest.raises(ConfigError, match="length_penalty=-1"):
        tiny_cfg("decode.length_penalty=-1")
    with pytest.raises(ConfigError, match="charges the content term"):
        tiny_cfg("decode.length_penalty=1", "decode.content_weight=0")
    with pytest.raises(ConfigError, match="train.semantic_style"):
        tiny_cfg("train.semantic_style=true", "decode.encoder=e5")
    cfg = tiny_cfg("decode.semantic_style=true", "decode.encoder=e5", "decode.passes=2")
    assert cfg.decode.semantic_style and cfg.decode.passes == 2
