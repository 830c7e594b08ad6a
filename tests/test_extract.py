"""The extract miner (summarization): the headline n-gram model, the hill-climbing search, the bootstrap on its pairs."""

import json
import math

import numpy as np

from textgan.config import MinerConfig, load_config
from textgan.mining.extract import ExtractMiner, Extractor, NgramLM, idf_weights
from textgan.runner import train

HEADLINES = [h.split() for h in ["france closes schools", "france closes schools", "germany closes schools",
                                 "france opens airport", "police arrest suspects", "police arrest suspects"]]
ARTICLES = [a.split() for a in [
    "the government of france said on monday that it closes all schools in paris because of the flu",
    "police in berlin said on friday they arrest two suspects after a robbery at a bank",
    "germany said it opens a new airport near munich on monday after years of delay",
    "officials said on tuesday that schools will stay closed in france until march",
]]


def test_ngram_model_counts_and_backs_off():
    lm = NgramLM(HEADLINES, order=3, backoff=0.4)
    assert math.isclose(lm.logp(("france", "closes"), "schools"), math.log(2 / 2))          # seen trigram
    assert math.isclose(lm.logp(("<s>", "<s>"), "france"), math.log(3 / 6))               # 3 of 6 headlines start so
    # "germany opens": no trigram (<s> germany opens), no bigram (germany opens): twice the backoff, then the unigram
    unigram = math.log((1 + 1) / (lm.tokens + lm.vocab + 1))
    assert math.isclose(lm.logp(("<s>", "germany"), "opens"), 2 * math.log(0.4) + unigram)
    assert lm.fluency("france closes schools".split()) > lm.fluency("schools closes france".split())


def test_search_objective_rises_at_every_step_and_outputs_are_subsequences_of_the_asked_length():
    lm, idf = NgramLM(HEADLINES), idf_weights(ARTICLES)
    extractor = Extractor(lm, idf, sim_weight=1.0, restarts=2, seed=3)
    for article in ARTICLES:
        for k in (2, 3, 5):
            chosen, score, trace = extractor.search(article, k)
            assert len(chosen) == k and chosen == sorted(set(chosen)) and all(0 <= i < len(article) for i in chosen)
            assert all(b > a for a, b in zip(trace, trace[1:])), trace            # strictly rising
            assert math.isclose(score, extractor.objective(article, np.array([chosen]))[0])
            assert score >= extractor.objective(article, np.arange(k)[None])[0]     # never below its lead start


def test_search_finds_the_planted_headline():
    extractor = Extractor(NgramLM(HEADLINES * 20), idf_weights(ARTICLES), sim_weight=1.0)
    chosen, _, _ = extractor.search(ARTICLES[0], 3)
    assert [ARTICLES[0][i] for i in chosen] == "france closes schools".split()
    chosen, _, _ = extractor.search(ARTICLES[1], 3)
    assert [ARTICLES[1][i] for i in chosen] == "police arrest suspects".split()


def test_swaps_are_every_one_for_one_exchange():
    candidates = Extractor.swaps(np.array([0, 2]), 4)
    assert sorted(map(tuple, candidates.tolist())) == sorted([(1, 2), (2, 3), (0, 1), (0, 3)])


def test_extract_miner_mines_one_direction_with_headline_lengths():
    texts = {"article": [" ".join(a) for a in ARTICLES] * 5, "title": [" ".join(h) for h in HEADLINES]}
    miner = ExtractMiner(MinerConfig(sim_weight=1.0, words=3))
    pairs = miner.mine(texts)
    assert list(pairs) == [("article", "title")]
    p = pairs[("article", "title")]
    assert len(p) == 20 and {len(t.split()) for t in p.targets} <= {3}       # every headline has 3 words
    for source, target in zip(p.sources, p.targets):
        words = iter(source.split())
        assert all(w in words for w in target.split())                     # a subsequence of its article
    assert [len(o.split()) for o in miner.transfer([" ".join(a) for a in ARTICLES] + ["short", ""], "article", "title")] \
        == [3, 3, 3, 3, 1, 0]


def test_bootstrap_phase_trains_on_extracted_pairs(tmp_path):
    cfg = load_config("toy_summarization", "cpu", [
        "tokenizer.vocab_size=100", "generator.d_model=32", "generator.ffn_dim=64", "discriminator.d_model=32",
        "discriminator.ffn_dim=64", "data.max_train_lines=300", "train.ae_steps=0", "train.bootstrap=extract",
        "train.bootstrap_steps=30", "train.bootstrap_self=0", "train.d_steps=0", "train.adv_steps=0",
        "train.log_every=10", "train.lr_g=2e-3", "train.ae_eval_every=30", "miner.sim_weight=1.0"])
    run_dir = train(cfg, runs_dir=tmp_path, name="run")
    info = json.loads((run_dir / "pairs" / "mining.json").read_text())
    assert info["miner"] == "extract" and info["pairs"][0]["pairs"] == 300
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    boot = [r for r in rows if r["phase"] == "boot" and "train/pairs_title" in r]
    assert [r["step"] for r in boot] == [10, 20, 30]
    assert boot[-1]["train/pairs_title"] < boot[0]["train/pairs_title"]            # summarizer learns the pairs
    assert boot[-1]["train/pairs_article"] < boot[0]["train/pairs_article"]        # reconstructor learns them back
    assert any(r["phase"] == "boot" and "dev/rougeL_article2title" in r for r in rows)


def test_prompted_lm_shares_the_prompt_cache_and_scores_as_one_sequence(tiny_llama):
    """models.prompted.PromptedLM.logprob: log p(" s\\n" | [end-of-text] prompt(x)) with the prompt read once for all
    candidates, equal to the LM reading each whole sequence; template "" scores without the article."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textgan.models.prompted import PromptedLM

    lm, tok = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval(), AutoTokenizer.from_pretrained(str(tiny_llama))
    article, texts = "the food was cold and the service slow", ["food cold", "the service was slow", "cold"]
    sums, counts = PromptedLM(lm, tok, template="review: {article}\nshort:").logprob(texts, article)
    prompt = [tok.eos_token_id, *tok("review: " + article + "\nshort:", add_special_tokens=False)["input_ids"]]
    for text, got, n in zip(texts, sums, counts):
        piece = tok(" " + text + "\n", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + piece])
        with torch.no_grad():
            token = lm(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None])[:, 0]
        assert n == len(piece) and math.isclose(got, float(token[len(prompt) - 1:].sum()), abs_tol=1e-3)
    alone, _ = PromptedLM(lm, tok, template="").logprob(texts, article)
    assert alone != sums and all(s < 0 for s in alone)


def test_rescoring_with_a_pretrained_lm_picks_among_the_end_points_neighbours(tiny_llama):
    """miner.rescore_lm: weight 0 keeps the search's end point; a large weight the neighbour (of the
    rescore_top best by J) whose mean LM log-prob given the article is highest."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textgan.models.prompted import PromptedLM

    lm, tok = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval(), AutoTokenizer.from_pretrained(str(tiny_llama))
    rescorer = PromptedLM(lm, tok, template="Article: {article}\nHeadline:")
    ngram, idf = NgramLM(HEADLINES), idf_weights(ARTICLES)
    plain = Extractor(ngram, idf, sim_weight=1.0)
    for article in ARTICLES:
        end, _, _ = plain.search(article, 3)
        kept, _, _ = Extractor(ngram, idf, sim_weight=1.0, rescorer=rescorer, rescore_weight=0.0).search(article, 3)
        assert kept == end
        chosen, score, _ = Extractor(ngram, idf, sim_weight=1.0, rescorer=rescorer, rescore_top=5,
                                     rescore_weight=1e4).search(article, 3)
        neighbours = np.unique(np.concatenate([np.array([end]), Extractor.swaps(np.array(end), len(article))]), axis=0)
        top = neighbours[np.argsort(-plain.objective(article, neighbours), kind="stable")[:5]]
        sums, counts = rescorer.logprob([" ".join(article[i] for i in row) for row in top], " ".join(article))
        assert chosen == top[int(np.argmax(np.array(sums) / np.array(counts)))].tolist()
