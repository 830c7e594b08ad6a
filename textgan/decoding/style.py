"""The style classifiers the reranker asks (and train.semantic_style's reward): the run's own over pieces
(rewards.StyleClassifier, style.safetensors) and `EmbeddingStyle` over a pretrained sentence encoder's
embeddings (decode.semantic_style), both fitted on the run's training text, apart from the evaluator's
judges."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..checkpoint import max_positions
from ..pretrained.encoder import cached_embeddings
from ..rewards import StyleClassifier


def load_style_classifier(run_dir: Path, cfg, vocab_size: int, device) -> StyleClassifier:
    """The run's style classifier; a clear error for runs trained without one."""
    path = Path(run_dir) / "style.safetensors"
    if not path.is_file():
        raise ValueError(f"reranking candidates needs the run's style classifier ({path} is missing: the run "
                         "was trained with neither a style reward, a pair filter nor select_by=style); "
                         "use decode.candidates=1")
    model = StyleClassifier(cfg.discriminator, vocab_size, len(cfg.data.domains), max_positions(cfg))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


class EmbeddingStyle(torch.nn.Module):
    """p(domain | e(y)): a one-hidden-layer MLP over a pretrained sentence encoder's embedding of y
    (decode.semantic_style), trained on the run's training sentences. The run's style classifier reads
    pieces and is fooled by a praise word put in front of a complaint left standing (dev: "不错,服务人员的态度
    较差" p_C 0.86 positive); an encoder's embedding keeps the complaint (p_E 0.12), so the reranker asks
    both: r_style = min(p_C, p_E)."""

    SCALE = 10.0       # unit-length embeddings, scaled so the logits need not grow large weights

    def __init__(self, dim: int, classes: int, hidden: int = 256):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, classes))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, H) embeddings -> (N, classes) logits."""
        return self.net(emb * self.SCALE)

    def fit(self, emb_by_class: list[torch.Tensor], epochs: int = 20, batch_size: int = 512, lr: float = 1e-3,
            seed: int = 0) -> "EmbeddingStyle":
        """Adam on cross-entropy, the classes weighted alike (inverse frequency)."""
        x = torch.cat(emb_by_class)
        y = torch.cat([torch.full((len(e),), c) for c, e in enumerate(emb_by_class)])
        weight = len(y) / (len(emb_by_class) * torch.bincount(y, minlength=len(emb_by_class)).clamp(min=1).float())
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        for _ in range(epochs):
            for rows in torch.randperm(len(y), generator=gen).split(batch_size):
                loss = torch.nn.functional.cross_entropy(self(x[rows]), y[rows], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return self.eval()

    @torch.no_grad()
    def probabilities(self, emb: torch.Tensor) -> torch.Tensor:
        return self(emb).softmax(-1)

    def accuracy(self, emb_by_class: list[torch.Tensor]) -> float:
        right = sum(int((self.probabilities(e).argmax(-1) == c).sum()) for c, e in enumerate(emb_by_class))
        return 100.0 * right / max(1, sum(len(e) for e in emb_by_class))


def embedding_style(run_dir: Path, encoder, domains: list[str], splits: tuple[dict, dict] | None = None,
                    cache: Path | None = None, log=print) -> EmbeddingStyle:
    """The run's EmbeddingStyle over `encoder` (decode.semantic_style): <run>/style-<encoder>.safetensors,
    or, where it is missing and `splits` (the training and dev sentences of each domain) are given, fitted
    on the training sentences (their embeddings cached under `cache`, shared with retrieval and the mining
    miner) and saved with its dev accuracy (.json beside)."""
    path = Path(run_dir) / f"style-{Path(encoder.name).name or 'encoder'}.safetensors"
    model = EmbeddingStyle(encoder.dim, len(domains))
    if path.is_file():
        model.load_state_dict(load_file(str(path)))
        return model.eval()
    if splits is None:
        raise ValueError(f"{path} is missing: the run's style classifier over {encoder.name} embeddings is "
                         "fitted when a run with decode.semantic_style or train.semantic_style starts")
    train, dev = splits
    log(f"training the reranker's style classifier over {encoder.name} embeddings (decode.semantic_style) "
        f"on {sum(map(len, train.values()))} training sentences")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = EmbeddingStyle(encoder.dim, len(domains))
        model.fit([cached_embeddings(encoder, train[d], cache, progress=len(train[d]) > 4096) for d in domains])
    accuracy = model.accuracy([encoder.embed(dev[d]) for d in domains])
    log(f"  embedding style classifier: {accuracy:.1f}% on dev")
    save_file(model.state_dict(), str(path))
    path.with_suffix(".json").write_text(json.dumps({"encoder": encoder.name, "domains": domains,
                                                     "train_sentences": sum(map(len, train.values())),
                                                     "dev_accuracy": round(accuracy, 2)}, indent=2) + "\n")
    return model
