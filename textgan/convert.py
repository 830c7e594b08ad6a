"""Convert whole files with a trained model, streaming, in input order, resumable after kill -9.

    textgan convert reviews.txt -o reviews.pos.txt --to pos

The input is read in chunks of `chunk_lines` lines; each chunk is normalized, sorted by length into
batches, rewritten, and appended in input order to `OUTPUT.part<rank>`. After every chunk a progress
record (`OUTPUT.progress<rank>.json`: input offset, output size, counts) is swapped in atomically, so a
killed run continues from its last finished chunk: the output file is cut back to the recorded size and
the input read from the recorded offset. Chunks are the same whatever the interruptions, so the result is
byte-identical to an uninterrupted run. Only when every chunk is done are the parts merged (several
processes: chunk k went to rank k mod P) into `OUTPUT.tmp` and renamed to OUTPUT: a file at OUTPUT is
always complete.

Line handling (exactly one output line per input line, split on b"\\n" only; "\\r\\n" ends are accepted):
    empty line                 -> empty output (counted)
    longer than data.max_len   -> `long="truncate"`: the first max_len tokens are rewritten (counted);
                                  `long="split"`: rewritten in pieces of at most max_len tokens, joined
    invalid UTF-8              -> ConvertError naming the line; `errors="replace"` substitutes U+FFFD
                                  and counts the line as repaired
    tabs, control characters   -> spaces in the text the model reads; never in the output text
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from . import distributed
from .distributed import DEFAULT_TIMEOUT

FORMATS = ("txt", "jsonl", "tsv")
LONG = ("truncate", "split")
ERRORS = ("strict", "replace")
COUNTS = ("lines", "empty", "truncated", "split", "repaired")


class ConvertError(RuntimeError):
    """Bad input or settings; the message names the file (and line)."""


class Engine(Protocol):
    """What `convert_file` needs from a model (see ModelEngine)."""

    max_len: int

    def normalize(self, text: str) -> str: ...

    def lengths(self, texts: list[str]) -> list[int]: ...         # tokens per normalized text

    def targets(self, texts: list[str]) -> list[str]: ...         # target domain per normalized text

    def rewrite(self, texts: list[str], targets: list[str]) -> list[str]: ...   # normalized in, final out


@dataclass(frozen=True)
class Job:
    """What a conversion is asked to write: the target domain, the line format, the decode options (a
    request for the run's decode plan), the length asked (summarization) and the engine. The output bytes
    depend on every field but `errors`."""

    to: str | None = None                # target domain (None: per line, the one it is not in)
    fmt: str = "txt"                     # txt | jsonl | tsv
    field: str = "text"                  # jsonl: the field rewritten
    column: int = 1                      # tsv: the column rewritten, from 1
    long: str = "truncate"               # lines over data.max_len: truncate | split
    errors: str = "strict"               # invalid UTF-8 / records: strict | replace
    beam: int = 1
    candidates: int | None = None        # reranked candidates per line (None: the run's decode.candidates)
    guidance: float | None = None        # classifier-free guidance weight (None: the run's decode.guidance)
    tokenized: bool = False              # write the normalized (tokenized) form
    max_words: int | None = None         # length control (summarization): words asked of each output
    ratio: float | None = None           # ... or this share of each input's words
    batch_size: int = 256
    chunk_lines: int = 1024
    engine: str = "torch"                # torch | ctranslate2 (fast.py)
    quantization: str = "int8"           # ctranslate2's weights

    def check(self) -> None:
        """ConvertError for a value out of range."""
        for name, value, allowed in [("format", self.fmt, FORMATS), ("long", self.long, LONG),
                                     ("errors", self.errors, ERRORS)]:
            if value not in allowed:
                raise ConvertError(f"unknown --{name} {value!r}; choose from {', '.join(allowed)}")
        if self.batch_size < 1 or self.chunk_lines < 1 or self.beam < 1:
            raise ConvertError("--batch-size, --chunk-lines and --beam must be at least 1")


@dataclass
class Settings:
    """Everything the output bytes depend on; a resumed run must have the same (except job.errors)."""

    input: str
    input_size: int
    input_mtime_ns: int
    model: str
    job: Job = field(default_factory=Job)
    processes: int = 1
    plan: dict = field(default_factory=dict)     # the decode plan (decoding/plan.py DecodePlan, as a dict)
    decode: str = ""                     # the run's decode section (reranker weights, fluency LM...), JSON

    @property
    def chunk_lines(self) -> int:
        return self.job.chunk_lines

    def fingerprint(self) -> str:
        record = asdict(self)
        record["job"].pop("errors")
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Progress:
    fingerprint: str
    next_chunk: int = 0              # global index of the chunk that starts at input_offset
    input_offset: int = 0
    output_bytes: int = 0
    done: bool = False
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))


def clean_output(text: str) -> str:
    """No line breaks, tabs or other control characters in what we write: one line stays one line."""
    return " ".join("".join(" " if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029") else c
                            for c in text).split())


def count_lines(path: Path) -> int:
    """Lines as convert counts them (b"\\n"-separated, a last line without "\\n" included); streaming."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def read_chunks(f, chunk_lines: int) -> Iterator[tuple[int, list[bytes], int]]:
    """(start offset, raw lines without b"\\n", end offset) per chunk of an open binary file, from its position."""
    while True:
        start, lines = f.tell(), []
        for _ in range(chunk_lines):
            raw = f.readline()
            if not raw:
                break
            lines.append(raw[:-1] if raw.endswith(b"\n") else raw)
        if not lines:
            return
        yield start, lines, f.tell()


class LineCodec:
    """Text in and out of one line of a format: txt (the line), jsonl (an object's `field`), tsv (a column)."""

    def __init__(self, fmt: str, field: str = "text", column: int = 1, errors: str = "strict"):
        if fmt not in FORMATS:
            raise ConvertError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        if column < 1:
            raise ConvertError(f"--column counts from 1; got {column}")
        self.fmt, self.field, self.column, self.errors = fmt, field, column, errors

    def decode(self, raw: bytes, where: str, counts: dict) -> tuple[str, object]:
        """Raw line -> (text to rewrite, context to write the output with)."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if self.errors == "strict":
                raise ConvertError(f"{where}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                                   f"fix the file or pass --errors replace") from err
            line = raw.decode("utf-8", errors="replace")
            counts["repaired"] += 1
        if self.fmt == "txt" or not line.strip():
            return line, None
        if self.fmt == "tsv":
            cells = line.split("\t")
            if len(cells) < self.column:
                return self._bad(f"{where}: has {len(cells)} column(s), --column is {self.column}", counts, cells)
            return cells[self.column - 1], cells
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            return self._bad(f"{where}: invalid JSON ({err.msg})", counts, {})
        if not isinstance(record, dict) or not isinstance(record.get(self.field), str):
            return self._bad(f"{where}: not a JSON object with a string field {self.field!r}", counts,
                             record if isinstance(record, dict) else {"value": record})
        return record[self.field], record

    def _bad(self, message: str, counts: dict, context):
        if self.errors == "strict":
            raise ConvertError(message + "; fix the file or pass --errors replace")
        counts["repaired"] += 1
        return "", context

    def encode(self, output: str, context) -> str:
        output = clean_output(output)
        if self.fmt == "txt" or context is None:
            return output
        if self.fmt == "tsv":
            return "\t".join([*context, output])
        return json.dumps({**context, "transfer": output}, ensure_ascii=False)


class ModelEngine:
    """A trained run (textgan.transfer.StyleTransfer) as a convert Engine, decoding by one plan."""

    def __init__(self, model, job: Job):
        if job.to is not None and job.to not in model.domains:
            raise ConvertError(f"unknown domain '{job.to}'; this model knows: {', '.join(model.domains)}")
        if job.to is None and len(model.domains) != 2:
            raise ConvertError(f"--to is needed: this model has {len(model.domains)} domains")
        model.check_length_request(job.max_words, job.ratio)
        self.model, self.job = model, job
        self.plan = model.plan(beam=job.beam, candidates=job.candidates, guidance=job.guidance)
        self.max_len = model.cfg.data.max_len

    def normalize(self, text: str) -> str:
        return self.model.tok.normalize(text)

    def lengths(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.model.tok.sp.encode(texts)]

    def targets(self, texts: list[str]) -> list[str]:
        if self.job.to is not None:
            return [self.job.to] * len(texts)
        return [self.model.other_domain(d) for d in self.model.detect(texts, normalized=True)] if texts else []

    def rewrite(self, texts: list[str], targets: list[str]) -> list[str]:
        job = self.job
        return self.model.transfer(texts, to=targets, plan=self.plan, tokenized=job.tokenized, normalized=True,
                                   batch_size=job.batch_size, max_words=job.max_words, ratio=job.ratio)


def split_words(words: list[str], word_lengths: list[int], max_len: int) -> list[str]:
    """Greedy pieces of consecutive words, each of at most max_len tokens (a longer word stands alone)."""
    pieces, current, size = [], [], 0
    for word, n in zip(words, word_lengths):
        if current and size + n > max_len:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(word)
        size += n
    if current:
        pieces.append(" ".join(current))
    return pieces


@dataclass
class Plan:
    """A chunk made ready for the model: the pieces to rewrite, their target domains, and the line (index
    in the chunk) each piece belongs to."""

    lines: int
    pieces: list[str]
    targets: list[str]
    owner: list[int]


def plan_chunk(texts: list[str], engine: Engine, long: str, counts: dict) -> Plan:
    """Raw texts of one chunk -> what the model rewrites: normalized, split or truncated, targets chosen;
    counts lines and empty / truncated / split ones."""
    norm = [engine.normalize(t) for t in texts]
    lengths = engine.lengths(norm)
    targets = engine.targets(norm)
    pieces, owner = [], []                      # what the model rewrites, and the line each piece belongs to
    for i, (text, n) in enumerate(zip(norm, lengths)):
        if not text:
            counts["empty"] += 1
            continue
        if n > engine.max_len and long == "split":
            words = text.split()
            parts = split_words(words, engine.lengths(words), engine.max_len)
            counts["split"] += 1
        else:
            parts = [text]
            counts["truncated"] += n > engine.max_len     # the tokenizer keeps the first max_len tokens
        pieces += parts
        owner += [i] * len(parts)
    counts["lines"] += len(texts)
    return Plan(len(texts), pieces, [targets[i] for i in owner], owner)


def rewrite_chunk(plan: Plan, engine: Engine) -> list[str]:
    """The model's rewrites of a planned chunk, one per line (a split line's pieces joined), in order."""
    outputs = engine.rewrite(plan.pieces, plan.targets) if plan.pieces else []
    joined = [[] for _ in range(plan.lines)]
    for i, out in zip(plan.owner, outputs):
        joined[i].append(out)
    return [" ".join(parts) for parts in joined]


def convert_chunk(texts: list[str], engine: Engine, long: str, counts: dict) -> list[str]:
    """Raw texts of one chunk -> rewrites, in order; counts empty / truncated / split lines."""
    return rewrite_chunk(plan_chunk(texts, engine, long, counts), engine)


_END = object()


def read_ahead(items: Iterator):
    """Yield from `items`, computing the next item on a thread while the caller works on this one.

    convert plans chunk k + 1 (reading, UTF-8, normalization: pure Python, ~8k lines/s) while the model
    rewrites chunk k; CTranslate2 and torch release the GIL in their kernels, so the two overlap."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(next, items, _END)
        while (item := future.result()) is not _END:
            future = pool.submit(next, items, _END)
            yield item


def part_paths(output: Path, rank: int) -> tuple[Path, Path]:
    return output.with_name(f"{output.name}.part{rank}"), output.with_name(f"{output.name}.progress{rank}.json")


def _save_progress(path: Path, progress: Progress) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(progress)))
    os.replace(tmp, path)


def _load_progress(path: Path, settings: Settings) -> Progress:
    if not path.exists():
        return Progress(settings.fingerprint())
    try:
        progress = Progress(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ConvertError(f"{path} is unreadable ({err}); delete it and {path.name.split('.progress')[0]}"
                           f".part* to start over") from err
    if progress.fingerprint != settings.fingerprint():
        parts = path.parent / (path.name.split(".progress")[0] + ".part*")
        raise ConvertError(f"{path} belongs to an unfinished conversion with other settings (input, model, "
                           f"the run's decode section, format, --to, --beam, --batch-size, processes ...); run "
                           f"that command again to finish it, or delete {parts} and its .progress*.json to start "
                           f"over")
    return progress


def chunks_left(settings: Settings, progress: Progress, rank: int, total_lines: int) -> int:
    """How many chunks rank `rank` still has to convert (chunk k belongs to rank k mod processes)."""
    if progress.done:
        return 0
    chunks = -(-total_lines // settings.chunk_lines)
    first = progress.next_chunk + (rank - progress.next_chunk) % settings.processes
    return len(range(first, chunks, settings.processes))


def convert_shard(settings: Settings, output: Path, engine: Engine, codec: LineCodec, rank: int = 0,
                  on_chunk: Callable[[int], None] | None = None,
                  after_own_chunk: Callable[[], None] | None = None) -> Progress:
    """Convert the chunks of rank `rank` (chunk k belongs to rank k mod processes), resuming if possible;
    `after_own_chunk()` is called once each of them is recorded."""
    part, progress_file = part_paths(output, rank)
    progress = _load_progress(progress_file, settings)
    if progress.done:
        return progress
    def planned(f):
        """(chunk index, lines, end offset, decoded lines, plan, counts) per chunk; plan None for other ranks'."""
        k = progress.next_chunk
        for _, lines, end in read_chunks(f, settings.chunk_lines):
            if k % settings.processes != rank:
                yield k, len(lines), end, None, None, None
            else:
                counts = dict.fromkeys(COUNTS, 0)       # the chunk's own: progress counts only what is written
                first = k * settings.chunk_lines + 1
                decoded = [codec.decode(raw, f"{settings.input}: line {first + i}", counts)
                           for i, raw in enumerate(lines)]
                plan = plan_chunk([text for text, _ in decoded], engine, settings.job.long, counts)
                yield k, len(lines), end, decoded, plan, counts
            k += 1

    with open(settings.input, "rb") as f, open(part, "ab") as out:
        out.truncate(progress.output_bytes)      # drop what a killed run wrote after its last record
        out.seek(progress.output_bytes)
        f.seek(progress.input_offset)
        for k, n_lines, end, decoded, plan, counts in read_ahead(planned(f)):
            if plan is not None:
                outputs = rewrite_chunk(plan, engine)
                data = "".join(codec.encode(o, ctx) + "\n" for o, (_, ctx) in zip(outputs, decoded)).encode()
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                progress.output_bytes += len(data)
                progress.next_chunk, progress.input_offset = k + 1, end
                for key, value in counts.items():
                    progress.counts[key] += value
                _save_progress(progress_file, progress)
                if after_own_chunk:
                    after_own_chunk()
            if on_chunk:
                on_chunk(n_lines)
    progress.done = True
    _save_progress(progress_file, progress)
    return progress


def merge_parts(output: Path, processes: int, chunk_lines: int) -> None:
    """Interleave the ranks' parts chunk by chunk into OUTPUT (via OUTPUT.tmp), then remove them."""
    parts = [part_paths(output, r)[0] for r in range(processes)]
    if processes == 1:
        os.replace(parts[0], output)
    else:
        tmp = output.with_name(output.name + ".tmp")
        files = [open(p, "rb") for p in parts]
        try:
            with open(tmp, "wb") as out:
                k = 0
                while True:
                    lines = [line for line in (files[k % processes].readline() for _ in range(chunk_lines)) if line]
                    if not lines:
                        break
                    out.writelines(lines)
                    k += 1
                out.flush()
                os.fsync(out.fileno())
        finally:
            for f in files:
                f.close()
        os.replace(tmp, output)
        for p in parts:
            p.unlink()
    for r in range(processes):
        part_paths(output, r)[1].unlink(missing_ok=True)


def check_paths(input_path: Path, output: Path, overwrite: bool) -> None:
    """Fail before anything is written: unreadable input, an existing output, an unwritable directory."""
    if not input_path.is_file():
        raise ConvertError(f"input {input_path} does not exist or is not a file")
    try:
        with open(input_path, "rb") as f:
            f.read(1)
    except OSError as err:
        raise ConvertError(f"cannot read {input_path}: {err.strerror}") from err
    if output.resolve() == input_path.resolve():
        raise ConvertError("the output must not be the input file")
    if output.exists() and not overwrite:
        raise ConvertError(f"{output} exists (a finished conversion); pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise ConvertError(f"output directory {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise ConvertError(f"output directory {output.parent} is not writable")


def summary_line(result: dict) -> str:
    """`convert`'s result (counts, seconds, converted_now) as one line."""
    counts, seconds, converted_now = result, result["seconds"], result["converted_now"]
    rate = converted_now / seconds if seconds > 0 else 0.0
    return (f"{counts['lines']} lines ({converted_now} in this run, {seconds:.1f} s, {rate:.1f} lines/s); "
            f"empty {counts['empty']}, truncated {counts['truncated']}, split {counts['split']}, "
            f"repaired {counts['repaired']}")


def expected_speed(rate: float, left: int, plan, engine: str) -> str:
    """One line after the first chunk: its lines/s, the time the rest should take, and, for a decode that
    reranks candidates (several decoder runs per line), the faster ways to convert."""
    line = f"first chunk: {rate:.1f} lines/s; the {left} lines left should take about {left / max(rate, 1e-9) / 60:.0f} min"
    if plan.reranks:
        fast = "--candidates 1 (one greedy rewrite" + (", then --engine ctranslate2)" if engine == "torch" else ")")
        line += (f". This decode runs the decoder {plan.decodes} times a line; faster: {fast}, a run refined so "
                 f"that greedy decoding carries its quality (textgan refine), or a small student (textgan distill)")
    return line


def _counts(output: Path, processes: int) -> dict:
    total = dict.fromkeys(COUNTS, 0)
    for r in range(processes):
        path = part_paths(output, r)[1]
        if path.exists():
            for key, value in json.loads(path.read_text())["counts"].items():
                total[key] += value
    return total


def convert(input_path: str | Path, output: str | Path, model_dir: str | Path, job: Job = Job(),
            overwrite: bool = False, show_progress: bool = True, timeout: float = DEFAULT_TIMEOUT,
            decode: typing.Sequence[str] = ()) -> dict:
    """Convert INPUT into OUTPUT with the run in `model_dir` as `job` asks (see the module docstring), its
    decode section changed by the `decode` overrides ("decode.key=value", transfer.StyleTransfer);
    returns the summary counts plus `seconds`, `converted_now` and this process's `rank`. Under `accelerate
    launch` the chunks are shared among processes, on one machine or several (OUTPUT's directory shared by
    all), which go through their chunks in lockstep (distributed.Lockstep): no process waits for the
    others longer than one chunk, and `timeout` seconds bound that wait. A lost process stops the others
    with distributed.PeerLostError; the finished chunks are kept."""
    import torch
    from accelerate import PartialState

    from .fast import ExportError
    from .transfer import StyleTransfer

    job.check()
    input_path, output, model_dir = Path(input_path), Path(output), Path(model_dir)
    check_paths(input_path, output, overwrite)
    state = PartialState(cpu=not torch.cuda.is_available(), **distributed.group_kwargs(timeout))
    distributed.check_launch(state.num_processes)
    try:
        model = StyleTransfer(model_dir, device=str(state.device), engine=job.engine, quantization=job.quantization,
                              decode=decode)
        rewriter = ModelEngine(model, job)
    except (ValueError, ExportError) as err:
        raise ConvertError(str(err)) from err
    stat = input_path.stat()
    settings = Settings(str(input_path.resolve()), stat.st_size, stat.st_mtime_ns, str(model_dir.resolve()), job,
                        state.num_processes, asdict(rewriter.plan), json.dumps(asdict(model.cfg.decode), sort_keys=True))
    return _run(settings, input_path, output, rewriter, state, show_progress)


def _run(settings: Settings, input_path: Path, output: Path, rewriter: ModelEngine, state, show_progress: bool) -> dict:
    """`convert`'s work once the model is loaded: every process converts its chunks, the main one merges."""
    from tqdm.auto import tqdm

    job, chunk_lines = settings.job, settings.chunk_lines
    codec = LineCodec(job.fmt, job.field, job.column, job.errors)
    started = time.perf_counter()
    earlier = [_load_progress(part_paths(output, r)[1], settings) for r in range(state.num_processes)]
    before = sum(p.counts["lines"] for p in earlier)
    total = count_lines(input_path)
    lockstep = distributed.Lockstep(state, chunks_left(settings, earlier[state.process_index], state.process_index,
                                                       total))
    bar = None
    if show_progress and state.is_main_process:
        print(f"decoding by {rewriter.plan.describe()}", file=sys.stderr)
        bar = tqdm(total=total, initial=min(earlier[0].next_chunk * chunk_lines, total), unit="line",
                   desc=f"convert {input_path.name}", dynamic_ncols=True, smoothing=0.1)

    def kept() -> str:
        return (f"the finished chunks are kept in {output.name}.part*; run the same command again on every "
                f"machine to finish")

    first = {"started": time.perf_counter()}

    def on_chunk(lines: int) -> None:
        bar.update(lines)
        if "rate" not in first:            # after the first chunk: the speed to expect, and the fast path
            first["rate"] = lines / max(1e-9, time.perf_counter() - first["started"])
            tqdm.write(expected_speed(first["rate"], total - bar.n, rewriter.plan, job.engine))

    with distributed.watch(state.num_processes, kept):
        try:
            convert_shard(settings, output, rewriter, codec, state.process_index,
                          on_chunk=on_chunk if bar else None,
                          after_own_chunk=lockstep.step if state.num_processes > 1 else None)
        finally:
            if bar:
                bar.close()
        if state.num_processes > 1:
            lockstep.finish()                  # every process is done: the parts are complete
        counts = _counts(output, state.num_processes)
        if state.is_main_process:
            missing = [str(p) for r in range(state.num_processes) if not (p := part_paths(output, r)[0]).exists()]
            if missing:
                raise ConvertError(f"{', '.join(missing)} not found: under several machines the output's "
                                   f"directory must be one they all share (NFS or the like)")
            merge_parts(output, state.num_processes, chunk_lines)
        state.wait_for_everyone()
    seconds = time.perf_counter() - started
    return {**counts, "seconds": seconds, "converted_now": counts["lines"] - before, "rank": state.process_index}
