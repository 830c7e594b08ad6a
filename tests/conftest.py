"""Shared fixtures: a tiny config on the toy corpus, an isolated cache, a trained tiny run."""

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# Tiny everything: every training test finishes in seconds on 2 CPU cores.
TINY = [
    "tokenizer.vocab_size=120",
    "generator.d_model=32", "generator.encoder_layers=1", "generator.decoder_layers=1",
    "generator.heads=2", "generator.ffn_dim=64",
    "discriminator.d_model=32", "discriminator.layers=1", "discriminator.heads=2", "discriminator.ffn_dim=64",
    "train.batch_size=8", "train.ae_steps=4", "train.d_steps=2", "train.adv_steps=4",
    "train.log_every=2", "train.eval_every=1000", "train.ckpt_every=1000", "train.eval_lines=8",
    "data.max_train_lines=300",
]


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Keep tests out of the user's ~/.cache/textgan and make them deterministic and quiet."""
    os.environ["TEXTGAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    torch.manual_seed(0)


@pytest.fixture
def tiny_cfg():
    from textgan.config import load_config

    def make(*overrides):
        return load_config("toy", "cpu", [*TINY, *overrides])

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny toy run trained once per test session (about ten seconds)."""
    from textgan.config import load_config
    from textgan.runner import train

    cfg = load_config("toy", "cpu", [*TINY, "train.ae_steps=30", "train.adv_steps=6"])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), name="tiny", command=["pytest"])
