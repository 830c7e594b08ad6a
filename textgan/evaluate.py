"""Metrics on plain text: an independent style judge and sacreBLEU.

The judge is trained apart from the GAN's discriminators, on the task's training text only, so a
generator cannot score well by exploiting the very network it was trained against.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F
from torch import nn

BLEU_TOKENIZE = {"ptb_lower": "none", "zh": "zh", "none": "13a"}


def ngrams(text: str, n: int = 2) -> list[str]:
    words = text.split()
    return words + [" ".join(words[i:i + k]) for k in range(2, n + 1) for i in range(len(words) - k + 1)]


class NgramJudge(nn.Module):
    """A fastText-style linear classifier (Joulin et al. 2017): logistic regression over hashed word
    1-2-grams, the mean of their weight rows. Trains on 180k sentences in seconds with sparse updates.
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

    def save(self, path: Path) -> None:
        torch.save({"domains": self.domains, "buckets": self.buckets, "ngram": self.ngram,
                    "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: Path) -> "NgramJudge":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        judge = cls(blob["domains"], blob["buckets"], blob["ngram"])
        judge.load_state_dict(blob["state"])
        return judge.eval()


def bleu(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a") -> sacrebleu.metrics.bleu.BLEUScore:
    """Corpus BLEU of hypotheses against one or more reference lists (each aligned with hypotheses)."""
    return sacrebleu.corpus_bleu(hypotheses, references, tokenize=tokenize)


def bleu_with_signature(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a"):
    """(corpus BLEU score, sacreBLEU signature string naming the references count and tokenizer)."""
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    return metric.corpus_score(hypotheses, references), str(metric.get_signature())
