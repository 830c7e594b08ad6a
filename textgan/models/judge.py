"""Style judges: text classifiers over plain text that say which domain a sentence belongs to.

Trained on a task's training text only, apart from any GAN, they are used by training (the dev style
accuracy), inference (`detect`) and scoring (the evaluator's ACC). Two kinds, so that a generator that
learns to fool one classifier shows as a gap between their accuracies:

- `NgramJudge`: a linear model over hashed word 1-2-grams (fastText-style);
- `NeuralJudge`: a word-level convolutional network (TextCNN).

Both read `tokenizer.units` (words; each CJK character one unit) and share one interface:
`fit(texts_by_domain)`, `predict(texts)`, `accuracy(texts, domain)`, `save(path)`, `load(path)`.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..tokenizer import units


def ngrams(text: str, n: int = 2) -> list[str]:
    """1..n-grams of `units` (words; single characters in Chinese text)."""
    words = units(text)
    return words + [" ".join(words[i:i + k]) for k in range(2, n + 1) for i in range(len(words) - k + 1)]


class _Judge(nn.Module):
    """What both judges share: `forward(texts) -> (B, k)` logits gives predict and accuracy."""

    domains: list[str]

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 1024) -> list[str]:
        self.eval()
        out = []
        for start in range(0, len(texts), batch_size):
            out += self(texts[start:start + batch_size]).argmax(-1).tolist()
        return [self.domains[i] for i in out]

    def accuracy(self, texts: list[str], domain: str) -> float:
        """Share of `texts` judged to be in `domain`, in percent."""
        if not texts:
            return 0.0
        return 100.0 * sum(p == domain for p in self.predict(texts)) / len(texts)


class NgramJudge(_Judge):
    """A fastText-style linear classifier (Joulin et al. 2017): logistic regression over hashed 1-2-grams
    of `units` (words; each CJK character one unit, so Chinese gets character n-grams), the mean of their
    weight rows. Trains on 180k sentences in seconds with sparse updates.
    """

    def __init__(self, domains: list[str], buckets: int = 1 << 18, ngram: int = 2):
        super().__init__()
        self.domains = list(domains)
        self.buckets, self.ngram = buckets, ngram
        self.bag = nn.EmbeddingBag(buckets, len(domains), mode="mean", sparse=True)
        nn.init.zeros_(self.bag.weight)
        self.bias = nn.Parameter(torch.zeros(len(domains)))

    def featurize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, offsets = [], []
        for text in texts:
            offsets.append(len(ids))
            grams = ngrams(text, self.ngram) or [""]
            ids += [zlib.crc32(g.encode()) % self.buckets for g in grams]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.bag(*self.featurize(texts)) + self.bias                    # (B, k)

    def fit(self, texts_by_domain: dict[str, list[str]], epochs: int = 3, batch_size: int = 256,
            lr: float = 0.05, seed: int = 0) -> "NgramJudge":
        data = [(t, i) for i, d in enumerate(self.domains) for t in texts_by_domain[d]]
        rng = random.Random(seed)
        optimizers = [torch.optim.SparseAdam([self.bag.weight], lr=lr), torch.optim.Adam([self.bias], lr=lr)]
        self.train()
        for _ in range(epochs):
            rng.shuffle(data)
            for start in range(0, len(data), batch_size):
                texts, labels = zip(*data[start:start + batch_size])
                loss = F.cross_entropy(self(list(texts)), torch.tensor(labels))
                for opt in optimizers:
                    opt.zero_grad()
                loss.backward()
                for opt in optimizers:
                    opt.step()
        self.eval()
        return self

    def save(self, path: Path) -> None:
        torch.save({"domains": self.domains, "buckets": self.buckets, "ngram": self.ngram,
                    "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: Path) -> "NgramJudge":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        judge = cls(blob["domains"], blob["buckets"], blob["ngram"])
        judge.load_state_dict(blob["state"])
        return judge.eval()


PAD_ID, UNK_ID = 0, 1


class NeuralJudge(_Judge):
    """A word-level convolutional classifier (Kim 2014, "Convolutional Neural Networks for Sentence
    Classification"): embeddings of `units` (the `vocab_size` most frequent ones of the training text,
    the rest one UNK), 1-D convolutions of widths 3/4/5 with ReLU and max-pooling over time, dropout,
    and a linear layer over the k domains.

    `fit` builds the vocabulary and initialises every weight from `seed`, then trains with Adam for a
    fixed number of epochs on all of the training text, each domain weighted by the inverse of its share
    so that an unbalanced corpus does not tilt the judge toward the larger domain. Texts are cut to
    `max_len` units.
    """

    def __init__(self, domains: list[str], vocab: list[str] = (), vocab_size: int = 20000, dim: int = 128,
                 filters: int = 100, widths: tuple[int, ...] = (3, 4, 5), dropout: float = 0.5, max_len: int = 100):
        super().__init__()
        self.domains = list(domains)
        self.vocab_size, self.dim, self.filters = vocab_size, dim, filters
        self.widths, self.dropout_p, self.max_len = tuple(widths), dropout, max_len
        self.dropout = nn.Dropout(dropout)
        with torch.random.fork_rng(devices=[]):          # placeholder weights (fit or load replaces them)
            self._build(list(vocab))

    def _build(self, vocab: list[str]) -> None:
        """(Re)create the layers for `vocab` (ids 0 padding, 1 UNK, then the words)."""
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab, start=2)}
        self.embed = nn.Embedding(len(vocab) + 2, self.dim, padding_idx=PAD_ID)
        # wide convolutions (w - 1 zeros each side, as Kim pads): a text shorter than a filter still has windows
        self.convs = nn.ModuleList(nn.Conv1d(self.dim, self.filters, w, padding=w - 1) for w in self.widths)
        self.out = nn.Linear(self.filters * len(self.widths), len(self.domains))

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Texts -> right-padded unit ids (B, T), at most max_len units each."""
        rows = [[self.index.get(u, UNK_ID) for u in units(t)[: self.max_len]] for t in texts]
        ids = torch.full((len(rows), max([1] + [len(r) for r in rows])), PAD_ID, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) unit ids -> (B, k) domain logits."""
        x = self.embed(ids).transpose(1, 2)                                      # (B, dim, T)
        text = (ids != PAD_ID).float().unsqueeze(1)                              # (B, 1, T)
        pooled = []
        for conv, w in zip(self.convs, self.widths):
            h = F.relu(conv(x))                                                  # (B, filters, T + w - 1)
            # Windows lying wholly in the batch's padding are zeroed (ReLU outputs are >= 0, so zero never
            # wins the max): a text's score does not depend on how long the other texts of its batch are.
            touches = F.max_pool1d(F.pad(text, (w - 1, w - 1)), w, stride=1)      # (B, 1, T + w - 1)
            pooled.append((h * touches).amax(dim=2))                             # (B, filters)
        return self.out(self.dropout(torch.cat(pooled, dim=1)))                  # (B, k)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.logits(self.encode(texts).to(self.embed.weight.device))      # (B, k)

    def fit(self, texts_by_domain: dict[str, list[str]], epochs: int = 1, batch_size: int = 256,
            lr: float = 2e-3, seed: int = 0, progress: bool = False) -> "NeuralJudge":
        counts = Counter(u for d in self.domains for t in texts_by_domain[d] for u in units(t)[: self.max_len])
        data = [(t, i) for i, d in enumerate(self.domains) for t in texts_by_domain[d]]
        sizes = [len(texts_by_domain[d]) for d in self.domains]
        weight = torch.tensor([len(data) / (len(sizes) * max(n, 1)) for n in sizes])   # each domain counts alike
        rng = random.Random(seed)
        with torch.random.fork_rng(devices=[]):        # seeded init and dropout, the caller's RNG untouched
            torch.manual_seed(seed)
            # most_common breaks ties by first appearance: the vocabulary is a function of the text alone
            self._build([w for w, _ in counts.most_common(self.vocab_size)])
            opt = torch.optim.Adam(self.parameters(), lr=lr)
            steps = epochs * -(-len(data) // batch_size)
            self.train()
            with tqdm(total=steps, desc="neural judge", disable=not progress) as bar:
                for _ in range(epochs):
                    rng.shuffle(data)
                    for start in range(0, len(data), batch_size):
                        texts, labels = zip(*data[start:start + batch_size])
                        loss = F.cross_entropy(self(list(texts)), torch.tensor(labels), weight=weight)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        bar.update()
        self.eval()
        return self

    def describe(self) -> str:
        return (f"NeuralJudge: word CNN (Kim 2014; {len(self.vocab)} words + UNK, embeddings {self.dim}, "
                f"{self.filters} filters of widths {'/'.join(map(str, self.widths))}, max-pooled)")

    def save(self, path: Path) -> None:
        torch.save({"domains": self.domains, "vocab": self.vocab, "vocab_size": self.vocab_size, "dim": self.dim,
                    "filters": self.filters, "widths": list(self.widths), "dropout": self.dropout_p,
                    "max_len": self.max_len, "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: Path) -> "NeuralJudge":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        judge = cls(blob["domains"], blob["vocab"], blob["vocab_size"], blob["dim"], blob["filters"],
                    tuple(blob["widths"]), blob["dropout"], blob["max_len"])
        judge.load_state_dict(blob["state"])
        return judge.eval()
