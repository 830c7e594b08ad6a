"""A fluency language model, trained apart from the generator, to score transferred text by perplexity.

A tiny GPT-2 (Hugging Face `GPT2LMHeadModel`) over its own SentencePiece vocabulary, trained on one
domain's training text for a bounded number of steps (and optionally seconds). Perplexity is reported
per word (per character in Chinese text, `tokenizer.units`), not per subword piece, so LMs with different vocabularies give comparable numbers.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel

from .checkpoint import quiet_loading
from .data import pad
from .tokenizer import BOS, EOS, PAD, Tokenizer, units

INFO_FILE = "fluency_lm.json"
SPM_FILE = "spm.model"


def _pad(seqs: list[list[int]], device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists (BOS ... EOS already in place) -> (ids, mask) on `device`, both (B, T)."""
    ids, mask = pad(seqs, add_eos=False)
    return ids.to(device), mask.to(device)


def _windows(seq: list[int], size: int) -> list[tuple[list[int], int]]:
    """Cut a sequence longer than the model's context into overlapping windows of `size` tokens.

    Returns (window, k) pairs: only the last k tokens of a window are scored, so every token after
    BOS is scored exactly once and, past the first window, with at least size/2 tokens of context.
    """
    if len(seq) <= size:
        return [(seq, len(seq) - 1)]
    pieces, done, stride = [(seq[:size], size - 1)], size, max(1, size // 2)
    while done < len(seq):
        end = min(done + stride, len(seq))
        pieces.append((seq[end - size:end], end - done))
        done = end
    return pieces


def _token_nll(model: GPT2LMHeadModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-log p(ids_t | ids_<t) for t >= 1, zero on padding: (B, T-1)."""
    logits = model(input_ids=ids, attention_mask=mask).logits.float()                 # (B, T, V)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T-1)
    return nll * mask[:, 1:]


class FluencyLM:
    """A small causal LM and its SentencePiece tokenizer; `perplexity` scores plain text."""

    def __init__(self, model: GPT2LMHeadModel, tokenizer: Tokenizer, info: dict):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.max_len = model.config.n_positions

    @classmethod
    def train(cls, texts: list[str], out_dir: str | Path, steps: int = 2000, batch_size: int = 32,
              seed: int = 0, max_len: int = 64, vocab_size: int = 8000, d_model: int = 256,
              layers: int = 2, heads: int = 4, lr: float = 1e-3, dropout: float = 0.1,
              max_seconds: float | None = None, device: str = "cpu", progress: bool = False) -> FluencyLM:
        """Train on `texts` (one domain's training sentences, as the corpus spells them) and save to `out_dir`.

        Stops after `steps` updates or `max_seconds`, whichever comes first; only the step bound is
        deterministic for a given `seed`. Sentences are cut to `max_len` pieces, BOS and EOS included,
        which is also the model's context. The caller's torch RNG state is left as it was.
        """
        if not any(t.strip() for t in texts):
            raise ValueError("no training text for the fluency LM")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        spm_lines = [t for t in texts if t.strip()]
        if len(spm_lines) > 200_000:  # plenty for a vocabulary; keeps SentencePiece training quick
            spm_lines = rng.sample(spm_lines, 200_000)
        tokenizer = Tokenizer.train(spm_lines, out_dir / SPM_FILE, domains=[], scheme="none", vocab_size=vocab_size)
        examples = [([BOS] + ids + [EOS])[:max_len] for ids in tokenizer.sp.encode(list(texts))]

        config = GPT2Config(
            vocab_size=tokenizer.vocab_size, n_positions=max_len, n_embd=d_model, n_layer=layers,
            n_head=heads, n_inner=4 * d_model, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT2LMHeadModel(config).to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
            warmup = max(1, steps // 20)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
            order: list[int] = []
            losses: list[float] = []
            start = time.monotonic()
            for _ in tqdm(range(steps), desc="fluency LM", disable=not progress):
                while len(order) < batch_size:  # epochs of shuffled sentences, sampled without repeats
                    order += rng.sample(range(len(examples)), len(examples))
                batch, order = order[:batch_size], order[batch_size:]
                ids, mask = _pad([examples[i] for i in batch], device)
                loss = _token_nll(model, ids, mask).sum() / mask[:, 1:].sum()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
                if max_seconds is not None and time.monotonic() - start > max_seconds:
                    break

        info = {
            "kind": "textgan fluency LM (GPT-2)",
            "perplexity": "per word (CJK: per character), end of sentence counted as one",
            "train_lines": len(texts), "steps": len(losses), "batch_size": batch_size, "seed": seed,
            "max_len": max_len, "lr": lr, "seconds": round(time.monotonic() - start, 1),
            "final_loss": sum(losses[-50:]) / len(losses[-50:]) if losses else None,
        }
        model.save_pretrained(out_dir)
        (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        return cls(model, tokenizer, info)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> FluencyLM:
        """Load what `train` saved: the HF model, the SentencePiece model and the json description."""
        path = Path(path)
        info = json.loads((path / INFO_FILE).read_text())
        with quiet_loading():
            model = GPT2LMHeadModel.from_pretrained(path).to(device)
        return cls(model, Tokenizer(path / SPM_FILE, domains=[], scheme="none"), info)

    @torch.no_grad()
    def perplexity(self, texts: list[str], batch_size: int = 64) -> float:
        """Word-level perplexity of `texts` as written (no normalization):

            PPL = exp( sum_s -log p(pieces of s, EOS) / sum_s (words(s) + 1) )

        The numerator is the LM's negative log-likelihood of each whole sentence, its end included;
        the denominator counts words (CJK characters) plus one for the end, as word-level LMs do, so the
        number does not depend on how the vocabulary splits words. An empty text scores its EOS only.
        Sentences longer than the context are scored in overlapping windows.
        """
        if not texts:
            raise ValueError("no texts to score")
        device = next(self.model.parameters()).device
        seqs = [[BOS] + ids + [EOS] for ids in self.tokenizer.sp.encode(list(texts))]
        pieces = sorted((p for seq in seqs for p in _windows(seq, self.max_len)), key=lambda p: len(p[0]))
        total_nll = 0.0
        for start in range(0, len(pieces), batch_size):
            batch = pieces[start:start + batch_size]
            ids, mask = _pad([window for window, _ in batch], device)
            nll = _token_nll(self.model, ids, mask)                                     # (B, T-1)
            for row, (window, scored) in enumerate(batch):
                total_nll += nll[row, len(window) - 1 - scored:len(window) - 1].sum().item()
        words = sum(len(units(t)) + 1 for t in texts)
        return math.exp(total_nll / words)
