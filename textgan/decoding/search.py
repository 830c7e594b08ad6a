"""Inference search: one decoder run of a generator, ids in, id lists out.

`generate(generator, src, src_mask, to, Search(...), words, away)` is the one entry point; it dispatches on
the generator:

    models.generator.Generator      greedy (`greedy`), the own beam search (`beam_search`) and sampling
                                    (`Generator.sample`) where `transformers` cannot feed the decoder (words
                                    left, extraction constraint, target vocabulary, run guard), else
                                    `transformers`' generate (beam search, sampling)
    models.causal.CausalGenerator   greedy, sampling, classifier-free guidance (`guided`); no beam search
    fast.CT2Generator (and causal)  CTranslate2's own search (`generator.generate(src, src_mask, to, search,
                                    words)`)

The models keep what training needs (`forward`, `sample`, `relax`, ...); the search over their outputs at
inference lives here and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..models.causal import CausalGenerator
from ..models.generator import CACHE_ARG, Generator, Sample, choose
from ..tokenizer import BOS, EOS, PAD


@dataclass(frozen=True)
class Search:
    """How one decoder run chooses its pieces (inference)."""

    beam: int = 1            # beam width; 1 = greedy (or sampling)
    nbest: int = 1           # beam search: keep the n best hypotheses per row (row r's at r*n .. r*n+n-1)
    sample: bool = False     # sample at `temperature` instead of greedy/beam
    temperature: float = 1.0
    guidance: float = 0.0    # causal generators: classifier-free guidance weight away from `away`
    max_len: int = 32        # pieces written at most


@torch.no_grad()
def generate(generator, src: torch.Tensor, src_mask: torch.Tensor, to: int, search: Search = Search(),
             words: torch.Tensor | None = None, away: int | None = None) -> list[list[int]]:
    """Inference search: ids in (src (B,S), src_mask (B,S)), id lists out (without the start token), each up
    to and including EOS when written; `words` (B,) the length asked of each row (length control) or None;
    `away` the domain token classifier-free guidance steers from (causal generators, `search.guidance` > 0).
    With `search.nbest` n > 1 (beam search), the n best hypotheses of each row, best first, row r's at
    r*n .. r*n + n - 1. A generator that is neither torch generator (fast.CT2Generator) runs its own search."""
    if isinstance(generator, CausalGenerator):
        return causal_generate(generator, src, src_mask, to, search, words, away)
    if isinstance(generator, Generator):
        if search.guidance:
            raise ValueError("classifier-free guidance needs a causal generator (generator.arch=causal)")
        return seq2seq_generate(generator, src, src_mask, to, search, words)
    return generator.generate(src, src_mask, to, search, words)


def kept(drawn: Sample) -> list[list[int]]:
    """The ids of a decoding loop's sample, each row up to and including its first EOS."""
    return [[t for t, keep in zip(row, m) if keep] for row, m in zip(drawn.ids.tolist(), drawn.mask.tolist())]


def seq2seq_generate(g: Generator, src: torch.Tensor, src_mask: torch.Tensor, to: int, search: Search,
                     words: torch.Tensor | None = None) -> list[list[int]]:
    """Inference on an encoder-decoder. Greedy: `greedy`; beam search and sampling: `transformers`' generate
    (KV cache), except where the decoder reads the words left or decodes under the extraction constraint,
    which `transformers` cannot feed it, or under a target vocabulary or the run guard: then `beam_search`
    and `Generator.sample`. `nbest` n > 1 (beam search): the n best hypotheses of each row, best first, row
    r's at r*n .. r*n + n - 1. Returns ids without the start token."""
    beam, sample, max_len, temperature, nbest = search.beam, search.sample, search.max_len, search.temperature, search.nbest
    if nbest > 1 and (sample or beam < nbest):
        raise ValueError(f"nbest={nbest} keeps hypotheses of beam search: it needs beam >= nbest and no sampling")
    if beam == 1 and not sample:
        return greedy(g, src, src_mask, to, max_len, words)
    own = (g.words_left and words is not None or to in g.extract_to or to in g.banned_to
           or bool(g.max_run))
    if own and not sample:
        return beam_search(g, src, src_mask, to, beam, max_len, words, nbest)
    if own:
        return kept(g.sample(src, src_mask, to, mode="multinomial", tau=temperature, max_len=max_len, words=words))
    src, src_mask = g.condition(src, src_mask, words)
    config = GenerationConfig(
        max_new_tokens=max_len, num_beams=beam, do_sample=sample, temperature=temperature if sample else None,
        top_k=0 if sample else None, num_return_sequences=nbest, decoder_start_token_id=to, bos_token_id=BOS, eos_token_id=EOS,
        pad_token_id=PAD, forced_bos_token_id=None, forced_eos_token_id=None,
    )
    out = g.model.generate(input_ids=src, attention_mask=src_mask.long(), generation_config=config)
    rows = [[t for t in row if t != PAD] for row in out[:, 1:].tolist()]
    return [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]   # n-best rows may repeat EOS


def causal_generate(g: CausalGenerator, src: torch.Tensor, src_mask: torch.Tensor, to: int, search: Search,
                    words: torch.Tensor | None = None, away: int | None = None) -> list[list[int]]:
    """Inference on a causal generator: greedy, or sampling at `temperature`; with guidance > 0 away from the
    domain token `away`, `guided`. Beam search (and its `nbest`) is not implemented for this generator and is
    refused with that reason."""
    if search.nbest > 1 or (search.beam > 1 and not search.sample):
        raise ValueError("beam search is not implemented for a causal generator (generator.arch=causal); "
                         "use --beam 1 (greedy) or sampling")
    if search.guidance:
        if away is None:
            raise ValueError("guidance needs the domain to steer away from (away)")
        return guided(g, src, src_mask, to, away, search.guidance, search.sample, search.temperature, search.max_len,
                      words)
    if not search.sample:
        return greedy(g, src, src_mask, to, search.max_len, words)
    return kept(g.sample(src, src_mask, to, mode="multinomial", tau=search.temperature, max_len=search.max_len,
                         words=words))


@torch.inference_mode()
def greedy(g: Generator, src: torch.Tensor, src_mask: torch.Tensor, to: int, max_len: int = 32,
           words: torch.Tensor | None = None) -> list[list[int]]:
    """Greedy decoding for inference: each row's ids up to and including EOS. A causal generator decodes in
    its own loop (`CausalGenerator.sample`, greedy mode); an encoder-decoder in `cached_greedy`."""
    if isinstance(g, CausalGenerator):
        return kept(g.sample(src, src_mask, to, mode="greedy", max_len=max_len, words=words))
    return cached_greedy(g, src, src_mask, to, max_len, words)


@torch.inference_mode()
def cached_greedy(g: Generator, src: torch.Tensor, src_mask: torch.Tensor, to: int, max_len: int = 32,
                  words: torch.Tensor | None = None) -> list[list[int]]:
    """Greedy decoding of an encoder-decoder for inference: a key-value cache, and each row leaves the batch
    once it has written EOS (the cache, encoder states and mask are cut down to the unfinished rows), so a
    batch costs what its unfinished sentences need. Returns each row's ids up to and including EOS."""
    constraint, guard = g.constraint(src, src_mask, to), g.run_guard(src, src_mask)
    src, src_mask = g.condition(src, src_mask, words)
    encoded = g.encode(src, src_mask).last_hidden_state            # (B, S, H)
    mask = src_mask.long()
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    rows = list(range(src.size(0)))                                 # unfinished rows, in batch order
    out: list[list[int]] = [[] for _ in rows]
    token = torch.full((len(rows), 1), to, dtype=torch.long, device=src.device)
    begun = torch.zeros_like(token)
    scale = g.words_left_scale() if g.words_left and words is not None else None
    for _ in range(max_len):
        step = g.model(encoder_outputs=(encoded,), attention_mask=mask, use_cache=True, **{CACHE_ARG: cache},
                       decoder_inputs_embeds=g.decoder_inputs(token, words, begun, scale))
        logits = g.restrict(step.logits[:, -1], to, float("-inf"))                        # (b, V)
        if constraint is not None:
            logits = logits.masked_fill(~constraint.mask(rows, logits.device), float("-inf"))
        if guard is not None:
            logits = logits.masked_fill(guard.banned(), float("-inf"))
        cache, chosen = getattr(step, CACHE_ARG), logits.argmax(-1)                       # (b,)
        if constraint is not None:
            constraint.advance(rows, chosen.tolist())
        if guard is not None:
            guard.advance(chosen)
        for row, t in zip(rows, chosen.tolist()):
            out[row].append(t)
        going = chosen != EOS
        if not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            encoded, mask, chosen, begun = encoded[keep], mask[keep], chosen[keep], begun[keep]
            if guard is not None:
                guard.select(keep)
            words = words[keep] if words is not None else None
            rows = [rows[i] for i in keep.tolist()]
        token = chosen[:, None]
        if g.words_left and words is not None:
            begun = begun + g.word_start[token].long()
    if constraint is not None:          # rows cut by max_len mid-word drop the piece of a word they hold
        for row in rows:
            cut = constraint.unfinished(row)
            out[row] = out[row][: len(out[row]) - cut]
    return out


@torch.inference_mode()
def beam_search(g: Generator, src: torch.Tensor, src_mask: torch.Tensor, to: int, beam: int, max_len: int = 32,
                words: torch.Tensor | None = None, nbest: int = 1) -> list[list[int]]:
    """Beam search with a key-value cache, for what `transformers`' generate cannot feed the decoder: the
    words-left count and the extraction constraint. Each row keeps `beam` hypotheses y; a step extends
    every live one by every piece and keeps the `beam` best by log p(y | src); a hypothesis that has
    written EOS is carried on unchanged (extended by PAD at no cost). The answer is the hypothesis of
    highest log p(y | src) / |y| (length penalty 1, `transformers`' default); `nbest` n > 1 keeps the n
    highest of each row instead, best first (row r's at r*n .. r*n + n - 1). Returns ids up to EOS."""
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be between 1 and the beam ({beam}), got {nbest}")
    constraint, guard = g.constraint(src, src_mask, to), g.run_guard(src, src_mask)
    src, src_mask = g.condition(src, src_mask, words)
    batch, k, device = src.size(0), beam, src.device
    n = batch * k                                                 # hypothesis r*k + j is row r's j-th
    encoded = g.encode(src, src_mask).last_hidden_state.repeat_interleave(k, 0)   # (n, S, H)
    mask = src_mask.long().repeat_interleave(k, 0)
    words = words.repeat_interleave(k) if words is not None else None
    if constraint is not None:
        constraint.select([r for r in range(batch) for _ in range(k)])
    if guard is not None:
        guard.select(torch.arange(batch, device=device).repeat_interleave(k))
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0                                            # one live hypothesis per row at first
    token = torch.full((n, 1), to, dtype=torch.long, device=device)
    begun = torch.zeros_like(token)
    history = torch.zeros(n, 0, dtype=torch.long, device=device)
    length = torch.zeros(n, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    scale = g.words_left_scale() if g.words_left and words is not None else None
    for _ in range(max_len):
        step = g.model(encoder_outputs=(encoded,), attention_mask=mask, use_cache=True, **{CACHE_ARG: cache},
                       decoder_inputs_embeds=g.decoder_inputs(token, words, begun, scale))
        logits = g.restrict(step.logits[:, -1].float(), to, float("-inf"))
        cache, logp = getattr(step, CACHE_ARG), logits.log_softmax(-1)                        # (n, V)
        if constraint is not None:
            logp = logp.masked_fill(~constraint.mask(list(range(n)), device), float("-inf"))
        if guard is not None:
            logp = logp.masked_fill(guard.banned(), float("-inf"))
        logp[finished] = float("-inf")
        logp[finished, PAD] = 0.0
        vocab = logp.size(1)
        scores, pick = (scores.view(n, 1) + logp).view(batch, k * vocab).topk(k, dim=1)        # (B, k)
        order = (pick // vocab + torch.arange(batch, device=device)[:, None] * k).view(n)
        chosen = (pick % vocab).view(n)
        cache.reorder_cache(order)
        history = torch.cat([history[order], chosen[:, None]], 1)
        length, finished, begun = length[order] + ~finished[order], finished[order], begun[order]
        finished = finished | (chosen == EOS)
        if constraint is not None:
            constraint.select(order.tolist())
            constraint.advance(list(range(n)), chosen.tolist())
        if guard is not None:
            guard.select(order)
            guard.advance(chosen)
        token = chosen[:, None]
        if g.words_left and words is not None:
            begun = begun + g.word_start[token].long()
        if bool(finished.all()):
            break
    ranked = (scores.view(n) / length.clamp(min=1)).view(batch, k).topk(nbest, dim=1).indices   # (B, nbest)
    out = []
    for r in (ranked + torch.arange(batch, device=device)[:, None] * k).view(-1).tolist():
        ids = [t for t in history[r].tolist() if t != PAD]
        if constraint is not None and EOS not in ids:        # cut by max_len mid-word: drop that piece of a word
            ids = ids[: len(ids) - constraint.unfinished(r)]
        out.append(ids[: ids.index(EOS) + 1] if EOS in ids else ids)
    return out


@torch.inference_mode()
def guided(g: CausalGenerator, src: torch.Tensor, src_mask: torch.Tensor, to: int, away: int, weight: float,
           sample: bool = False, temperature: float = 1.0, max_len: int = 32,
           words: torch.Tensor | None = None) -> list[list[int]]:
    """Decoding with classifier-free guidance between two domain prompts (Sanchez et al. 2023, "Stay on
    topic with classifier-free guidance"): each step reads the same prefix after [<s> x <2to>] and after
    [<s> x <2away>] (the source's own domain, which asks for x back) and chooses from

        log p~(y_t) = log p(y_t | x, <2to>, y_<t) + weight * (log p(y_t | x, <2to>, y_<t) - log p(y_t | x, <2away>, y_<t))

    greedily or by sampling at `temperature`: the pieces the target domain makes likelier than the
    source's gain, the ones both prompts agree on (content) stay. weight 0 is plain decoding. The two
    prompts run as one batch of 2B rows, so a step costs about two."""
    src, src_mask = g.condition(src, src_mask, words)
    batch = src.size(0)
    both = torch.cat([torch.full((batch,), to), torch.full((batch,), away)]).to(src.device)
    inputs, mask = g.prompt(torch.cat([src, src]), torch.cat([src_mask, src_mask]), both)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    ids, masks = [], []

    def step(last: torch.Tensor) -> torch.Tensor | None:
        nonlocal done
        logp = last.float().log_softmax(-1)                                          # (2B, V)
        toward, back = logp[:batch], logp[batch:]
        raw = g.restrict(toward + weight * (toward - back), to)                       # (B, V)
        token, _, _ = choose(raw, "multinomial" if sample else "greedy", temperature)
        token = token.masked_fill(done, PAD)
        ids.append(token)
        masks.append(~done)
        done = done | (token == EOS)
        return None if bool(done.all()) else g.embed(torch.cat([token, token])[:, None])

    g.cached_decode(inputs, mask, max_len, step)
    rows, keep = torch.stack(ids, 1).tolist(), torch.stack(masks, 1).tolist()
    return [[t for t, k in zip(row, m) if k] for row, m in zip(rows, keep)]
