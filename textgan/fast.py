"""A CTranslate2 inference engine: a run's generator converted to int8 (or int16, float32) weights.

    textgan export runs/sentiment/NAME --engine ctranslate2 --quantization int8
    textgan convert reviews.txt -o out.txt --to pos --engine ctranslate2

CTranslate2 (OpenNMT) runs Transformer encoder-decoders with its own batched greedy / beam / sampling
search in C++, with int8 matrix multiplies on CPU. `export` converts the run's Hugging Face BART
(`generator/`) with CTranslate2's own Transformers converter into `<run>/ct2-<quantization>/`; the
engine does the same on first use when that directory is missing. `CT2Generator` then stands in for
`models.generator.Generator` where inference decodes (decoding.search.generate hands it its `Search`:
ids in, ids out), so transfer, convert and serve keep their normalization, length bucketing, order and
resume unchanged.

The domain token that the torch decoder starts from goes in as the target prefix, with no start token
before it (the converted model's `decoder_start_token` is None). A causal generator (a Llama-type
decoder, generator.arch=causal) runs as CTranslate2's Generator with its prompt `<s> src <2to>` as start
tokens (`CT2CausalGenerator`). Models CTranslate2 cannot run as
trained are refused with the reason: a decoder that reads the words left at every step
(`generator.words_left`), extraction-constrained decoding (`generator.extract_to`) and a target vocabulary
(`generator.target_vocab`: thousands of banned pieces per direction, which CTranslate2's suppress lists
are not made for).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .config import QUANTIZATIONS
from .tokenizer import BOS, EOS, PAD

if TYPE_CHECKING:
    from .decoding.search import Search



class ExportError(RuntimeError):
    """A model this engine cannot run, or a missing dependency; one line saying why."""


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError as err:
        raise ExportError("the ctranslate2 engine needs the package: pip install -e \".[fast]\" "
                          "(or pip install ctranslate2)") from err
    return ctranslate2


def check_exportable(cfg) -> None:
    """ExportError unless CTranslate2 can decode this run's generators exactly as torch does."""
    if cfg.generator.words_left:
        raise ExportError("this model's decoder reads the words left at every step (generator.words_left, "
                          "summarization), which CTranslate2 cannot feed it; use --engine torch")
    if cfg.generator.extract_to:
        raise ExportError("this model decodes under the extraction constraint (generator.extract_to), which "
                          "CTranslate2 cannot apply; use --engine torch")
    if cfg.generator.max_run:
        raise ExportError("this model decodes under a run guard (generator.max_run), which CTranslate2 cannot "
                          "apply; use --engine torch")
    if cfg.generator.target_vocab:
        raise ExportError("this model decodes under a target vocabulary (generator.target_vocab), which "
                          "CTranslate2 cannot apply; use --engine torch")


def export_dir(run_dir: str | Path, quantization: str) -> Path:
    return Path(run_dir) / f"ct2-{quantization}"


class _PieceVocabulary:
    """What CTranslate2's Transformers converter asks of a tokenizer, from our SentencePiece model."""

    def __init__(self, tok):
        self.pieces = [tok.sp.id_to_piece(i) for i in range(tok.vocab_size)]
        self.bos_token, self.eos_token, self.unk_token = "<s>", "</s>", "<unk>"

    def get_vocab(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.pieces)}

    def convert_ids_to_tokens(self, i):
        return self.pieces[i] if i is not None else None


def export(run_dir: str | Path, quantization: str = "int8", force: bool = False) -> Path:
    """Convert a run's generator(s) to CTranslate2 in `<run>/ct2-<quantization>/<generator dir>/`;
    returns that directory (reused when already there, unless `force`)."""
    from .checkpoint import generator_dirs, load_run_config, quiet_loading
    from .tokenizer import load_tokenizer

    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; choose from {', '.join(QUANTIZATIONS)}")
    ct2 = _ctranslate2()
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    check_exportable(cfg)
    out = export_dir(run_dir, quantization)
    if out.is_dir() and not force and all((out / d / "model.bin").is_file() for d in generator_dirs(cfg)):
        return out
    vocabulary = _PieceVocabulary(load_tokenizer(run_dir, cfg.data.domains, cfg.data.normalize))

    class Converter(ct2.converters.TransformersConverter):
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return vocabulary

        def load_model(self, model_class, model_name_or_path, **kwargs):
            with quiet_loading():
                model = super().load_model(model_class, model_name_or_path, **kwargs)
            if not hasattr(model.config, "normalize_before"):   # BART is post-norm; transformers 5 dropped the key
                model.config.normalize_before = False
            return model

        def _load(self):
            spec = super()._load()
            if cfg.generator.arch != "causal":
                spec.config.decoder_start_token = None  # the domain token, given as target prefix, starts
            return spec

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in generator_dirs(cfg):
        Converter(str(run_dir / name)).convert(str(tmp / name), quantization=quantization, force=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _engine(device: str, compute_type: str):
    """(the ctranslate2 module, "cpu" | "cuda"), once it is known that it computes in compute_type there."""
    ct2 = _ctranslate2()
    device = "cuda" if str(device).startswith("cuda") else "cpu"
    if compute_type not in ct2.get_supported_compute_types(device):
        raise ExportError(f"CTranslate2 cannot compute in {compute_type} on this {device} (it can: "
                          f"{', '.join(sorted(ct2.get_supported_compute_types(device)))})")
    return ct2, device


class CT2Generator:
    """One converted generator behind decoding.search.generate (padded id tensors and a `Search` in, id lists
    out, each up to and including EOS when written)."""

    device = torch.device("cpu")

    def __init__(self, model_dir: Path, tok, device: str = "cpu", compute_type: str = "int8", threads: int = 0):
        ct2, device = _engine(device, compute_type)
        # On CPU, one thread per batch half beats two threads on one batch: these models are too small for
        # intra-op threading to pay (a trial on 20k Yelp lines, 2 cores: 1349 vs 857 lines/s through transfer).
        self.workers = 1 if device == "cuda" else threads or torch.get_num_threads()
        self.translator = ct2.Translator(str(model_dir), device=device, compute_type=compute_type,
                                         inter_threads=self.workers, intra_threads=1 if device == "cpu" else 0)
        self.read_vocabulary(tok)

    def read_vocabulary(self, tok) -> None:
        self.pieces = [tok.sp.id_to_piece(i) for i in range(tok.vocab_size)]
        self.ids = {p: i for i, p in enumerate(self.pieces)}

    def check(self, search: Search, words) -> None:
        """ExportError for what this engine's search cannot do: length requests, classifier-free guidance."""
        if words is not None:
            raise ExportError("length requests need the torch engine")
        if search.guidance:
            raise ExportError("classifier-free guidance needs the torch engine")

    def generate(self, src: torch.Tensor, src_mask: torch.Tensor, to: int, search: Search,
                 words=None) -> list[list[int]]:
        """decoding.search.generate's search on this engine: ids in, id lists out."""
        self.check(search, words)
        nbest = search.nbest
        source = [[self.pieces[t] for t in row[: int(n)]] for row, n in zip(src.tolist(), src_mask.sum(1).tolist())]
        results = self.translator.translate_batch(
            source, target_prefix=[[self.pieces[to]]] * len(source), beam_size=search.beam,
            max_decoding_length=search.max_len, min_decoding_length=0, return_end_token=True,
            sampling_topk=0 if search.sample else 1, sampling_temperature=search.temperature, max_input_length=0,
            num_hypotheses=nbest, max_batch_size=-(-len(source) // self.workers))   # one sub-batch per worker thread
        return [[self.ids[p] for p in h if self.ids[p] != PAD] for r in results for h in r.hypotheses[:nbest]]


class CT2CausalGenerator(CT2Generator):
    """A converted causal generator (generator.arch=causal, a Llama-type decoder) behind the same interface:
    the prompt `<s> src <2to>` goes in as start tokens, the continuation comes out."""

    def __init__(self, model_dir: Path, tok, device: str = "cpu", compute_type: str = "int8", threads: int = 0):
        ct2, device = _engine(device, compute_type)
        # A 135M-parameter model is big enough for intra-op threads to pay: one worker, all cores.
        self.workers = 1
        self.generator = ct2.Generator(str(model_dir), device=device, compute_type=compute_type,
                                       intra_threads=(threads or torch.get_num_threads()) if device == "cpu" else 0)
        self.read_vocabulary(tok)

    def generate(self, src: torch.Tensor, src_mask: torch.Tensor, to: int, search: Search,
                 words=None) -> list[list[int]]:
        """decoding.search.generate's search on this engine: ids in, id lists out."""
        self.check(search, words)
        nbest = search.nbest
        prompts = [[self.pieces[BOS], *(self.pieces[t] for t in row[: int(n)]), self.pieces[to]]
                   for row, n in zip(src.tolist(), src_mask.sum(1).tolist())]
        results = self.generator.generate_batch(
            prompts, max_length=search.max_len, beam_size=search.beam, sampling_topk=0 if search.sample else 1,
            sampling_temperature=search.temperature, include_prompt_in_result=False, end_token=self.pieces[EOS],
            return_end_token=True, num_hypotheses=nbest)
        return [[self.ids[p] for p in h if self.ids[p] != PAD] for r in results for h in r.sequences[:nbest]]


def load_generators(run_dir: str | Path, cfg, tok, device: str = "cpu", quantization: str = "int8") -> list[CT2Generator]:
    """The run's generators on the CTranslate2 engine, converting them first if needed."""
    from .checkpoint import generator_dirs

    out = export(run_dir, quantization)
    kind = CT2CausalGenerator if cfg.generator.arch == "causal" else CT2Generator
    return [kind(out / name, tok, device, quantization) for name in generator_dirs(cfg)]

