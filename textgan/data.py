"""A task's corpora as normalized splits; unaligned per-domain batches: encoding, length bucketing,
padding, denoising noise."""

from __future__ import annotations

import random
import sys
from typing import Iterator

import datasets
import torch

from .corpora import load_card, load_split
from .tokenizer import EOS, PAD, UNK, Tokenizer, normalize


def normalize_split(split, scheme: str):
    """Normalize every domain of a DatasetDict (cached by `datasets`, keyed on the scheme)."""
    return split.map(lambda batch: {"text": [normalize(t, scheme) for t in batch["text"]]},
                     batched=True, desc=f"normalize ({scheme})")


def hold_out_dev(train, corpus: str, lines: int = 1000):
    """A corpus without a dev split: (train, dev) where dev is a seeded sample of train, per domain 5 % of
    its lines (at least 1, at most `lines`), taken out of train. Never the test split: choosing settings
    or checkpoints on test would make its scores optimistic."""
    parts = {d: part.train_test_split(test_size=max(1, min(lines, len(part) // 20)), seed=0, shuffle=True)
             for d, part in train.items()}
    dev = datasets.DatasetDict({d: p["test"] for d, p in parts.items()})
    print(f"corpus '{corpus}' has no dev split: held out " + ", ".join(f"{len(p)} {d}" for d, p in dev.items())
          + " lines of its train split as dev (not trained on)", file=sys.stderr)
    return datasets.DatasetDict({d: p["train"] for d, p in parts.items()}), dev


def prepare_data(cfg, data_dir=None):
    """Normalized train and dev splits of the task's corpus (DatasetDicts, cached); a corpus without a dev
    split gets one held out of train (`hold_out_dev`)."""
    card = load_card(cfg.data.corpus)
    missing = [d for d in cfg.data.domains if d not in card.domains]
    if missing:
        raise ValueError(f"corpus '{card.name}' has no domain(s) {missing}; it has {card.domains}")
    scheme = cfg.data.normalize
    train = load_split(card, "train", data_dir, cfg.data.max_train_lines)
    if "dev" in card.files:
        dev = load_split(card, "dev", data_dir)
    else:
        train, dev = hold_out_dev(train, card.name)
    if card.normalized != scheme:
        train, dev = normalize_split(train, scheme), normalize_split(dev, scheme)
    for name in cfg.data.extra_train:          # e.g. monolingual text beside a small corpus (translation)
        extra_card = load_card(name)
        extra = load_split(extra_card, "train", data_dir, cfg.data.max_train_lines)
        if extra_card.normalized != scheme:
            extra = normalize_split(extra, scheme)
        unknown = sorted(set(extra) - set(cfg.data.domains))
        if unknown:
            raise ValueError(f"extra corpus '{name}' has domain(s) {unknown} the task does not have ({cfg.data.domains})")
        train = datasets.DatasetDict({d: datasets.concatenate_datasets([train[d], extra[d]]) if d in extra else train[d]
                                      for d in cfg.data.domains})
    return train, dev


def encode_split(split, tok: Tokenizer, max_len: int) -> dict[str, list[list[int]]]:
    """{domain: [ids, ...]} for a normalized DatasetDict; empty encodings are dropped."""
    out = {}
    for domain, part in split.items():
        out[domain] = [ids for ids in tok.encode(list(part["text"]), max_len) if ids]
    return out


class DomainBatches:
    """An endless stream of batches from one domain's sentences, bucketed by length.

    Each pass shuffles the sentences, sorts chunks of `bucket_batches` batches by length (so a batch
    holds sentences of similar length and little padding), and shuffles the batches. Under several
    processes each takes its own shard (`rank::world`).
    """

    def __init__(self, seqs: list, batch_size: int, bucket_batches: int = 50,
                 seed: int = 0, rank: int = 0, world: int = 1, length=len):
        self.seqs = seqs[rank::world]
        if not self.seqs:
            raise ValueError("a domain has no training sentences for this process")
        self.batch_size = batch_size
        self.bucket = batch_size * max(1, bucket_batches)
        self.rng = random.Random(seed * 1009 + rank)
        self.length = length                     # item -> its length, for bucketing (items: id lists, or pairs)

    def __iter__(self) -> Iterator[list[list[int]]]:
        while True:
            order = list(range(len(self.seqs)))
            self.rng.shuffle(order)
            batches = []
            for start in range(0, len(order), self.bucket):
                chunk = sorted(order[start:start + self.bucket], key=lambda i: self.length(self.seqs[i]))
                batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            self.rng.shuffle(batches)
            for batch in batches:
                yield [self.seqs[i] for i in batch]


def pad(seqs: list[list[int]], add_eos: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """List of id lists -> ids (B, T) padded with PAD, mask (B, T) True on real tokens (EOS included)."""
    seqs = [list(s) + [EOS] if add_eos else list(s) for s in seqs]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, ids != PAD


def add_noise(seqs: list[list[int]], drop: float, blank: float, shuffle_k: float,
              rng: random.Random) -> list[list[int]]:
    """Denoising-autoencoder noise of Lample et al. 2018 ("Unsupervised MT using monolingual corpora only").

    Each word is dropped with prob `drop`, else replaced by UNK with prob `blank`; then words are
    shuffled locally: word i moves to position argsort(i + U(0, k)), so none moves more than k places.
    """
    out = []
    for s in seqs:
        kept = [t for t in s if rng.random() >= drop] or list(s[:1])
        kept = [UNK if rng.random() < blank else t for t in kept]
        if shuffle_k > 0:
            keys = [i + rng.uniform(0, shuffle_k) for i in range(len(kept))]
            kept = [t for _, t in sorted(zip(keys, kept))]
        out.append(kept)
    return out
