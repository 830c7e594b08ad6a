"""The server's micro-batcher and its admission control (textgan serve: serve.py).

Concurrent transfer requests are gathered into batches, split into jobs by options and target domain, and
each job is decoded by `rewrite` in a free worker; every caller gets its own rows back. Requests are
admitted only when they can expect an answer within `Limits.max_wait` (MicroBatcher.admit, with the
seconds per unit of work the server measures: Pace).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Limits:
    """What one request may ask, and how requests are gathered into batches."""

    max_texts: int = 64            # texts per request
    max_chars: int = 2000          # characters per text
    max_body_kb: int = 256         # request body
    max_n: int = 8                 # samples per text
    max_beam: int = 8
    batch_texts: int = 64          # a micro-batch closes at this many texts ...
    batch_ms: float = 10.0         # ... or this long after its first request arrived
    max_wait: float = 30.0         # seconds a request may expect to wait for its answer (MicroBatcher.admit)

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value <= 0 and name != "batch_ms" or value < 0:
                raise ValueError(f"serve limit {name} must be positive; got {value}")

    def check_texts(self, texts: list[str]) -> None:
        """RequestError (422) for no texts, too many, or one too long: what every endpoint refuses."""
        if not texts:
            raise RequestError(422, "texts is empty: give at least one text")
        if len(texts) > self.max_texts:
            raise RequestError(422, f"too many texts: {len(texts)} (the limit is {self.max_texts})")
        for i, text in enumerate(texts):
            if len(text) > self.max_chars:
                raise RequestError(422, f"texts[{i}] has {len(text)} characters (the limit is {self.max_chars})")


class RequestError(Exception):
    """A request the server refuses: `status`, a one-line message and response headers (Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


@dataclass
class Prepared:
    """Texts ready for batching (see Served.prepare); None for empty texts."""

    norm: list[str]
    source: list[str | None]
    targets: list[str]
    before: list[float | None]
    pieces: list[int]              # each text's length in pieces, cut to train.max_gen_len


def options_key(req: Any) -> tuple:
    """A TransferRequest's (serve.py) decoding options: texts whose requests have equal keys (and the same
    target domain) decode together."""
    return req.task, req.max_words, req.ratio, req.sample or req.n > 1, req.n, req.beam, req.temperature


class Pace:
    """Seconds of decoding per unit of work (Served.units), per task, as the server measures them: each
    finished job adds its wall time and units to decayed sums,

        rate = sum_k d^k seconds_k / sum_k d^k units_k        (job k = 0 the newest, d = `decay`)

    so a job weighs by its size, and the rate follows the machine's load within a few jobs; likewise the
    mean seconds of a job, sum_k d^k seconds_k / sum_k d^k (`job_seconds`). create_app starts it with a
    timed decode of each run's examples (a small batch: slower per unit than a full one, so the first
    estimates err on the side of refusing). `fixed` > 0: that rate for every task, never updated, and no
    job term (tests; a speed measured elsewhere)."""

    def __init__(self, fixed: float | None = None, decay: float = 0.8):
        if fixed is not None and fixed <= 0:
            raise ValueError(f"a fixed pace is seconds per unit of work, above 0; got {fixed}")
        self.fixed, self.decay = fixed, decay
        self.sums: dict[str, tuple[float, float, float]] = {}   # task -> decayed (seconds, units, jobs)

    def rate(self, task: str) -> float:
        if self.fixed is not None:
            return self.fixed
        seconds, units, _ = self.sums.get(task, (0.0, 0.0, 0.0))
        return seconds / units if units else 0.0

    def job_seconds(self, task: str) -> float:
        """The decayed mean wall time of a job (0 with a fixed pace or before the first job)."""
        if self.fixed is not None:
            return 0.0
        seconds, _, jobs = self.sums.get(task, (0.0, 0.0, 0.0))
        return seconds / jobs if jobs else 0.0

    def observe(self, task: str, units: float, seconds: float) -> None:
        old = self.sums.get(task, (0.0, 0.0, 0.0))
        self.sums[task] = (self.decay * old[0] + seconds, self.decay * old[1] + units, self.decay * old[2] + 1)


@dataclass
class Pending:
    """A transfer request waiting for its rows: rows[i] is filled by the job that decodes text i, whose
    work is units[i], estimated at units[i] x rate seconds when the request was admitted."""

    req: Any                       # the TransferRequest (serve.py)
    prep: Prepared
    units: list[int]
    future: asyncio.Future
    rows: list
    left: int
    rate: float = 0.0

    def fill(self, i: int, row) -> None:
        self.rows[i] = row
        self.left -= 1
        if self.left == 0 and not self.future.done():      # done: a caller that went away
            self.future.set_result(self.rows)


class MicroBatcher:
    """Gathers concurrent transfer requests into batches. When a worker is free, the batcher takes the
    requests waiting (up to `batch_texts` texts) and waits up to `batch_ms` for more. Their texts are
    split into jobs by options and target domain; each job is one `Served.rewrite` call in a free
    worker, and every caller gets its own rows back. A request that finds the queue empty after a batch
    of one request (a lone client) goes at once. Requests are admitted only when they can expect an
    answer within `max_wait` seconds (`admit`)."""

    def __init__(self, limits: Limits, executor, workers: int, pace: Pace | None = None, rewrite=None):
        self.limits, self.executor, self.workers, self.rewrite = limits, executor, workers, rewrite
        self.pace = pace or Pace()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.free = asyncio.Semaphore(workers)
        self.batches = self.texts = 0          # counters, for /health and the benchmark
        self.last_requests = 0                 # requests in the last batch: > 1 means concurrent clients
        self.backlog = 0.0                     # estimated seconds of decoding of the admitted, unanswered requests
        self.running: set[asyncio.Task] = set()

    def admit(self, seconds: float, texts: int, job: float = 0.0) -> None:
        """Admission control for a request of `texts` texts estimated at `seconds` of decoding (its units x
        Pace.rate). The backlog's decoding is shared by the workers, and the request's texts are decoded in
        a job with other requests' texts, which ends when the whole job does (a job takes `job` seconds,
        Pace.job_seconds), so the request can expect its answer in

            wait = backlog / workers + max(seconds, job)

        RequestError 413 when seconds > max_wait (even an idle server could not answer in time: it says how
        many such texts fit), 503 with Retry-After = ceil(wait - max_wait) when wait > max_wait (by then
        the backlog has shrunk enough), else the request is admitted and its seconds join the backlog.
        Synchronous, so no other request is admitted between the check and the reservation."""
        budget = self.limits.max_wait
        if seconds > budget:
            fit = int(texts * budget / seconds)
            advice = f"send at most {fit} texts like these" if fit else "send shorter texts"
            raise RequestError(413, f"this request needs about {seconds:.1f} s of decoding, over the server's "
                                    f"limit of {budget:g} s per request (max_wait): {advice}, or fewer samples (n)")
        wait = self.backlog / self.workers + max(seconds, job)
        if wait > budget:
            retry = max(1, math.ceil(wait - budget))
            raise RequestError(503, f"server busy: this request would be answered in about {wait:.1f} s, over the "
                                    f"limit of {budget:g} s (max_wait); retry in {retry} s",
                               {"Retry-After": str(retry)})
        self.backlog += seconds

    async def submit(self, req: Any, prep: Prepared,
                     units: list[int]) -> list[list[tuple[str, float | None]]]:
        """Per text, req.n (output, p(to | output)); empty texts give ("", None) without a batch.
        RequestError 413 or 503 when the request is not admitted (`admit`)."""
        item = Pending(req, prep, units, asyncio.get_running_loop().create_future(), [None] * len(prep.norm),
                       sum(map(bool, prep.norm)))
        for i, text in enumerate(prep.norm):
            if not text:
                item.rows[i] = [("", None)] * req.n
        if item.left == 0:
            return item.rows
        item.rate = self.pace.rate(req.task)
        self.admit(sum(units) * item.rate, item.left, self.pace.job_seconds(req.task))
        await self.queue.put(item)
        return await item.future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.free.acquire()          # gather only once a worker can take the batch: it grows meanwhile
            batch = [await self.queue.get()]
            size, deadline = batch[0].left, loop.time() + self.limits.batch_ms / 1000
            while size < self.limits.batch_texts:
                if self.queue.empty() and len(batch) == 1 and self.last_requests <= 1:
                    break        # a lone client: no reason to wait (this keeps its latency at the model's)
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                size += item.left
            self.last_requests = len(batch)
            jobs: dict[tuple, list[tuple[Pending, int]]] = {}
            for item in batch:
                for i, (text, to) in enumerate(zip(item.prep.norm, item.prep.targets)):
                    if text:
                        jobs.setdefault((*options_key(item.req), to), []).append((item, i))
            for k, job in enumerate(jobs.values()):
                if k:
                    await self.free.acquire()
                task = asyncio.create_task(self._decode(job))
                self.running.add(task)
                task.add_done_callback(self.running.discard)

    async def _decode(self, job: list[tuple[Pending, int]]) -> None:
        item, i = job[0]
        req, to = item.req, item.prep.targets[i]
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            rows = await loop.run_in_executor(
                self.executor, self.rewrite, req.task, [it.prep.norm[j] for it, j in job], to, req)
        except Exception as err:  # noqa: BLE001 - hand the failure to every waiting caller
            for it, _ in job:
                if not it.future.done():
                    it.future.set_exception(err)
            return
        finally:
            self.free.release()
            # The job's share of the backlog goes when its decoding ends, not when its callers stop waiting:
            # a caller that went away leaves work the workers still do.
            self.backlog = max(0.0, self.backlog - sum(it.units[j] * it.rate for it, j in job))
        self.pace.observe(req.task, sum(it.units[j] for it, j in job), loop.time() - started)
        self.batches += 1
        self.texts += len(job)
        for (it, j), row in zip(job, rows):
            it.fill(j, row)
