"""decoding.search: the one inference entry point over every generator (the searches themselves are tested
in test_models.py, test_constrain.py, test_unsupervised_mt.py and test_causal.py)."""

import ast
from pathlib import Path

import pytest
import torch

from textgan.config import GeneratorConfig
from textgan.decoding.search import Search, generate, greedy
from textgan.models.generator import Generator, build_generator
from textgan.tokenizer import EOS

ROOT = Path(__file__).resolve().parent.parent


def tiny_generator():
    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, dropout=0.0)
    return Generator(build_generator(cfg, 50, max_len=20)).eval()


def batch():
    torch.manual_seed(1)
    src = torch.randint(6, 50, (2, 5))
    src[:, -1] = EOS
    return src, torch.ones_like(src, dtype=torch.bool)


def test_the_default_search_is_greedy_and_guidance_needs_a_causal_generator():
    g, (src, mask) = tiny_generator(), batch()
    assert generate(g, src, mask, 4, Search(max_len=6)) == greedy(g, src, mask, 4, 6)
    assert Search() == Search(beam=1, nbest=1, sample=False, temperature=1.0, guidance=0.0, max_len=32)
    with pytest.raises(ValueError, match="needs a causal generator"):
        generate(g, src, mask, 4, Search(guidance=1.0), away=5)


def test_an_engine_with_its_own_search_is_handed_the_search():
    class Engine:                                   # as fast.CT2Generator
        def generate(self, src, src_mask, to, search, words=None):
            return [[to, search.beam, search.max_len]] * src.size(0)

    src, mask = batch()
    assert generate(Engine(), src, mask, 4, Search(beam=3, max_len=7)) == [[4, 3, 7]] * 2


def test_the_models_do_not_import_the_decoding_package():
    for path in (ROOT / "textgan" / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "decoding" not in (node.module or ""), path.name
            elif isinstance(node, ast.Import):
                assert not any("decoding" in a.name for a in node.names), path.name
