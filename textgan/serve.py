"""`textgan serve`: trained runs behind an HTTP API (FastAPI + uvicorn), with a demo page at `/`.

    textgan serve                                   # the newest run of each task under ./runs
    curl -s localhost:8000/v1/transfer -H 'content-type: application/json' \\
         -d '{"task": "sentiment", "texts": ["the food was cold ."]}'

Endpoints: GET /health, GET /v1/models, POST /v1/transfer, POST /v1/detect; OpenAPI docs at /docs
(Swagger UI served from the swagger-ui-bundle package: nothing is fetched from the internet).

Where the work runs: the event loop parses requests and answers them; a judging thread normalizes each
request's texts and picks their target domains with the run's n-gram judge (the cheap half of
`textgan transfer`); decoding runs in `workers` spawned processes, each with every served model loaded
(Python's lock is per process, so decoding never holds up the event loop).

Micro-batching: requests wait in a queue. When a worker is free, the batcher takes the waiting requests
(at most `batch_texts` texts) and waits up to `batch_ms` for more. Their texts are split into jobs by
decoding options and target domain, and each job is one `StyleTransfer.transfer` call in a worker (the same
length-sorted batches and detokenization as `textgan transfer`); each caller gets its own rows back. A
lone client's request goes at once, without the wait.

Decoding: a request decodes as `textgan transfer` would with its options: by default the run's own decode
(its config.yaml `decode`: e.g. the sentiment cpu preset's guidance ladder, five guided greedy rewrites
per text reranked with a fluency LM); `n` > 1 or `sample` samples n outputs with the run's guidance
instead; `beam` > 1 beam-searches (encoder-decoder generators only: a causal run refuses it with 422).

What a request costs, and admission: its work is, per non-empty text,

    units = n x decodes x pieces

with decodes the decoder runs per text of that decode (DecodePlan.decodes: the ladder's rungs,
candidates, passes, beam width, x2 under guidance) and pieces the text's length in pieces cut to
train.max_gen_len, an estimate of what the generator writes (past that length a text costs no more). Its seconds are units x the
run's pace, seconds per unit measured by the server (Pace: timed on the run's examples at start-up, then
on every finished batch). A request is admitted when it can expect an answer within `max_wait` seconds
(--max-wait, default 30) given the admitted requests still unanswered (MicroBatcher.admit); otherwise 503
with Retry-After, or 413 when it alone would take longer than max_wait. GET /health answers from the
event loop whatever the workers are doing, with the backlog and pace.

Errors are JSON `{"error": "one line"}` with a 4xx or 503 status: 400 invalid JSON, 404 unknown task, 413 a
body over the size limit or a request whose decoding alone would take longer than max_wait, 422 anything
else a request gets wrong (types, limits, domains, options the model cannot honour), 503 (with a
Retry-After header, in seconds) when the server is too busy to answer within max_wait. No request names
a file: models are chosen when the server starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from .batching import Limits, MicroBatcher, Pace, Prepared, RequestError
from .checkpoint import CheckpointError, latest_run, runs_root
from .decoding.plan import DecodePlan
from .transfer import StyleTransfer

WEB = Path(__file__).parent / "web"
log = logging.getLogger("textgan.serve")


# ---------------------------------------------------------------- request and response bodies

def _encodable(text: str) -> str:
    """JSON may carry a lone surrogate ("\\ud800"): valid JSON, not text, and not writable back as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"not valid Unicode: a lone surrogate U+{ord(text[err.start]):04X} "
                         f"at character {err.start}") from None
    return text


Text = Annotated[StrictStr, AfterValidator(_encodable)]


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Text = Field(description="a served task (GET /v1/models)")
    texts: list[Text] = Field(description="sentences to rewrite; an empty string gives \"\"")
    to: Text | None = Field(None, description="target domain; default: per text, the one it is not in")
    max_words: StrictInt | None = Field(None, description="length control: words per output")
    ratio: StrictFloat | StrictInt | None = Field(None, description="length control: output words as a share of the input's")
    sample: StrictBool = Field(False, description="sample instead of greedy decoding")
    n: StrictInt = Field(1, description="outputs per text (n > 1 samples)")
    beam: StrictInt = Field(1, description="beam size (greedy: 1); a causal generator has no beam search")
    temperature: StrictFloat | StrictInt = Field(1.0, description="sampling temperature, 0.01 to 10")


class TransferResult(BaseModel):
    text: str
    source: str | None = Field(description="the domain the judge puts the input in (null for an empty text)")
    to: str
    outputs: list[str]
    style_before: float | None = Field(description="the judge's probability that the input is in domain `to`")
    style_after: list[float | None] = Field(description="the same probability for each output")


class TransferResponse(BaseModel):
    task: str
    run: str
    results: list[TransferResult]


class DetectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Text
    texts: list[Text]


class DetectResult(BaseModel):
    text: str
    domain: str
    probs: dict[str, float]


class DetectResponse(BaseModel):
    task: str
    run: str
    results: list[DetectResult]


# ---------------------------------------------------------------- the models and their decoding

class Served:
    """A loaded run and what the page shows about it."""

    def __init__(self, run_dir: str | Path, device: str | None = None, examples: int = 3, engine: str = "torch",
                 quantization: str = "int8", decode: tuple[str, ...] = ()):
        self.model = StyleTransfer(run_dir, device, engine, quantization, decode)
        self.quantization, self.decode = quantization, tuple(decode)
        self.task = self.model.cfg.task
        self.run = self.model.run_dir.name
        self.examples = self._examples(examples)

    def _examples(self, k: int) -> dict[str, list[str]]:
        """The first k test inputs of each source domain, as people write them ({} without the corpus)."""
        if not k:
            return {}
        from .corpora import CorpusError
        from .evaluate import task_directions

        try:
            directions = task_directions(self.model.cfg)
        except (CorpusError, ValueError, OSError) as err:
            log.warning("no examples for %s: %s", self.task, err)
            return {}
        return {d.src: [self.model.tok.detokenize(t) for t in d.inputs[:k]] for d in directions}

    def info(self) -> dict[str, Any]:
        model = self.model
        return {"task": self.task, "run": self.run, "domains": model.domains,
                "auto_detect": len(model.domains) == 2, "length_control": model.controls_length,
                "default_words": model.default_words,
                "examples": self.examples}

    def check(self, req: TransferRequest, limits: Limits) -> None:
        """RequestError (422) for anything this model or the limits refuse; costs no model work."""
        model = self.model
        limits.check_texts(req.texts)
        if req.to is not None and req.to not in model.domains:
            raise RequestError(422, f"unknown domain '{req.to}'; task {self.task} has: {', '.join(model.domains)}")
        if req.to is None and len(model.domains) != 2:
            raise RequestError(422, f"give `to`: task {self.task} has {len(model.domains)} domains")
        if not 1 <= req.n <= limits.max_n:
            raise RequestError(422, f"n must be between 1 and {limits.max_n}; got {req.n}")
        if not 1 <= req.beam <= limits.max_beam:
            raise RequestError(422, f"beam must be between 1 and {limits.max_beam}; got {req.beam}")
        if req.beam > 1 and (req.sample or req.n > 1):
            raise RequestError(422, "beam search and sampling (sample, n > 1) exclude each other")
        try:
            self.plan(req)                                        # what transfer() would refuse
        except ValueError as err:
            raise RequestError(422, str(err)) from None
        try:
            model.check_length_request(req.max_words, req.ratio)
        except ValueError as err:
            raise RequestError(422, str(err).replace("--max-words", "max_words").replace("--ratio", "ratio")) from None

    def plan(self, req: TransferRequest) -> DecodePlan:
        """The decode plan of a request: the run's decode with its beam, sampling (n > 1 samples) and
        temperature (decoding/plan.py); ValueError for options the run cannot decode."""
        return self.model.plan(beam=req.beam, sample=req.sample or req.n > 1, temperature=req.temperature)

    def prepare(self, texts: list[str], to: str | None) -> Prepared:
        """Normalize, judge the inputs and choose each text's target domain (the one it is not in, unless
        `to`): the cheap half of `textgan transfer`, done before batching so batches go by direction."""
        model = self.model
        norm = [model.tok.normalize(t) for t in texts]
        probs = model.domain_probs(norm, normalized=True)                     # (N, k)
        detected = [model.domains[i] for i in probs.argmax(-1).tolist()]
        targets = [to or model.other_domain(d) for d in detected]
        before = [round(probs[i, model.domains.index(t)].item(), 4) for i, t in enumerate(targets)]
        pieces = [len(ids) for ids in model.tok.encode(norm, model.cfg.train.max_gen_len)]
        return Prepared(norm, [d if x else None for d, x in zip(detected, norm)], targets,
                        [b if x else None for b, x in zip(before, norm)], pieces)

    def units(self, req: TransferRequest, prep: Prepared) -> list[int]:
        """The work of each text of a checked request: n x decodes x pieces, decodes the decoder runs per
        text of the request's decode plan (DecodePlan.decodes) and pieces the text's
        length in pieces cut to train.max_gen_len, an estimate of the length of what the generator writes."""
        per_piece = req.n * self.plan(req).decodes
        return [per_piece * p for p in prep.pieces]

    def rewrite(self, norm: list[str], to: str, req: TransferRequest) -> list[list[tuple[str, float]]]:
        """Normalized texts -> per text, req.n (output, the judge's p(to | output)), through
        `StyleTransfer.transfer` as `textgan transfer` calls it. Runs in a worker process."""
        model, n = self.model, req.n
        outputs = model.transfer(norm * n, to=to, plan=self.plan(req), tokenized=True, normalized=True,
                                 max_words=req.max_words, ratio=req.ratio)
        after = model.domain_probs(outputs, normalized=True)[:, model.domains.index(to)].tolist()
        return [[(model.tok.detokenize(outputs[j * len(norm) + i]), round(after[j * len(norm) + i], 4))
                 for j in range(n)] for i in range(len(norm))]

    def detect(self, texts: list[str]) -> list[DetectResult]:
        probs = self.model.domain_probs(texts)
        return [DetectResult(text=t, domain=self.model.domains[int(p.argmax())],
                             probs={d: round(x, 4) for d, x in zip(self.model.domains, p.tolist())})
                for t, p in zip(texts, probs)]


# Decoding runs in worker processes, each with every served model loaded: the event loop keeps its own
# core (Python's lock is per process), and two workers decode different batches (e.g. the two directions
# of one batch) at the same time.
_WORKER_MODELS: dict[str, Served] = {}


def _worker_init(runs: dict[str, tuple[str, str, str, tuple]], device: str | None, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    for task, (run, engine, quantization, decode) in runs.items():
        served = _WORKER_MODELS[task] = Served(run, device, 0, engine, quantization, decode)
        served.model.transfer(["warm up ."], to=served.model.domains[-1])    # the first call's one-off costs


def _worker_ready() -> int:
    return len(_WORKER_MODELS)


def _worker_rewrite(task: str, norm: list[str], to: str, req: TransferRequest) -> list[list[tuple[str, float]]]:
    return _WORKER_MODELS[task].rewrite(norm, to, req)


def start_workers(models: dict[str, Served], workers: int, threads: int):
    """A pool of `workers` spawned processes, each loading the runs of `models`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    runs = {task: (str(m.model.run_dir), m.model.engine, m.quantization, m.decode) for task, m in models.items()}
    device = next(iter(models.values())).model.device if models else None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                               initargs=(runs, device, threads))


# ---------------------------------------------------------------- the app

class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before any parsing."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        chunks, size, more = [], int(declared) if declared.isdigit() else 0, True
        while more and size <= self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
            size = max(size, sum(map(len, chunks)))
        if size > self.max_bytes:
            from fastapi.responses import JSONResponse

            kb = self.max_bytes // 1024
            return await JSONResponse({"error": f"request body over {kb} KiB"}, status_code=413)(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class CatchAll:
    """ASGI middleware: an error no handler expected still answers JSON {"error": ...} with 500, and the
    connection stays usable (an exception left to the server would close a keep-alive connection)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watch(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as err:  # noqa: BLE001 - the point: no request may take the connection down
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise                                 # half a response is out: nothing better to send
            body = json.dumps({"error": f"internal error: {type(err).__name__}: {err}"}).encode()   # ASCII
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def _printable(text: str) -> str:
    """`text` safe to write as UTF-8: lone surrogates become \\udXXX escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


UNION_MEMBERS = {"float", "int", "str", "bool"}


def one_line(err) -> tuple[int, str]:
    """A FastAPI validation error -> (status, one-line message)."""
    first = err.errors()[0]
    if first.get("type") == "json_invalid":
        return 400, f"invalid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    # ("body", "temperature", "float"): the last part names the member of a union the value failed, not a field
    where = _printable(".".join(str(x) for x in first.get("loc", ()) if x != "body" and x not in UNION_MEMBERS))
    if first.get("type") == "missing":
        return 422, f"missing field: {where}"
    if first.get("type") == "extra_forbidden":
        return 422, f"unknown field: {where}"
    return 422, f"{where or 'body'}: {_printable(str(first.get('msg')))}"


def create_app(models: dict[str, Served], limits: Limits | None = None, workers: int = 1, threads: int = 1,
               seconds_per_unit: float | None = None):
    """The FastAPI app serving `models` ({task: Served}): `workers` model processes with `threads` torch
    threads each, started (and their models loaded) before the app answers its first request, and each
    run's pace (Pace) timed on its examples then; `seconds_per_unit` fixes the pace instead."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    limits = limits or Limits()
    executor = start_workers(models, workers, threads)
    batcher = MicroBatcher(limits, executor, workers, Pace(seconds_per_unit), rewrite=_worker_rewrite)
    judging = ThreadPoolExecutor(1, thread_name_prefix="textgan-judge")     # normalization and the n-gram judge
    started = time.time()

    async def time_decode(model: Served) -> None:
        """A first measure of the run's pace: its default decode of an example per source domain."""
        texts = [examples[0] for examples in model.examples.values() if examples] or ["the food was good ."]
        req = TransferRequest(task=model.task, texts=texts)
        prep = model.prepare(texts, None)
        await batcher.submit(req, prep, model.units(req, prep))
        log.info("%s: %.2g s of decoding per unit of work", model.task, batcher.pace.rate(model.task))

    @asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(executor, _worker_ready) for _ in range(workers)))
        gatherer = asyncio.create_task(batcher.run())
        if seconds_per_unit is None:
            for model in models.values():
                await time_decode(model)
        yield
        gatherer.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        judging.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="textgan", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Unsupervised text style transfer, translation and summarization. "
                              "The demo page is at /.")
    _add_pages(app, limits)

    def served(task: str) -> Served:
        if task not in models:
            raise RequestError(404, f"no model for task '{task}'; serving: {', '.join(models)}")
        return models[task]

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "tasks": list(models), "uptime_s": round(time.time() - started, 1),
                "workers": workers, "batches": batcher.batches, "texts": batcher.texts,
                "backlog_s": round(batcher.backlog, 1),
                "seconds_per_unit": {task: float(f"{batcher.pace.rate(task):.3g}") for task in models}}

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"models": [m.info() for m in models.values()], "limits": asdict(limits)}

    @app.post("/v1/transfer", response_model=TransferResponse)
    async def transfer(req: TransferRequest) -> TransferResponse:
        model = served(req.task)
        model.check(req, limits)
        prep = await asyncio.get_running_loop().run_in_executor(judging, model.prepare, req.texts, req.to)
        try:
            rows = await batcher.submit(req, prep, model.units(req, prep))
        except ValueError as err:         # the decode refused what check() let through: still the request's fault
            log.warning("a decode refused a checked request: %s", err)
            raise RequestError(422, str(err)) from None
        results = [TransferResult(text=text, source=source, to=to, outputs=[out for out, _ in row],
                                  style_before=before, style_after=[p for _, p in row])
                   for text, source, to, before, row in zip(req.texts, prep.source, prep.targets, prep.before, rows)]
        return TransferResponse(task=req.task, run=model.run, results=results)

    @app.post("/v1/detect", response_model=DetectResponse)
    async def detect(req: DetectRequest) -> DetectResponse:
        model = served(req.task)
        limits.check_texts(req.texts)
        results = await asyncio.get_running_loop().run_in_executor(judging, model.detect, req.texts)
        return DetectResponse(task=req.task, run=model.run, results=results)

    return app


def _add_pages(app, limits: Limits) -> None:
    """The demo page, the API docs, the request-size limit and the errors answered as {"error": message}."""
    import swagger_ui_bundle
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.mount("/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_kb * 1024)
    app.add_middleware(CatchAll)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError):
        return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        status, message = one_line(err)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="textgan API",
                                   swagger_js_url="/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/swagger/swagger-ui.css",
                                   swagger_favicon_url="/swagger/favicon-32x32.png")


def _version() -> str:
    from . import __version__

    return __version__


def load_models(model_dirs: list[str] | None = None, tasks: list[str] | None = None, runs_dir=None,
                device: str | None = None, engine: str = "torch", quantization: str = "int8",
                decode: tuple[str, ...] = ()) -> dict[str, Served]:
    """{task: Served}: the runs named, plus the newest run of each task named; with neither, the newest
    run of every task under the runs directory, each run's decode section changed by the `decode`
    overrides ("decode.key=value"). With engine ctranslate2, a run it cannot run exactly
    (fast.check_exportable) is served by torch, with a warning on stderr."""
    import sys

    from .fast import ExportError

    dirs = [Path(d) for d in model_dirs or []]
    if tasks:
        dirs += [latest_run(t, runs_dir) for t in tasks]
    if not dirs:
        root = runs_root(runs_dir)
        for task_dir in sorted(p for p in root.glob("*") if p.is_dir()):
            try:
                dirs.append(latest_run(task_dir.name, runs_dir))
            except CheckpointError:
                continue              # e.g. runs/eval, which holds evaluators
        if not dirs:
            raise CheckpointError(f"no trained runs under {root}; train one with `textgan train --task sentiment` "
                                  "or pass --model DIR")
    models: dict[str, Served] = {}
    for d in dirs:
        try:
            served = Served(d, device, engine=engine, quantization=quantization, decode=decode)
            # the run's default decoding (reranked or retrieved candidates, guidance) may need the torch engine
            served.model.plan()
        except (ExportError, ValueError) as err:
            if engine == "torch":
                raise
            print(f"warning: {d} is served with the torch engine: {err}", file=sys.stderr)
            served = Served(d, device, decode=decode)
        if served.task in models:
            raise ValueError(f"two runs of task '{served.task}' ({models[served.task].model.run_dir} and {d}); "
                             "serve one run per task")
        models[served.task] = served
    return models


def serve(models: dict[str, Served], host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          workers: int = 1, threads: int = 1) -> None:
    import uvicorn

    uvicorn.run(create_app(models, limits, workers, threads), host=host, port=port, log_level="info")
