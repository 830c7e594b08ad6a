"""An encoder-decoder warm-started from a pretrained BERT-style encoder (generator.init with arch seq2seq).

The model stays a plain `BartForConditionalGeneration`, so everything that reads a seq2seq run (save and
load, beam search, convert, serve, the CTranslate2 engine) reads this one too. Its encoder is the
pretrained encoder, weight for weight: both are post-LayerNorm Transformers, and the mapping is

    BERT word embeddings (cut to our pieces)  -> shared embeddings (encoder, decoder and output layer, tied)
    position + token-type-0 embeddings        -> embed_positions (BART's learned positions start at offset 2)
    embeddings.LayerNorm                      -> layernorm_embedding
    layer i: query/key/value/attention.output -> q_proj/k_proj/v_proj/out_proj, self_attn_layer_norm
             intermediate/output              -> fc1/fc2, final_layer_norm

The decoder has `generator.decoder_layers` layers of the encoder's width. With `generator.warm_decoder`
its self-attention and feed-forward blocks start from the encoder's lowest layers and its positions from
the encoder's, and the cross-attention starts at random: the BERT2BERT warm start (Rothe et al. 2020),
here with a shallower decoder to keep decoding cheap on a CPU. With `generator.warm_cross` the
cross-attention starts as a copy of the same layer's self-attention. Our vocabulary is the encoder's
tokenizer cut to the corpus' pieces (tokenizer.PretrainedPieces), as for the causal generator.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration

from ..config import GeneratorConfig
from ..tokenizer import BOS, EOS, PAD
from .causal import mean_rows

_OFFSET = 2          # BartLearnedPositionalEmbedding reads row position + 2


def load_encoder(init: str):
    """The pretrained BERT-style encoder `init` (a packaged name such as e5, a local directory or a model id)."""
    from ..pretrained.encoder import Encoder

    return Encoder.load(init).model


def _copy(dst: nn.Module, src: nn.Module) -> None:
    dst.weight.data.copy_(src.weight.data)
    if getattr(dst, "bias", None) is not None:
        dst.bias.data.copy_(src.bias.data)


def _copy_attention(attention, norm, bert_attention) -> None:
    """BERT's attention block (query/key/value, output projection and its LayerNorm) into a BART attention."""
    _copy(attention.q_proj, bert_attention.self.query)
    _copy(attention.k_proj, bert_attention.self.key)
    _copy(attention.v_proj, bert_attention.self.value)
    _copy(attention.out_proj, bert_attention.output.dense)
    _copy(norm, bert_attention.output.LayerNorm)


def _copy_block(layer, bert_layer) -> None:
    """A BERT layer's self-attention and feed-forward weights into a BART encoder or decoder layer (whose
    LayerNorms keep BART's epsilon, 1e-5 against BERT's 1e-12, which `from_pretrained` of the saved run
    reproduces; on the packaged e5 the token states still agree with the BERT's to cosine >= 0.9999998)."""
    _copy_attention(layer.self_attn, layer.self_attn_layer_norm, bert_layer.attention)
    _copy(layer.fc1, bert_layer.intermediate.dense)
    _copy(layer.fc2, bert_layer.output.dense)
    _copy(layer.final_layer_norm, bert_layer.output.LayerNorm)


def _copy_cross(layer, bert_layer) -> None:
    """A BERT layer's self-attention weights into a BART decoder layer's cross-attention (queries from the
    decoder, keys and values from the encoder's states, which live in the same space as the BERT's own
    states), so the decoder reads its source from the first step instead of from a random projection."""
    _copy_attention(layer.encoder_attn, layer.encoder_attn_layer_norm, bert_layer.attention)


def _positions(table: nn.Embedding, bert_embeddings) -> None:
    pos = bert_embeddings.position_embeddings.weight.data + bert_embeddings.token_type_embeddings.weight.data[0]
    n = min(len(pos), table.weight.size(0) - _OFFSET)
    table.weight.data[_OFFSET:_OFFSET + n] = pos[:n]


def bart_from_encoder(cfg: GeneratorConfig, rows: list[list[int]], max_len: int,
                      bert=None) -> BartForConditionalGeneration:
    """A BART-style model whose encoder is the pretrained encoder cfg.init (see the module docstring); `rows`
    are PretrainedPieces.source_rows(): the pretrained ids whose mean embedding starts each of our ids."""
    bert = bert if bert is not None else load_encoder(cfg.init)
    b = bert.config
    if cfg.warm_decoder and cfg.decoder_layers > b.num_hidden_layers:
        raise ValueError(f"generator.warm_decoder: {cfg.decoder_layers} decoder layers but the encoder has "
                         f"{b.num_hidden_layers} to start them from")
    config = BartConfig(
        vocab_size=len(rows), d_model=b.hidden_size,
        encoder_layers=b.num_hidden_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=b.num_attention_heads, decoder_attention_heads=b.num_attention_heads,
        encoder_ffn_dim=b.intermediate_size, decoder_ffn_dim=b.intermediate_size if cfg.warm_decoder else cfg.ffn_dim,
        activation_function=b.hidden_act, dropout=cfg.dropout, attention_dropout=cfg.dropout, activation_dropout=0.0,
        max_position_embeddings=min(b.max_position_embeddings, max(max_len + 8, 64)), scale_embedding=False,
        pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS,
        forced_bos_token_id=None, forced_eos_token_id=None, tie_word_embeddings=True)
    model = BartForConditionalGeneration(config)
    with torch.no_grad():
        model.model.shared.weight.copy_(mean_rows(bert.embeddings.word_embeddings.weight.data, rows))
        encoder = model.model.encoder
        _positions(encoder.embed_positions, bert.embeddings)
        _copy(encoder.layernorm_embedding, bert.embeddings.LayerNorm)
        for layer, bert_layer in zip(encoder.layers, bert.encoder.layer):
            _copy_block(layer, bert_layer)
        if cfg.warm_decoder:
            decoder = model.model.decoder
            _positions(decoder.embed_positions, bert.embeddings)
            _copy(decoder.layernorm_embedding, bert.embeddings.LayerNorm)
            for layer, bert_layer in zip(decoder.layers, bert.encoder.layer):
                _copy_block(layer, bert_layer)
                if cfg.warm_cross:
                    _copy_cross(layer, bert_layer)
    model.tie_weights()
    if cfg.freeze_layers:
        for layer in list(model.model.encoder.layers)[: cfg.freeze_layers]:
            layer.requires_grad_(False)
        model.model.encoder.embed_positions.requires_grad_(False)
        model.model.encoder.layernorm_embedding.requires_grad_(False)
    return model
