"""Reranking candidates at inference (`decode.candidates` K > 1, `decode.retrieve` R > 0): the greedy
rewrite, K - 1 samples at `decode.temperature` and R retrieved sentences compete, and each input keeps the
candidate its run's own reward likes best, the DualRL reward used as a selector instead of a training signal:

    r_style(y)   = p_C(target domain | y)                 the run's style classifier (style.safetensors,
                                                          rewards.StyleClassifier; not an evaluator judge)
                or min(p_C, p_E)(target domain | y)       with decode.semantic_style: p_E reads the sentence
                                                          encoder's embedding of y (EmbeddingStyle), a second
                                                          opinion a rewrite must also convince
    r_content(y) = exp(1/|x| sum_t log p(x_t | y, x_<t)   the back generator rebuilding the input x from y,
                       - beta * max(0, |y| / |x| - 1))    with decode.length_penalty beta (lengths in pieces;
                                                          0 = off): growth beyond the input is charged
    score(y)     = (w_s + w_c) / (w_s / r_style + w_c / r_content)    (rewards.combine, harmonic; w_s > 0)
                or w_c * log r_content                                (w_s = 0: no style term, e.g. translation)
                   + w_e * log cos(e(x), e(y))                        (decode.semantic_weight; 0 = off)
                   + w_f * log p_LM(y)                                (decode.fluency_weight; 0 = off)
                   + w_d * 1/|y| sum_t log p_G(y_t | x, y_<t)         (decode.direct_weight; 0 = off)

    cos(e(x), e(y)) the cosine of x's and y's embeddings by a pretrained sentence encoder (decode.encoder,
                   e.g. multilingual-e5-small: x and y may be in different languages; rewards.semantic_content)
    log p_LM(y)  = sum_t log p_LM(y_t | y_<t) over y's pieces and a closing newline, under a pretrained
                   causal LM (decode.fluency_lm, by default the generator's own generator.init, as
                   released, without the run's fine-tuning) read after its end-of-text token
                   (models.prompted.PromptedLM, no prompt): a total, not a mean, so it also prefers the
                   shorter of two equally fluent rewrites. decode.fluency_domains limits it to candidates
                   written into those domains (translation: an English LM scores the English ones only).

    p_G          the generator writing y itself: with the back generator's p(x | y) and the LM's p(y) the
                   three terms of noisy-channel reranking (Yee et al. 2019), direct, channel and prior.

The R retrieved candidates are the target domain's training sentences nearest to x by that encoder's
cosine (`Retrieval`): real sentences, fluent by construction, that the reranker takes only where they score
above the model's own rewrites (retrieval-augmented reranking; for translation the mined "neighbours, not
translations" of mining.py compete with the model's translations).

With `decode.passes` P > 1 the chosen candidate is rewritten again, P - 1 times (iterative refinement:
a first rewrite often turns one complaint and leaves the next standing); every pass's candidates join the
earlier ones, all scored against the original input x, so a later pass wins only where it scores higher.

The greedy rewrite is candidate 0, so K = 1 and R = 0 is plain greedy decoding and ties keep it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .data import pad
from .losses import sequence_logprob
from .pretrained.encoder import cached_embeddings
from .rewards import StyleClassifier, combine


def load_style_classifier(run_dir: Path, cfg, vocab_size: int, device) -> StyleClassifier:
    """The run's style classifier; a clear error for runs trained without one."""
    from safetensors.torch import load_file

    from .checkpoint import max_positions

    path = Path(run_dir) / "style.safetensors"
    if not path.is_file():
        raise ValueError(f"reranking candidates needs the run's style classifier ({path} is missing: the run "
                         "was trained with neither a style reward, a pair filter nor select_by=style); "
                         "use decode.candidates=1")
    model = StyleClassifier(cfg.discriminator, vocab_size, len(cfg.data.domains), max_positions(cfg))
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


@torch.no_grad()
def content_logprob(back, sources: list[list[int]], outputs: list[list[int]], back_to: int,
                    batch_size: int = 128) -> torch.Tensor:
    """Mean log p(source | output) per pair (N,) under the back generator writing into token `back_to`."""
    device = back.device
    scores = []
    for start in range(0, len(sources), batch_size):
        src, src_mask = pad([y or [] for y in outputs[start:start + batch_size]])
        tgt, tgt_mask = pad(sources[start:start + batch_size])
        logits = back(src.to(device), src_mask.to(device), tgt.to(device), back_to)
        scores.append(sequence_logprob(logits, tgt.to(device), tgt_mask.to(device)).cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


@torch.no_grad()
def best_candidates(style: StyleClassifier | None, back, sources: list[list[int]], candidates: list[list[list[int]]],
                    target: int, back_to: int, w_style: float = 1.0, w_content: float = 1.0,
                    fluency: torch.Tensor | None = None, w_fluency: float = 0.0,
                    semantic: torch.Tensor | None = None, w_semantic: float = 0.0,
                    second_style: torch.Tensor | None = None, w_length: float = 0.0,
                    direct: torch.Tensor | None = None, w_direct: float = 0.0) -> tuple[list[int], torch.Tensor]:
    """For each source (ids) the index of its best candidate (ids), and the scores (N, K).

    candidates[i][k] is candidate k of source i (every source has K); target is the style classifier's
    class index of the domain written, back_to the generator's domain token of the source's domain;
    fluency (N, K), if given, is log p_LM of each candidate (models.prompted.PromptedLM), weighted by w_fluency;
    semantic (N, K), if given, log cos(e(source), e(candidate)), weighted by w_semantic; second_style
    (N, K), if given, p_E(target | candidate) by the EmbeddingStyle: r_style = min(p_C, p_E); w_length
    takes w_length * max(0, |y| / |x| - 1) off the content log-prob (decode.length_penalty); direct (N, K),
    if given, is the mean log p(candidate | source) under the generator that wrote it, weighted by w_direct
    (decode.direct_weight). With w_style 0
    the style classifiers are not read (style may be None)."""
    n, k = len(sources), len(candidates[0]) if candidates else 0
    flat = [c for row in candidates for c in row]
    content = content_logprob(back, [s for s in sources for _ in range(k)], flat, back_to)
    if w_length:
        growth = torch.tensor([len(c) / max(1, len(s)) - 1 for s, row in zip(sources, candidates) for c in row])
        content = content - w_length * growth.clamp(min=0).to(content)
    if w_style:
        r_style = style.probabilities([c or [] for c in flat], device=next(style.parameters()).device)[:, target]
        if second_style is not None:
            r_style = torch.minimum(r_style, second_style.reshape(-1).to(r_style))
        scores = combine(r_style, content, w_style, w_content, mix="harmonic").view(n, k)
    else:
        scores = (w_content * content).view(n, k)
    for extra, weight in [(fluency, w_fluency), (semantic, w_semantic), (direct, w_direct)]:
        if extra is not None and weight:
            scores = scores + weight * extra.view(n, k).to(scores)
    return scores.argmax(1).tolist(), scores


class Retrieval:
    """The training sentences of each domain nearest to a query by a sentence encoder's cosine
    (decode.retrieve). `pools` maps a domain to its sentences (normalized, as the generators read them);
    their embeddings are computed once into the cache folder (pretrained.encoder.cached_embeddings, shared
    with the mining miner: a run mined with the same encoder finds them there)."""

    def __init__(self, encoder, pools: dict[str, list[str]], cache: Path):
        self.encoder, self.pools, self.cache = encoder, pools, Path(cache)
        self.emb: dict[str, torch.Tensor] = {}

    def nearest(self, queries: list[str], domain: str, r: int) -> list[list[str]]:
        """The r sentences of `domain` nearest to each (normalized) query, nearest first."""
        from .pretrained.encoder import cached_embeddings, knn

        pool = self.pools[domain]
        if domain not in self.emb:
            self.emb[domain] = cached_embeddings(self.encoder, pool, self.cache, progress=len(pool) > 4096)
        if not queries or not pool:
            return [[] for _ in queries]
        _, idx = knn(self.encoder.embed(queries), self.emb[domain], min(r, len(pool)))
        return [[pool[int(j)] for j in row] for row in idx]


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
    import json

    from safetensors.torch import load_file, save_file

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
