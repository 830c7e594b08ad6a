"""The causal generator (generator.arch=causal): a pretrained decoder-only LM as the rewriter.

A tiny random Llama with a byte-level BPE tokenizer trained on the toy corpus, written by the test into a
local directory, stands in for SmolLM2 (loaded through the same `from_pretrained(dir)` path); one test
loads the real packaged SmolLM2 file (tests/test_pretrained.py)."""

import json
import math

import pytest
import torch

from textgan.checkpoint import load_run
from textgan.config import ConfigError
from textgan.decoding.search import Search, generate, guided
from textgan.models.causal import CausalGenerator
from textgan.runner import train
from textgan.tokenizer import EOS, PretrainedPieces, load_tokenizer

from conftest import toy_lines


@pytest.fixture
def causal_cfg(tiny_cfg, tiny_llama):
    def make(*overrides):
        return tiny_cfg("generator.arch=causal", f"generator.init={tiny_llama}", *overrides)
    return make


def pieces_and_model(tiny_llama, finetune="full"):
    from transformers import AutoTokenizer

    from textgan.config import GeneratorConfig
    from textgan.models.causal import build_causal_lm

    pieces = PretrainedPieces.build(AutoTokenizer.from_pretrained(str(tiny_llama)), toy_lines(), ["<2neg>", "<2pos>"])
    model = build_causal_lm(GeneratorConfig(arch="causal", init=str(tiny_llama), finetune=finetune), pieces)
    return pieces, model


def test_pieces_round_trip_and_count_words(tiny_llama):
    from textgan.tokenizer import Tokenizer

    pieces, _ = pieces_and_model(tiny_llama)
    tok = Tokenizer(None, ["neg", "pos"], "ptb_lower", pieces)
    lines = toy_lines()[:50]
    ids = tok.encode(lines, 64)
    assert tok.decode(ids) == lines
    assert tok.domain_ids == {"neg": 4, "pos": 5} and tok.vocab_size == 6 + len(pieces.kept)
    starts = tok.word_starts()
    assert all(sum(starts[i] for i in row) == len(line.split()) for row, line in zip(ids, lines))
    assert tok.decode([ids[0] + [EOS] + ids[1]]) == [lines[0]]          # stops at EOS
    assert pieces.encode("zzqx ü", out_type=str)                        # bytes never seen still encode


def test_sliced_model_gives_the_pretrained_logits_of_kept_pieces(tiny_llama):
    """Cutting the vocabulary keeps the pretrained model's function on the kept pieces: same hidden
    states, and logits that are the pretrained logits of those pieces."""
    from transformers import AutoModelForCausalLM

    pieces, model = pieces_and_model(tiny_llama)
    full = AutoModelForCausalLM.from_pretrained(str(tiny_llama)).eval()
    model.eval()
    ours = torch.tensor([pieces.encode(toy_lines()[0])])
    theirs = torch.tensor([[pieces.pretrained[i] for i in ours[0].tolist()]])
    kept = torch.tensor(pieces.pretrained[6:])
    with torch.no_grad():
        a = model(input_ids=ours).logits[0, :, 6:]
        b = full(input_ids=theirs).logits[0][:, kept]
    assert torch.allclose(a, b, atol=1e-5)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_left_padded_prompts_read_as_if_alone(tiny_llama):
    """Teacher-forced logits of a row do not depend on the other rows of its batch (padding, lengths)."""
    pieces, model = pieces_and_model(tiny_llama)
    g = CausalGenerator(model.eval())
    rows = [pieces.encode(t) for t in toy_lines()[:3]]
    from textgan.data import pad

    src, mask = pad(rows)
    tgt, _ = pad([r + [EOS] for r in reversed(rows)])
    together = g(src, mask, tgt, 5)
    for i, r in enumerate(rows):
        s, m = pad([r])
        alone = g(s, m, tgt[i:i + 1], 5)
        assert torch.allclose(together[i:i + 1, :alone.size(1)], alone, atol=1e-5)


@pytest.mark.parametrize("mode", ["greedy", "multinomial", "gumbel", "soft"])
def test_sampling_agrees_with_teacher_forcing(tiny_llama, mode):
    """The cached decoding loop's log-probabilities are those of one teacher-forced pass over its output
    (greedy, multinomial: the loop feeds back the ids), and soft and Gumbel samples (fed back as
    distributions) carry a gradient to the LoRA adapters."""
    pieces, model = pieces_and_model(tiny_llama, finetune="lora")
    g = CausalGenerator(model)
    g.eval()
    from textgan.data import pad

    src, mask = pad([pieces.encode(t) for t in toy_lines()[:4]])
    torch.manual_seed(1)
    drawn = g.sample(src, mask, 5, mode=mode, max_len=12)
    assert drawn.ids.shape == drawn.mask.shape and drawn.ids.size(1) <= 12
    if mode in ("greedy", "multinomial"):
        again = g.relax(src, mask, 5, drawn, "multinomial")
        assert torch.allclose(again.logprobs[drawn.mask], drawn.logprobs[drawn.mask], atol=1e-4)
    else:
        (drawn.probs[..., 6:].sum() + drawn.probs[:, :, 7].sum()).backward()
        grads = [p.grad for n, p in model.named_parameters() if "lora_" in n and p.grad is not None]
        assert grads and any(float(x.abs().sum()) > 0 for x in grads)


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_guided_decoding_chooses_by_the_guided_teacher_forced_scores(tiny_llama, weight):
    """Each token of a guided greedy rewrite is the argmax of (1 + w) log p(. | x, <2pos>, y_<t) -
    w log p(. | x, <2neg>, y_<t), both recomputed by teacher forcing over the output; w = 0 is greedy."""
    from textgan.data import pad

    pieces, model = pieces_and_model(tiny_llama)
    g = CausalGenerator(model).eval()
    src, mask = pad([pieces.encode(t) for t in toy_lines()[:4]])
    out = generate(g, src, mask, 5, Search(max_len=10, guidance=weight), away=4)
    if weight == 0:
        assert out == generate(g, src, mask, 5, Search(max_len=10))
    assert out == guided(g, src, mask, 5, 4, weight, max_len=10)
    tgt, tgt_mask = pad(out, add_eos=False)
    with torch.no_grad():
        toward = g(src, mask, tgt, 5).log_softmax(-1)
        back = g(src, mask, tgt, 4).log_softmax(-1)
    chosen = (toward + weight * (toward - back)).argmax(-1)
    assert torch.equal(chosen[tgt_mask], tgt[tgt_mask])
    plain = generate(g, src, mask, 5, Search(max_len=10))
    if weight:
        assert out != plain or weight == 0                   # guidance changes some choice of a random model


def test_config_refuses_what_a_causal_generator_cannot_do(tiny_cfg):
    with pytest.raises(ConfigError, match="needs generator.init"):
        tiny_cfg("generator.arch=causal")
    with pytest.raises(ConfigError, match="does not support train.latent_adv"):
        tiny_cfg("generator.arch=causal", "generator.init=smollm2", "train.latent_adv=0.5")


@pytest.mark.parametrize("estimator", ["soft", "gumbel", "reinforce"])
def test_every_estimator_trains_the_causal_generator(tmp_path, causal_cfg, estimator):
    run_dir = train(causal_cfg(f"train.estimator={estimator}", "generator.finetune=lora", "generator.lora_r=4"),
                    runs_dir=tmp_path, name="run")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 10 and rows[-1]["phase"] == "adv"
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k.startswith("train/"))
    ae = [r["train/g_loss"] for r in rows if r["phase"] == "ae" and "train/g_loss" in r]
    assert ae[-1] < ae[0]                                    # the denoising loss falls within 4 steps
    assert (run_dir / "pieces" / "pieces.json").is_file() and not (run_dir / "tokenizer.model").exists()


def test_causal_run_saves_loads_and_transfers_identically(tmp_path, causal_cfg, monkeypatch):
    """The saved run (LoRA merged into plain weights) loads with from_pretrained and decodes what the
    training model (adapters unmerged) decoded; `textgan.load` transfers with it; beam search is refused
    with its reason. The tiny model's greedy output is degenerate, so the logits say that the adapters are
    kept: the loaded model's teacher-forced logits are the training model's, which the adapters move."""
    from textgan.data import pad
    from textgan.trainer import Trainer
    from textgan.transfer import StyleTransfer

    lines, decoded = toy_lines()[:6], {}
    fit = Trainer.fit

    def fit_then_decode(self):
        fit(self)
        g = self.generators[0].eval()
        src, mask = pad(self.tok.encode(lines, 32))
        decoded["ids"] = generate(g, src, mask, self.tok.domain_ids["pos"], Search(max_len=self.cfg.train.max_gen_len))
        with torch.no_grad():
            decoded["logits"] = g(src, mask, src, self.tok.domain_ids["pos"])              # (6, S, V)
            with g.model.disable_adapter():
                decoded["without"] = g(src, mask, src, self.tok.domain_ids["pos"])

    monkeypatch.setattr(Trainer, "fit", fit_then_decode)
    run_dir = train(causal_cfg("generator.finetune=lora", "generator.lora_r=4", "train.keep_best=false"),
                    runs_dir=tmp_path, name="run")
    cfg, tok, (g,), _ = load_run(run_dir)
    assert isinstance(g, CausalGenerator) and not hasattr(g.model, "merge_and_unload")
    src, mask = pad(tok.encode(lines, 32))
    assert generate(g, src, mask, tok.domain_ids["pos"], Search(max_len=cfg.train.max_gen_len)) == decoded["ids"]
    with torch.no_grad():
        logits = g.eval()(src, mask, src, tok.domain_ids["pos"])
    delta = (decoded["logits"] - decoded["without"]).abs().max()
    assert delta > 1e-3 and (logits - decoded["logits"]).abs().max() < delta / 100
    model = StyleTransfer(run_dir, device="cpu")
    assert model.transfer(lines, to="pos", normalized=True, tokenized=True) == tok.decode(decoded["ids"])
    with pytest.raises(ValueError, match="beam search is not implemented"):
        model.transfer(lines[:2], to="pos", beam=4)
    assert isinstance(load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize).sp, PretrainedPieces)


def test_a_run_of_zero_steps_is_the_pretrained_model_as_it_starts(tmp_path, causal_cfg, tiny_llama):
    """The zero-shot row: a run that trains nothing saves the cut pretrained model, which decodes as the
    pretrained model prompted with source and domain token does."""
    from textgan.data import pad

    run_dir = train(causal_cfg("train.ae_steps=0", "train.d_steps=0", "train.adv_steps=0"), runs_dir=tmp_path,
                    name="zero")
    _, tok, (g,), _ = load_run(run_dir)
    _, model = pieces_and_model(tiny_llama)
    src, mask = pad(tok.encode(toy_lines()[:4], 32))
    assert generate(g, src, mask, 5, Search(max_len=8)) == generate(CausalGenerator(model.eval()), src, mask, 5, Search(max_len=8))


def test_the_ctranslate2_engine_decodes_a_causal_run_as_torch_does(tmp_path, causal_cfg):
    """float32 CTranslate2 (its Generator, prompt as start tokens) writes torch's greedy outputs; int8 runs."""
    pytest.importorskip("ctranslate2")
    from textgan.transfer import StyleTransfer

    run_dir = train(causal_cfg("generator.finetune=full", "train.lr_g=2e-3"), runs_dir=tmp_path, name="run")
    lines = toy_lines()[::40][:30]
    torch_out = StyleTransfer(run_dir, device="cpu").transfer(lines, to="pos", normalized=True, tokenized=True)
    ct2 = StyleTransfer(run_dir, device="cpu", engine="ctranslate2", quantization="float32")
    assert ct2.transfer(lines, to="pos", normalized=True, tokenized=True) == torch_out
    int8 = StyleTransfer(run_dir, device="cpu", engine="ctranslate2", quantization="int8")
    assert len(int8.transfer(lines, to="pos", normalized=True, tokenized=True)) == len(lines)


def test_a_causal_run_resumes_with_its_weights_adapters_and_optimizer_state(tmp_path, causal_cfg, monkeypatch):
    """--resume rebuilds the pretrained model with its adapters, then the checkpoint puts back every weight
    (LoRA and the cut embeddings), the optimizer moments, the schedules and the baseline."""
    from test_training import _assert_same, saved_and_resumed_states

    options = ["train.estimator=reinforce", "train.baseline=ema", "generator.lora_r=4"]
    saved, resumed = saved_and_resumed_states(causal_cfg, options, tmp_path, monkeypatch)
    assert resumed["step"] == 10
    _assert_same(resumed, saved[10])


def test_a_guidance_ladder_keeps_the_best_scored_of_the_greedy_rewrites_at_each_weight(tmp_path, causal_cfg,
                                                                                        monkeypatch):
    """decode.guidance_candidates: each input keeps, of its greedy rewrites at decode.guidance and at each
    listed weight, the one the reranker (decoding/rerank.py) scores best; candidates=1 asks for the one
    greedy rewrite at decode.guidance, and guidance 0 turns the ladder off with the guidance."""
    from textgan.models.prompted import PromptedLM
    from textgan.transfer import StyleTransfer

    ladder = [0.5, 2.0, 6.0]
    run_dir = train(causal_cfg("decode.guidance=0.5", "decode.guidance_candidates=[2.0, 6.0]"), runs_dir=tmp_path,
                    name="run")
    model = StyleTransfer(run_dir, device="cpu")
    lines = toy_lines()[:8]
    at = {w: model.transfer(lines, to="pos", normalized=True, tokenized=True, candidates=1, guidance=w) for w in ladder}
    assert len({tuple(out) for out in at.values()}) > 1          # the weights write different rewrites
    out = model.transfer(lines, to="pos", normalized=True, tokenized=True)
    tok = model.tok
    sources, scoring = tok.encode(lines, model.cfg.data.max_len), model.plan().scoring
    chosen = [int(model.reranker.score([lines[i]] * len(ladder), [sources[i]] * len(ladder),
                                       [at[w][i] for w in ladder], "pos", scoring).argmax()) for i in range(len(lines))]
    assert out == [at[ladder[k]][i] for i, k in enumerate(chosen)]
    assert model.transfer(lines, to="pos", normalized=True, tokenized=True, guidance=0.5) == out
    last = {(lines[i], text) for i, text in enumerate(at[6.0])}
    monkeypatch.setattr(model.reranker, "score", lambda norm, sources, candidates, domain, scoring: torch.tensor(
        [float(pair in last) for pair in zip(norm, candidates)]))   # a reranker preferring the last weight's
    assert model.transfer(lines, to="pos", normalized=True, tokenized=True) == at[6.0]
    monkeypatch.undo()
    model.cfg.decode.fluency_weight = 1e4                            # the fluency LM's total log-prob decides
    fluency, _ = PromptedLM.load(model.cfg.generator.init).logprob([at[w][i] for i in range(len(lines)) for w in ladder])
    scores = torch.tensor(fluency).view(len(lines), len(ladder))
    assert model.transfer(lines, to="pos", normalized=True, tokenized=True) == [
        at[ladder[k]][i] for i, k in enumerate(scores.argmax(1).tolist())]
    assert model.plan(guidance=0.0).ladder == ()
    assert model.plan(sample=True, guidance=0.5).ladder == ()
    with pytest.raises(ConfigError, match="guidance >= 0"):
        causal_cfg("decode.guidance_candidates=[1.0, -0.5]")
    with pytest.raises(ConfigError, match="fluency_weight=-1"):
        causal_cfg("decode.fluency_weight=-1")


def test_the_fluency_lm_scores_each_text_alone_whatever_its_batch(tiny_llama):
    """PromptedLM with no prompt (the reranker's fluency term): the total log p of [end-of-text] + " text\\n"
    under the LM, the same for a text alone and padded in a batch with longer ones."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from textgan.models.prompted import PromptedLM

    lm, tok = AutoModelForCausalLM.from_pretrained(str(tiny_llama)), AutoTokenizer.from_pretrained(str(tiny_llama))
    fluency = PromptedLM(lm, tok)
    lines = toy_lines()[:6]
    batch, counts = fluency.logprob(lines)
    ids = torch.tensor([[tok.eos_token_id, *tok(" " + lines[0] + "\n", add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        by_hand = lm(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).sum()
    assert len(batch) == 6 and math.isclose(batch[0], float(by_hand), abs_tol=1e-4) and counts[0] == ids.shape[1] - 1
    assert math.isclose(fluency.logprob([lines[3]])[0][0], batch[3], abs_tol=1e-4)
    assert all(b < 0 for b in batch)
