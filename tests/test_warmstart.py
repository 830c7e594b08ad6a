"""The encoder-decoder warm-started from a pretrained encoder (generator.init with arch seq2seq,
models/warmstart.py), on the tiny random E5S1 encoder of conftest.py."""

import json

import pytest
import torch

from textgan.checkpoint import load_run
from textgan.data import pad
from textgan.decoding.search import Search, generate
from textgan.runner import train
from textgan.tokenizer import PretrainedPieces

from conftest import ROOT, TINY

LINES = ["我看见猫。", "他们喜欢花。", "I see cats.", "They like flowers."]


@pytest.fixture
def warm_cfg(tiny_e5):
    from textgan.config import load_config

    where, _ = tiny_e5

    def make(*overrides):
        return load_config("toy_translation", "cpu", [
            *[o for o in TINY if not o.startswith(("generator.", "tokenizer."))], "train.d_steps=0",
            f"generator.init={where}", "generator.decoder_layers=1", *overrides])
    return make


def build(tiny_e5, **cfg):
    from transformers import AutoTokenizer

    from textgan.config import GeneratorConfig
    from textgan.models.warmstart import bart_from_encoder

    where, bert = tiny_e5
    pieces = PretrainedPieces.build(AutoTokenizer.from_pretrained(str(where)), LINES, ["<2zh>", "<2en>"])
    return pieces, bart_from_encoder(GeneratorConfig(init=str(where), decoder_layers=2, **cfg), pieces.source_rows(),
                                     32).eval()


def test_the_encoder_computes_what_the_pretrained_encoder_computes(tiny_e5):
    """Token for token, the BART encoder's states equal the (dequantised) BERT's on the same text, given
    BART's LayerNorm epsilon (1e-5; BERT's 1e-12 moves a random tiny model's states by ~1e-2, the real
    encoder's by less than 1e-6 in cosine)."""
    from transformers import BertModel

    pieces, model = build(tiny_e5)
    bert = BertModel.from_pretrained(str(tiny_e5[0]), add_pooling_layer=False, layer_norm_eps=1e-5).eval()
    ours = [[2, *row, 3] for row in pieces.encode(LINES)]                       # <s> text </s>, our ids
    theirs = [[0, *[pieces.pretrained[i] for i in row[1:-1]], 2] for row in ours]
    src, mask = pad(ours, add_eos=False)
    with torch.no_grad():
        h = model.model.encoder(input_ids=src, attention_mask=mask.long()).last_hidden_state
        ref = bert(input_ids=pad(theirs, add_eos=False)[0], attention_mask=mask.long()).last_hidden_state
    assert torch.allclose(h[mask], ref[mask], atol=1e-5)


def test_the_decoder_starts_from_the_encoders_layers_or_at_random(tiny_e5):
    """warm_decoder: self-attention and feed-forward from the encoder's layers; warm_cross: the
    cross-attention too (from the same layer's self-attention)."""
    _, warm = build(tiny_e5)
    _, cold = build(tiny_e5, warm_decoder=False)
    enc, dec = warm.model.encoder.layers[0], warm.model.decoder.layers[0]
    assert torch.equal(enc.fc1.weight, dec.fc1.weight)
    assert torch.equal(enc.self_attn.q_proj.weight, dec.self_attn.q_proj.weight)
    assert not torch.equal(enc.fc1.weight, cold.model.decoder.layers[0].fc1.weight)
    assert not torch.equal(dec.encoder_attn.k_proj.weight, enc.self_attn.k_proj.weight)              # random
    _, cross = build(tiny_e5, warm_cross=True)
    assert torch.equal(cross.model.decoder.layers[1].encoder_attn.k_proj.weight,
                       warm.model.encoder.layers[1].self_attn.k_proj.weight)
    assert warm.get_output_embeddings().weight is warm.model.shared.weight                       # tied
    _, frozen = build(tiny_e5, freeze_layers=1)
    assert not any(p.requires_grad for p in frozen.model.encoder.layers[0].parameters())
    assert all(p.requires_grad for p in frozen.model.encoder.layers[1].parameters())


def test_a_warm_started_run_trains_saves_and_loads_identically(tmp_path, warm_cfg, monkeypatch):
    """Denoising and the mined-pair bootstrap train it (the loss falls); the saved run is a plain BART that
    loads with from_pretrained and decodes what the training model decoded."""
    from textgan.trainer import Trainer

    decoded = {}
    fit = Trainer.fit

    def fit_then_decode(self):
        fit(self)
        g = self.generators[0].eval()
        src, mask = pad(self.tok.encode(LINES, 32))
        decoded["ids"] = generate(g, src, mask, self.tok.domain_ids["en"], Search(max_len=12))

    monkeypatch.setattr(Trainer, "fit", fit_then_decode)
    run = train(warm_cfg("train.ae_steps=8", "train.adv_steps=2", "train.lr_g=1e-3", "train.log_every=1"),
                runs_dir=tmp_path, name="warm")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ae = [r["train/g_loss"] for r in rows if r.get("phase") == "ae" and "train/g_loss" in r]
    assert ae[-1] < ae[0]
    assert (run / "pieces" / "pieces.json").is_file() and not (run / "tokenizer.model").exists()
    cfg, tok, (g,), _ = load_run(run)
    src, mask = pad(tok.encode(LINES, 32))
    assert generate(g, src, mask, tok.domain_ids["en"], Search(max_len=12)) == decoded["ids"]
    assert g.model.config.encoder_layers == 2 and g.model.config.d_model == 32


def test_init_and_init_from_exclude_each_other(warm_cfg, tmp_path):
    from textgan.config import ConfigError

    with pytest.raises(ConfigError, match="exclude each other"):
        warm_cfg(f"generator.init_from={tmp_path}")
    assert (ROOT / "configs" / "translation.yaml").is_file()
