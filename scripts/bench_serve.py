"""Load benchmark of `textgan serve`: throughput and latency under 1, 8 and 32 concurrent clients.

    python scripts/bench_serve.py --model runs/sentiment/filter-cpu          # writes results/serve/<name>/

Starts `textgan serve` as a subprocess on a loopback port (127.0.0.1 only), waits for /health, then for each
concurrency level c runs c clients (asyncio + httpx in this process) that each send one-text
POST /v1/transfer requests, the next text of the Yelp test set each time, until the level has sent
--requests requests or run --seconds seconds, whichever comes first. Concurrency 1 is the baseline: the
same texts sent one request at a time. Every level counts errors (a status other than 200, or no answer),
texts/s, and p50 / p99 latency, and reports its throughput as a ratio to concurrency 1 from the same run;
the server's /health counters give the mean micro-batch size. The server is stopped at the end, also on
errors or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import machine  # noqa: E402

from textgan.config import load_config  # noqa: E402
from textgan.evaluate import task_directions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, batch_ms: float, batch_texts: int, threads: int | None,
                 workers: int, extra: list[str] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "textgan", "serve", "--model", model, "--host", "127.0.0.1", "--port", str(port),
           "--batch-ms", str(batch_ms), "--batch-texts", str(batch_texts), "--device", "cpu"]
    cmd += ["--threads", str(threads)] if threads else []
    cmd += ["--workers", str(workers), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer /health within 120 s")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of process `pid` and its descendants alive, or of this process alone (None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    tree = {pid}
    for _ in range(4):                                   # children, grandchildren, ...
        tree |= {p for p, (parent, _) in stats.items() if parent in tree}
    return sum(stats[p][1] for p in tree if p in stats)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def load_level(url: str, task: str, texts: list[str], clients: int, requests: int, seconds: float) -> dict:
    """`clients` concurrent clients, one text per request, until `requests` are sent or `seconds` pass."""
    latencies, errors, refused, next_text = [], 0, 0, 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def client(http: httpx.AsyncClient):
        nonlocal errors, refused, next_text
        while next_text < requests and time.perf_counter() < stop_at:
            text = texts[next_text % len(texts)]
            next_text += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/transfer", json={"task": task, "texts": [text]})
                ok = r.status_code == 200 and len(r.json()["results"]) == 1
            except httpx.HTTPError:
                r, ok = None, False
            if ok:
                latencies.append(time.perf_counter() - t0)
            elif r is not None and r.status_code in (413, 503):     # admission control said no, at once
                refused += 1
                await asyncio.sleep(float(r.headers.get("retry-after", 1)))
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies) + errors + refused, "errors": errors, "refused": refused,
            "seconds": round(elapsed, 2), "texts_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(1000 * percentile(latencies, 50), 1), "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "max_ms": round(1000 * max(latencies, default=float("nan")), 1)}


def write_results(out: Path, info: dict) -> None:
    """results.json and README.md of one run."""
    (out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    m, levels = info["machine"], info["levels"]
    rows = "\n".join(f"| {x['clients']} | {x['requests']} | {x.get('refused', 0)} | {x['errors']} | {x['texts_per_s']} | {x['ratio_to_first']}x | "
                     f"{x['p50_ms']} | {x['p99_ms']} | {x.get('max_ms', '')} | {x['mean_batch']} | {x['server_cpu']} | {x['client_cpu']} |"
                     for x in levels)
    (out / "README.md").write_text(f"""# `textgan serve` under load: {Path(info['model']).name} on {m['cpu']}

Command: `{info['command']}` at commit {info['commit']}, {info['date']}.
Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}. The server (the HTTP process plus
{info.get('workers', 1)} model worker process(es), torch threads per worker: {info.get('threads', "serve's default")}) and the
clients (asyncio + httpx, one process) share the machine; "cores busy" is CPU seconds per second, the
server's counting its workers.
Engine: {info.get('engine', 'torch')}. Micro-batching: a worker takes at most {info['batch_texts']} texts, waiting at most {info['batch_ms']} ms for more.
Each request carries one {info['texts'].split()[0]} test input, decoded as the run's own decode config says, the
target domain auto-detected. "refused": answered 413 or 503 by the server's admission control (its
--max-wait), after which that client waits the Retry-After seconds; "errors": any other failure (a 5xx, no
answer); texts/s and the latencies count the answered (200) requests only.
"mean job": texts per decoding call (one target domain each).

| concurrent clients | requests | refused | errors | texts/s | vs 1 client | p50 ms | p99 ms | max ms | mean job | server cores busy | client cores busy |
|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}

The 1-client row is the baseline: the same texts sent one request at a time, through the same server.
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run directory to serve")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=1000, help="requests per level at most")
    parser.add_argument("--seconds", type=float, default=60, help="seconds per level at most")
    parser.add_argument("--batch-ms", type=float, default=10.0)
    parser.add_argument("--batch-texts", type=int, default=64)
    parser.add_argument("--threads", type=int, help="the server's torch threads per worker (default: serve's own)")
    parser.add_argument("--workers", type=int, default=2, help="the server's model processes")
    parser.add_argument("--max-wait", type=float, default=30.0, help="the server's admission limit (serve --max-wait)")
    parser.add_argument("--engine", default="torch", choices=["torch", "ctranslate2"], help="the server's engine "
                        "(serve --engine; ctranslate2: int8)")
    parser.add_argument("--name", help="results/serve/<name> (default: cpu-<cores>c)")
    args = parser.parse_args()

    import yaml

    cfg = load_config(yaml.safe_load((Path(args.model) / "config.yaml").read_text())["task"], "cpu", [])
    texts = [t for d in task_directions(cfg) for t in d.inputs if d.tgt != d.src]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args.model, port, args.batch_ms, args.batch_texts, args.threads, args.workers,
                          ["--max-wait", str(args.max_wait), "--engine", args.engine])
    try:
        asyncio.run(load_level(url, cfg.task, texts[::-1], 4, 40, 30))            # warm-up, other texts first
        levels = []
        for clients in args.concurrency:
            before, cpu = httpx.get(f"{url}/health").json(), (cpu_seconds(), cpu_seconds(server.pid))
            level = asyncio.run(load_level(url, cfg.task, texts, clients, args.requests, args.seconds))
            after = httpx.get(f"{url}/health").json()
            level["client_cpu"] = round((cpu_seconds() - cpu[0]) / level["seconds"], 2)      # cores busy
            level["server_cpu"] = round((cpu_seconds(server.pid) - cpu[1]) / level["seconds"], 2)
            batches = after["batches"] - before["batches"]
            level["mean_batch"] = round((after["texts"] - before["texts"]) / max(1, batches), 1)
            levels.append(level)
            print(json.dumps(level), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    base = levels[0]["texts_per_s"]
    for level in levels:
        level["ratio_to_first"] = round(level["texts_per_s"] / base, 2)

    name = args.name or f"cpu-{os.cpu_count()}c"
    out = ROOT / "results" / "serve" / name
    out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/bench_serve.py " + " ".join(sys.argv[1:])
    info = {"command": command, "commit": commit(short=True), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "model": args.model, "batch_ms": args.batch_ms, "batch_texts": args.batch_texts, "workers": args.workers,
            "max_wait": args.max_wait, "engine": args.engine,
            "threads": args.threads or "serve's default",
            "texts": f"{cfg.data.corpus} test inputs, one per request", "levels": levels}
    write_results(out, info)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
