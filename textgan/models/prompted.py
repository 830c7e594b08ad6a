"""A pretrained causal LM as a scorer: log p_LM(text | prompt) on its own tokenizer (the reranker's fluency
term, decoding/scores.py; the extraction search's last step, mining/extract.py). The weights come from the one loader
module, textgan.pretrained; this wrapper is a model, so it lives with the models."""

from __future__ import annotations

import copy

import torch

from ..pretrained import PretrainedError, load_causal_lm
from .generator import CACHE_ARG


class PromptedLM:
    """log p_LM(text | prompt) of texts under a pretrained causal LM, on its own tokenizer.

    The prompt is [end-of-text] + `template` with "{article}" replaced by the article given (template "":
    the end-of-text token alone, an unconditional score); each text is read as " text" and a closing
    newline. The prompt's keys and values are computed once and shared by every text (KV cache), and each
    distinct text is scored once. Used by the reranker's fluency term (decoding/scores.py) and the extraction
    search's last step (mining/extract.py).
    """

    def __init__(self, model, tokenizer, template: str = "", batch_size: int = 64):
        self.model, self.tok, self.template, self.batch_size = model.eval(), tokenizer, template, batch_size
        start = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
        if start is None:
            raise PretrainedError("the LM's tokenizer has neither an end-of-text nor a begin token")
        self.start = start

    @classmethod
    def load(cls, init: str, template: str = "", device="cpu") -> "PromptedLM":
        model, tokenizer = load_causal_lm(init)
        return cls(model.to(device), tokenizer, template)

    def logprob(self, texts: list[str], article: str = "") -> tuple[list[float], list[int]]:
        """(total log-prob, token count) of each text after the prompt."""
        prompt = [self.start, *self.tok(self.template.format(article=article), add_special_tokens=False)["input_ids"]]
        device = next(self.model.parameters()).device
        distinct = sorted(set(texts), key=len)
        found: dict[str, tuple[float, int]] = {}
        with torch.no_grad():
            past = None
            if len(prompt) > 1:                                   # all but the prompt's last token, cached once
                past = getattr(self.model(input_ids=torch.tensor([prompt[:-1]], device=device), use_cache=True), CACHE_ARG)
            for b in range(0, len(distinct), self.batch_size):
                batch = distinct[b:b + self.batch_size]
                rows = [[prompt[-1], *self.tok(" " + t + "\n", add_special_tokens=False)["input_ids"]] for t in batch]
                ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long, device=device)  # (B, L)
                mask = torch.zeros_like(ids)
                for r, row in enumerate(rows):
                    ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
                cache = None
                if past is not None:
                    cache = copy.deepcopy(past)
                    cache.batch_repeat_interleave(len(rows))
                seen = torch.ones(len(rows), len(prompt) - 1, dtype=torch.long, device=device)
                logits = self.model(input_ids=ids, attention_mask=torch.cat([seen, mask], 1),
                                    **{CACHE_ARG: cache}).logits.float()                    # (B, L, V)
                token = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]   # (B, L - 1)
                found.update(zip(batch, zip((token * mask[:, 1:]).sum(1).tolist(), mask[:, 1:].sum(1).tolist())))
        return [found[t][0] for t in texts], [found[t][1] for t in texts]
