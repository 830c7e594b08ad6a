"""Causal generator: a pretrained decoder-only LM as a rewriter (DIRR, Liu et al. 2021, with GPT-2).

The prompt is the source sentence then the target domain's token, the rewrite is the continuation:

    [pad ...] <s> x_1 .. x_S <2to> | y_1 .. y_T </s>
              ----- prompt ------   -- continuation --

Prompts are left-padded so that every row's continuation starts at the same position; position ids
count real tokens only, so a padded row reads as if alone. The model reads token ids or soft
distributions (B, S, V) through its own embedding table (`inputs_embeds`), so soft and Gumbel-softmax
fakes pass through the cycle with their gradient, as with the encoder-decoder.

The vocabulary is ours (tokenizer.PretrainedPieces): the pretrained embedding and output layer are cut to
the pieces the corpus uses (`slice_vocabulary`), which makes the output softmax and every (B, T, V)
relaxation several times cheaper than over the full pretrained vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from ..config import GeneratorConfig
from ..pretrained import load_causal_lm
from ..tokenizer import BOS, EOS, PAD
from .generator import CACHE_ARG, MODES, Generator, Sample, choose, start_tokens


def build_causal_lm(cfg: GeneratorConfig, pieces) -> nn.Module:
    """The pretrained LM `cfg.init` with its vocabulary cut to `pieces` (tokenizer.PretrainedPieces), made
    ready to fine-tune as `cfg.finetune` says: `lora` adds peft's LoRA adapters (rank cfg.lora_r) to every
    linear layer but the output layer and trains them and the (small, sliced) embedding table, `full`
    trains every weight; with `cfg.freeze_layers` N > 0 the lowest N transformer layers and the embedding
    table (tied to the output layer) stay as they start, so the backward pass stops at layer N."""
    model, _ = load_causal_lm(cfg.init)
    slice_vocabulary(model, pieces.source_rows(), {"pad": PAD, "bos": BOS, "eos": EOS})
    layers = next(m for m in model.modules() if isinstance(m, nn.ModuleList))
    if cfg.finetune == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                                                 target_modules="all-linear"))
        model.get_input_embeddings().weight.requires_grad_(True)
    if cfg.freeze_layers:
        # the embeddings too: a gradient for them would have to pass through the frozen layers, whose
        # backward pass freezing is meant to save
        model.get_input_embeddings().weight.requires_grad_(False)
        for layer in list(layers)[: cfg.freeze_layers]:
            layer.requires_grad_(False)
    return model


def mean_rows(table: torch.Tensor, rows: list[list[int]]) -> torch.Tensor:
    """(len(rows), D): row i the mean of table[rows[i]] (pretrained rows -> our id i), zeros when empty."""
    new = torch.zeros(len(rows), table.size(1), dtype=table.dtype)
    for i, ids in enumerate(rows):
        if ids:
            new[i] = table[ids].mean(0)
    return new


def slice_vocabulary(model, rows: list[list[int]], special_ids: dict[str, int]) -> None:
    """Cut `model`'s input embeddings (and its output layer) to our vocabulary, in place: our id i starts
    from the mean of the pretrained rows `rows[i]` (zeros when empty). A tied output layer stays tied.
    special_ids: pad/bos/eos token ids of our vocabulary, written into the model's config."""
    old_in = model.get_input_embeddings().weight.detach()
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is model.get_input_embeddings().weight

    embeddings = nn.Embedding(len(rows), old_in.size(1))
    embeddings.weight.data.copy_(mean_rows(old_in, rows))
    model.set_input_embeddings(embeddings)
    if out is not None:
        head = nn.Linear(old_in.size(1), len(rows), bias=False)
        head.weight = embeddings.weight if tied else nn.Parameter(mean_rows(out.weight.detach(), rows))
        model.set_output_embeddings(head)
    model.config.vocab_size = len(rows)
    for name, i in special_ids.items():
        setattr(model.config, f"{name}_token_id", i)
        if getattr(model, "generation_config", None) is not None:
            setattr(model.generation_config, f"{name}_token_id", i)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, L) that count the real tokens of a left-padded mask (B, L): 0 at the first."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


class CausalGenerator(Generator):
    """The Generator interface (`forward`, `sample`, `relax`) on a decoder-only LM; decoding.search decodes it
    at inference (greedy, sampling, classifier-free guidance).

    Not available here (refused when built): the decoder that reads the words left, extraction-constrained
    decoding, and the encoder states the latent adversary reads; beam search at inference (greedy and
    sampling are).
    """

    def __init__(self, model, length_ids: list[int] | None = None, word_start: list[bool] | None = None,
                 words_left: bool = False, extract_to: list[int] = (), banned: dict[int, list[int]] | None = None,
                 max_run: int = 0):
        if words_left or extract_to or max_run:
            raise ValueError("generator.arch=causal supports neither generator.words_left, generator.extract_to "
                             "nor generator.max_run")
        super().__init__(model, length_ids, word_start, False, (), banned)

    def exportable(self):
        """The model to save for inference: LoRA adapters merged into a plain copy (the training model keeps
        them), so a run loads with `from_pretrained` alone."""
        if not hasattr(self.model, "merge_and_unload"):
            return self.model
        import copy

        return copy.deepcopy(self.model).merge_and_unload()

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor):
        raise NotImplementedError("a causal generator has no encoder states (train.latent_adv needs them)")

    def prompt(self, src: torch.Tensor, src_mask: torch.Tensor, to: int | torch.Tensor):
        """Embeddings (B, P, H) and mask (B, P) of the left-padded prompts [<s>, src, <2to>]; src (B, S) ids or
        (B, S, V) distributions, right-padded as batches come."""
        batch, length = src_mask.shape
        first = torch.full((batch, 1), BOS, dtype=torch.long, device=src.device)
        right = torch.cat([self.embed(first), self.embed(src)], 1)                      # (B, 1 + S, H)
        right_mask = torch.cat([src_mask.new_ones(batch, 1), src_mask], 1).bool()
        shift = right_mask.size(1) - right_mask.sum(1)                                  # (B,) pads to move left
        index = torch.arange(right_mask.size(1), device=src.device)[None] - shift[:, None]
        real = index >= 0
        index = index.clamp(min=0)
        left = right.gather(1, index[..., None].expand(-1, -1, right.size(-1))) * real[..., None].to(right.dtype)
        dom = self.embed(start_tokens(to, batch, src.device))                            # (B, 1, H)
        return torch.cat([left, dom], 1), torch.cat([real, real.new_ones(batch, 1)], 1).long()

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt: torch.Tensor, to: int | torch.Tensor,
                words: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V), position t predicting tgt[:, t] from the prompt and tgt_<t."""
        src, src_mask = self.condition(src, src_mask, words)
        prompt, mask = self.prompt(src, src_mask, to)
        inputs = torch.cat([prompt, self.embed(tgt[:, :-1])], 1)
        mask = torch.cat([mask, mask.new_ones(tgt.size(0), tgt.size(1) - 1)], 1)
        out = self.model(inputs_embeds=inputs, attention_mask=mask, position_ids=positions(mask), use_cache=False)
        return out.logits[:, prompt.size(1) - 1:]

    def cached_decode(self, inputs: torch.Tensor, mask: torch.Tensor, steps: int, step) -> None:
        """The key-value-cached decoding loop of `sample` and of decoding.search.guided: reads the prompts
        `inputs` (R, P, H) under `mask` (R, P), then at most `steps` times hands the last position's logits
        (R, V) to `step`, which keeps what it chose and returns the next input embeddings (R, 1, H), or None
        to stop."""
        where = positions(mask)
        cache = DynamicCache()
        for _ in range(steps):
            out = self.model(inputs_embeds=inputs, attention_mask=mask, position_ids=where, use_cache=True,
                             **{CACHE_ARG: cache})
            cache = getattr(out, CACHE_ARG)
            inputs = step(out.logits[:, -1])
            if inputs is None:
                return
            mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], 1)
            where = where[:, -1:] + 1

    def sample(self, src: torch.Tensor, src_mask: torch.Tensor, to: int | torch.Tensor, mode: str = "greedy",
               tau: float = 1.0, max_len: int | torch.Tensor = 32, straight_through: bool = False,
               words: torch.Tensor | None = None) -> Sample:
        """Decode step by step with a key-value cache; modes and gradients as in Generator.sample."""
        if mode not in MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; choose from {MODES}")
        src, src_mask = self.condition(src, src_mask, words)
        batch = src.size(0)
        inputs, mask = self.prompt(src, src_mask, to)
        done = torch.zeros(batch, dtype=torch.bool, device=src.device)
        limit = torch.as_tensor(max_len, device=src.device).expand(batch)
        ids, masks, logprobs, probs = [], [], [], []

        def step(last: torch.Tensor) -> torch.Tensor | None:
            nonlocal done
            token, p, logits = choose(self.restrict(last.float(), to), mode, tau, straight_through)    # (B,)
            token = token.masked_fill(done, PAD)
            ids.append(token)
            masks.append(~done)
            logprobs.append(logits.log_softmax(-1).gather(1, token[:, None]).squeeze(1))
            if p is not None:
                probs.append(p)
            done = done | (token == EOS) | (limit <= len(ids))
            return None if bool(done.all()) else self.embed(p[:, None] if p is not None else token[:, None])

        self.cached_decode(inputs, mask, int(limit.max()), step)
        return Sample(ids=torch.stack(ids, 1), mask=torch.stack(masks, 1), logprobs=torch.stack(logprobs, 1),
                      probs=torch.stack(probs, 1) if probs else None)
