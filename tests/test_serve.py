"""`textgan serve`: the API on tiny models trained here, micro-batching, every bad input, the demo page in a
real headless Chromium."""

import json
import math
import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

SUM_TINY = ["tokenizer.vocab_size=100", "generator.d_model=32", "generator.ffn_dim=64", "discriminator.d_model=32",
            "discriminator.ffn_dim=64", "train.ae_steps=4", "train.d_steps=2", "train.adv_steps=2",
            "data.max_train_lines=300"]


@pytest.fixture(scope="module")
def sum_run(tmp_path_factory):
    """A toy summarization run: length control and a words_left decoder (no beam search)."""
    from textgan.config import load_config
    from textgan.runner import train

    cfg = load_config("toy_summarization", "cpu", SUM_TINY)
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), name="sum", command=["pytest"])


@pytest.fixture(scope="module")
def models(trained_run, sum_run):
    from textgan.serve import Served

    return {"toy": Served(trained_run, "cpu"), "toy_summarization": Served(sum_run, "cpu")}


@pytest.fixture(scope="module")
def client(models):
    from textgan.serve import Limits, create_app

    limits = Limits(max_texts=8, max_chars=200, max_body_kb=4, max_n=4)
    with TestClient(create_app(models, limits)) as c:
        yield c


def post(client, path, body):
    return client.post(path, json=body)


def test_health_and_models(client):
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert set(health.json()["tasks"]) == {"toy", "toy_summarization"}
    assert all(rate > 0 for rate in health.json()["seconds_per_unit"].values())     # timed at start-up
    info = {m["task"]: m for m in client.get("/v1/models").json()["models"]}
    assert info["toy"]["domains"] == ["neg", "pos"] and info["toy"]["auto_detect"]
    assert not info["toy"]["length_control"] and info["toy_summarization"]["length_control"]
    assert info["toy_summarization"]["default_words"]["title"] > 0
    assert len(info["toy"]["examples"]["neg"]) == 3 and len(info["toy"]["examples"]["pos"]) == 3
    assert info["toy_summarization"]["examples"]["article"]        # articles only: headlines are not inputs


def test_transfer_matches_the_library_and_reports_styles(client, models):
    texts = ["the food was terrible and the staff was rude .", "the pasta was great !"]
    r = post(client, "/v1/transfer", {"task": "toy", "texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "toy" and body["run"] == "tiny"
    model = models["toy"].model
    detected = model.detect(texts)
    expected = model.transfer(texts, to=[model.other_domain(d) for d in detected])     # `textgan transfer`'s path
    for res, text, src, out in zip(body["results"], texts, detected, expected):
        assert res["text"] == text and res["source"] == src and res["to"] == model.other_domain(src)
        assert res["outputs"] == [out]
        assert 0 <= res["style_before"] <= 1 and 0 <= res["style_after"][0] <= 1
        probs = model.domain_probs([text])[0]
        assert res["style_before"] == pytest.approx(probs[model.domains.index(res["to"])].item(), abs=1e-4)


def test_transfer_to_a_domain_n_samples_and_length(client):
    r = post(client, "/v1/transfer", {"task": "toy", "texts": ["the soup was cold ."], "to": "pos", "n": 3})
    res = r.json()["results"][0]
    assert r.status_code == 200 and res["to"] == "pos" and len(res["outputs"]) == 3 and len(res["style_after"]) == 3
    r = post(client, "/v1/transfer", {"task": "toy_summarization", "texts": ["france 's president said on monday "
                                      "that schools will close next week ."], "to": "title", "max_words": 3})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"][0]["outputs"][0].split()) <= 3


def test_detect(client, models):
    r = post(client, "/v1/detect", {"task": "toy", "texts": ["the pasta was great !"]})
    assert r.status_code == 200
    res = r.json()["results"][0]
    assert res["domain"] == models["toy"].model.detect(["the pasta was great !"])[0]
    assert set(res["probs"]) == {"neg", "pos"} and sum(res["probs"].values()) == pytest.approx(1, abs=1e-3)


def test_empty_string_gives_empty_output(client):
    r = post(client, "/v1/transfer", {"task": "toy", "texts": ["", "the soup was cold ."]})
    assert r.status_code == 200
    empty, full = r.json()["results"]
    assert empty["outputs"] == [""] and empty["source"] is None and full["outputs"][0]


BAD = [  # (what, request body or raw bytes, status, words of the message)
    ("empty list", {"task": "toy", "texts": []}, 422, "texts is empty"),
    ("text over the limit", {"task": "toy", "texts": ["word " * 50]}, 422, "characters (the limit is 200)"),
    ("too many texts", {"task": "toy", "texts": ["a ."] * 9}, 422, "too many texts: 9 (the limit is 8)"),
    ("body over the limit", {"task": "toy", "texts": ["x" * 5000]}, 413, "request body over 4 KiB"),
    ("invalid JSON", b'{"task": "toy", "texts": [', 400, "invalid JSON"),
    ("invalid UTF-8", b'{"task": "toy", "texts": ["\xff"]}', 400, "There was an error parsing the body"),
    ("texts not a list", {"task": "toy", "texts": "the soup ."}, 422, "texts: Input should be a valid list"),
    ("a text not a string", {"task": "toy", "texts": [3]}, 422, "texts.0: Input should be a valid string"),
    ("n as a string", {"task": "toy", "texts": ["a ."], "n": "2"}, 422, "n: Input should be a valid integer"),
    ("n too large", {"task": "toy", "texts": ["a ."], "n": 5}, 422, "n must be between 1 and 4"),
    ("missing task", {"texts": ["a ."]}, 422, "missing field: task"),
    ("unknown field", {"task": "toy", "texts": ["a ."], "tex": 1}, 422, "unknown field: tex"),
    ("unknown task", {"task": "nope", "texts": ["a ."]}, 404, "no model for task 'nope'; serving: toy"),
    ("unknown domain", {"task": "toy", "texts": ["a ."], "to": "happy"}, 422, "unknown domain 'happy'"),
    ("length on a model without", {"task": "toy", "texts": ["a ."], "max_words": 3}, 422, "has no length control"),
    ("beam and sampling", {"task": "toy", "texts": ["a ."], "beam": 2, "sample": True}, 422, "exclude each other"),
    # temperatures: the range is [0.01, 10]; below it the logits overflow to inf
    ("tiny temperature", {"task": "toy", "texts": ["a ."], "sample": True, "temperature": 1e-38}, 422,
     "temperature must be a number in [0.01, 10]; got 1e-38"),
    ("zero temperature", {"task": "toy", "texts": ["a ."], "sample": True, "temperature": 0}, 422, "got 0"),
    ("negative temperature", {"task": "toy", "texts": ["a ."], "n": 2, "temperature": -1.5}, 422, "got -1.5"),
    ("temperature over 10", {"task": "toy", "texts": ["a ."], "n": 2, "temperature": 11}, 422, "got 11"),
    ("temperature as a bool", {"task": "toy", "texts": ["a ."], "temperature": True}, 422,
     "temperature: Input should be a valid number"),
    ("temperature as a string", {"task": "toy", "texts": ["a ."], "temperature": "2"}, 422, "temperature:"),
    # lone surrogates: valid JSON escapes, not Unicode text (the response could not be written as UTF-8)
    ("lone surrogate in a text", b'{"task": "toy", "texts": ["the soup \\ud800 ."]}', 422,
     "texts.0: Value error, not valid Unicode: a lone surrogate U+D800 at character 9"),
    ("low surrogate alone", b'{"task": "toy", "texts": ["a .", "\\udfff"]}', 422, "texts.1: Value error, not valid"),
    ("lone surrogate in task", b'{"task": "toy\\ud800", "texts": ["a ."]}', 422, "task: Value error, not valid"),
    ("lone surrogate in to", b'{"task": "toy", "texts": ["a ."], "to": "\\udbff"}', 422, "to: Value error, not valid"),
    ("lone surrogate in a key", b'{"task": "toy", "texts": ["a ."], "\\ud800": 1}', 422,
     "unable to parse raw data as a unicode string"),                  # pydantic refuses the body as a whole
]


@pytest.mark.parametrize("what,body,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_json_error_and_the_server_goes_on(client, what, body, status, message):
    """Each bad request: its status and a one-line JSON error holding the message's words (invalid UTF-8:
    FastAPI's own). Fails if the HTTP error handler answers with the status phrase instead of the detail."""
    if isinstance(body, bytes):
        r = client.post("/v1/transfer", content=body, headers={"content-type": "application/json"})
    else:
        r = post(client, "/v1/transfer", body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error and "\n" not in error and error
    good = post(client, "/v1/transfer", {"task": "toy", "texts": ["the soup was cold ."]})
    assert good.status_code == 200 and good.json()["results"][0]["outputs"][0]


def test_a_surrogate_pair_is_text_and_detect_refuses_a_lone_one(client):
    """An escaped pair (\\ud83d\\ude00, one emoji) is fine; /v1/detect validates its texts as /v1/transfer does."""
    body = b'{"task": "toy", "texts": ["the soup was great \\ud83d\\ude00"]}'
    r = client.post("/v1/transfer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["results"][0]["text"].endswith("\U0001F600")
    r = client.post("/v1/detect", content=b'{"task": "toy", "texts": ["\\ud800"]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "texts.0: Value error, not valid Unicode" in r.json()["error"]
    assert post(client, "/v1/detect", {"task": "toy", "texts": ["a ."]}).status_code == 200


def test_an_integer_temperature_samples_like_its_float(client, models):
    """A person types 2, not 2.0: transformers refuses an int temperature, so the server passes a float."""
    for temperature in (2, 2.0, 10, 0.01):
        r = post(client, "/v1/transfer", {"task": "toy", "texts": ["the food was cold ."], "sample": True, "n": 2,
                                          "temperature": temperature})
        assert r.status_code == 200, (temperature, r.text)
        assert len(r.json()["results"][0]["outputs"]) == 2
    model = models["toy"].model
    assert len(model.transfer(["the food was cold ."], to="pos", sample=True, temperature=3)) == 1
    with pytest.raises(ValueError, match=r"temperature must be a number in \[0.01, 10\]"):
        model.transfer(["the food was cold ."], to="pos", sample=True, temperature=0.001)


def test_no_request_names_a_file_and_unknown_paths_are_json_404(client):
    assert "model" not in client.get("/openapi.json").json()["components"]["schemas"]["TransferRequest"]["properties"]
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def test_docs_and_page_are_served_from_the_package(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/swagger/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="go"' in page.text and "http" not in page.text.split("<body>")[0]
    assert client.get("/static/app.js").status_code == 200


def test_load_models_finds_the_newest_run_of_each_task(runs_of_three_ages, trained_run, sum_run, tmp_path):
    """With neither runs nor tasks named: per task the most recently modified run with a generator (toy
    holds an older run whose name sorts last and a newer unfinished one), every task once, and a directory
    without runs (runs/eval) skipped. Fails if latest_run picks by name instead of mtime."""
    from textgan.checkpoint import CheckpointError
    from textgan.serve import load_models

    runs = runs_of_three_ages
    shutil.copytree(sum_run, runs.runs_dir / "toy_summarization" / "sum", ignore=shutil.ignore_patterns("state"))
    (runs.runs_dir / "eval" / "toy").mkdir(parents=True)             # evaluators, not runs
    models = load_models(runs_dir=runs.runs_dir)
    assert sorted(models) == ["toy", "toy_summarization"]
    assert models["toy"].model.run_dir == runs.newer and models["toy"].run == "aa-newer"
    assert models["toy_summarization"].model.run_dir == runs.runs_dir / "toy_summarization" / "sum"
    assert load_models(tasks=["toy"], runs_dir=runs.runs_dir)["toy"].model.run_dir == runs.newer
    with pytest.raises(CheckpointError, match="no trained runs under"):
        load_models(runs_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="serve one run per task"):
        load_models([str(trained_run), str(trained_run)])
    changed = load_models([str(trained_run)], decode=("decode.candidates=3",))["toy"]   # textgan serve decode.K=V
    assert changed.model.plan().candidates == 3 and changed.decode == ("decode.candidates=3",)


def test_serve_with_the_ctranslate2_engine_falls_back_for_runs_it_cannot_run(trained_run, sum_run, capsys):
    """--engine ctranslate2: toy decodes on CTranslate2 (in the worker processes too, outputs equal to the
    library's); the summarization run (words_left) is served by torch, with a warning."""
    import textgan
    from textgan.serve import Limits, create_app, load_models

    models = load_models([str(trained_run), str(sum_run)], engine="ctranslate2")
    assert models["toy"].model.engine == "ctranslate2" and models["toy_summarization"].model.engine == "torch"
    assert "is served with the torch engine" in capsys.readouterr().err
    expected = textgan.load(trained_run, device="cpu", engine="ctranslate2").transfer(["the food was bad ."], to="pos")
    with TestClient(create_app(models, Limits())) as c:
        r = post(c, "/v1/transfer", {"task": "toy", "texts": ["the food was bad ."], "to": "pos"})
        assert r.status_code == 200 and r.json()["results"][0]["outputs"] == expected


def test_serve_with_the_ctranslate2_engine_falls_back_for_runs_that_rerank_by_default(trained_run, tmp_path, capsys):
    """A run whose decode.candidates needs the torch engine is served by torch, with a warning, and its
    default (reranked) outputs are those `textgan transfer` writes."""
    import shutil

    import yaml

    import textgan
    from textgan.serve import Limits, create_app, load_models

    run = tmp_path / "toy"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("state", "tensorboard", "ct2-*"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["decode"] = {**cfg.get("decode", {}), "candidates": 3}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    models = load_models([str(run)], engine="ctranslate2")
    assert models["toy"].model.engine == "torch"
    err = capsys.readouterr().err
    assert "is served with the torch engine" in err and "needs the torch engine" in err
    expected = textgan.load(run, device="cpu").transfer(["the food was bad ."], to="pos")
    with TestClient(create_app(models, Limits())) as c:
        r = post(c, "/v1/transfer", {"task": "toy", "texts": ["the food was bad ."], "to": "pos"})
        assert r.status_code == 200 and r.json()["results"][0]["outputs"] == expected


# ---------------------------------------------------------------- decode limits and admission

@pytest.fixture
def in_process(monkeypatch):
    """create_app with its workers as threads of this process (nothing spawned, nothing to load): the
    served models decode here, or whatever a test puts in place of _worker_rewrite."""
    import textgan.serve as serve

    def make(models, limits, **options):
        monkeypatch.setattr(serve, "start_workers", lambda models, workers, threads: ThreadPoolExecutor(workers))
        monkeypatch.setattr(serve, "_WORKER_MODELS", models)
        return serve.create_app(models, limits, **options)

    return make


@pytest.fixture(scope="module")
def causal_run(tmp_path_factory, tiny_llama):
    """An untrained causal run (the tiny Llama as it starts) decoding by a guidance ladder: greedy rewrites
    at guidance 0.5 and 2.0 compete, as the sentiment cpu preset's five do."""
    from textgan.config import load_config
    from textgan.runner import train

    from conftest import TINY

    cfg = load_config("toy", "cpu", [*TINY, "generator.arch=causal", f"generator.init={tiny_llama}", "train.ae_steps=0",
                                     "train.d_steps=0", "train.adv_steps=0", "decode.guidance=0.5",
                                     "decode.guidance_candidates=[2.0]"])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), name="causal", command=["pytest"])


def test_a_causal_run_refuses_beam_search_with_422_naming_the_limit(causal_run, in_process, models, monkeypatch):
    """beam > 1 on a causal generator: 422 naming the limit, before any decoding (it was a 500 from inside
    the decode); the default (ladder) and sampled decodes answer; a ValueError the decode raises anyway
    is the request's 422, not a 500."""
    from textgan.serve import Limits, Served

    causal = Served(causal_run, "cpu")
    assert causal.model.plan().decodes == 2 * 2                         # two guided rungs
    assert causal.model.plan(sample=True).decodes == 2                  # sampling: guided, no ladder
    served = {"toy": models["toy"], "causal": causal}
    with TestClient(in_process(served, Limits(), seconds_per_unit=1e-6)) as c:
        for beam in (2, 8):
            r = post(c, "/v1/transfer", {"task": "causal", "texts": ["the soup was cold ."], "beam": beam})
            assert r.status_code == 422, r.text
            assert f"beam {beam}: beam search is not implemented for a causal generator" in r.json()["error"]
            assert "the largest beam is 1" in r.json()["error"]
        for options in ({}, {"n": 2}):
            r = post(c, "/v1/transfer", {"task": "causal", "texts": ["the soup was cold ."], **options})
            assert r.status_code == 200 and len(r.json()["results"][0]["outputs"]) == options.get("n", 1), r.text
        assert post(c, "/v1/transfer", {"task": "toy", "texts": ["the soup was cold ."], "beam": 2}).status_code == 200

        def refuses(*args, **kwargs):
            raise ValueError("nbest=3 keeps hypotheses of beam search")

        monkeypatch.setattr(models["toy"], "rewrite", refuses)
        r = post(c, "/v1/transfer", {"task": "toy", "texts": ["the soup was cold ."]})
        assert r.status_code == 422 and r.json()["error"] == "nbest=3 keeps hypotheses of beam search"


def test_admission_by_cost_503_with_retry_after_413_alone_and_health_stays_fast(in_process, models, monkeypatch):
    """The cost model at a fixed pace of 1 s per unit, max_wait 1.5 texts' worth: one text is admitted (and
    held in its worker); a second would wait for the first, 2 texts' worth: 503 with Retry-After, the
    excess; two texts in one request could never fit: 413 saying how many do. /health answers at once
    meanwhile and shows the backlog; once the first is answered, the second is admitted."""
    import threading

    from textgan.serve import Limits, TransferRequest

    text = "the soup was cold ."
    toy = models["toy"]
    unit = sum(toy.units(TransferRequest(task="toy", texts=[text]), toy.prepare([text], "pos")))
    release = threading.Event()

    def held(task, norm, to, req):
        release.wait(30)
        return [[("a rewrite .", 0.5)] * req.n for _ in norm]

    monkeypatch.setattr("textgan.serve._worker_rewrite", held)
    body = {"task": "toy", "texts": [text], "to": "pos"}
    with TestClient(in_process(models, Limits(max_wait=1.5 * unit), seconds_per_unit=1.0)) as c:
        with ThreadPoolExecutor(1) as pool:
            try:
                first = pool.submit(post, c, "/v1/transfer", body)
                deadline = time.time() + 30
                while c.get("/health").json()["backlog_s"] == 0 and time.time() < deadline:
                    time.sleep(0.01)
                start = time.perf_counter()
                health = c.get("/health")
                assert health.status_code == 200 and time.perf_counter() - start < 1
                assert health.json()["backlog_s"] == pytest.approx(unit, abs=0.1)
                busy = post(c, "/v1/transfer", body)
                assert busy.status_code == 503, busy.text
                assert busy.headers["retry-after"] == str(math.ceil(0.5 * unit))
                assert "server busy" in busy.json()["error"] and f"limit of {1.5 * unit:g} s" in busy.json()["error"]
                alone = post(c, "/v1/transfer", {**body, "texts": [text, text]})
                assert alone.status_code == 413 and "send at most 1 texts like these" in alone.json()["error"]
            finally:
                release.set()
            assert first.result().status_code == 200
        assert c.get("/health").json()["backlog_s"] == 0
        assert post(c, "/v1/transfer", body).status_code == 200


def test_a_caller_that_goes_away_leaves_its_work_in_the_backlog_until_it_is_decoded():
    """The backlog counts what the workers still have to do: a request whose caller is cancelled mid-decode
    keeps its seconds there until its job ends, then gives them back (never below 0)."""
    import asyncio
    import threading

    from textgan.serve import Limits, MicroBatcher, Pace, Prepared, TransferRequest

    started, release = threading.Event(), threading.Event()

    def held(task, norm, to, req):
        started.set()
        release.wait(30)
        return [[("a rewrite .", 0.5)] * req.n for _ in norm]

    async def scenario():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(Limits(max_wait=100), pool, workers=1, pace=Pace(fixed=2.0), rewrite=held)
            runner = asyncio.create_task(batcher.run())
            prep = Prepared(["the soup was cold ."], ["neg"], ["pos"], [0.1], [5])
            caller = asyncio.create_task(batcher.submit(TransferRequest(task="toy", texts=["x"]), prep, [5]))
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
            assert batcher.backlog == 10.0                   # 5 units at 2 s each
            caller.cancel()
            await asyncio.sleep(0.05)
            assert batcher.backlog == 10.0                   # the worker is still decoding it
            release.set()
            for _ in range(200):
                if batcher.backlog == 0:
                    break
                await asyncio.sleep(0.01)
            runner.cancel()
            return batcher.backlog

    assert asyncio.run(scenario()) == 0.0
    with pytest.raises(ValueError, match="above 0"):
        Pace(fixed=0)


def test_pace_is_a_decayed_ratio_of_seconds_to_units():
    from textgan.serve import Pace

    pace = Pace(decay=0.5)
    assert pace.rate("toy") == 0
    pace.observe("toy", 100, 2.0)
    pace.observe("toy", 10, 1.0)
    assert pace.rate("toy") == pytest.approx((0.5 * 2 + 1) / (0.5 * 100 + 10))
    assert pace.job_seconds("toy") == pytest.approx((0.5 * 2 + 1) / (0.5 + 1))
    assert Pace(fixed=0.25).rate("toy") == 0.25 and Pace(fixed=0.25).job_seconds("toy") == 0


def test_a_request_waits_for_the_whole_job_it_joins():
    """A one-text request of 2 s joins jobs that take 10 s: admitted only while the backlog's share plus a
    job's 10 s fits in max_wait, not its own 2 s."""
    from textgan.serve import Limits, MicroBatcher, RequestError

    batcher = MicroBatcher(Limits(max_wait=30), executor=None, workers=2)
    batcher.backlog = 36.0
    for _ in range(3):                                     # 18, 19, 20 s a worker + a 10 s job: 28, 29, 30 s
        batcher.admit(2.0, 1, job=10.0)
    with pytest.raises(RequestError) as busy:              # 21 + 10 = 31 s: over (by its own 2 s it would fit)
        batcher.admit(2.0, 1, job=10.0)
    assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "1"} and batcher.backlog == 42.0


# ---------------------------------------------------------------- a real server: batching, the browser

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(models):
    """uvicorn serving the tiny models on a loopback port, in a thread; batches wait 200 ms."""
    import uvicorn

    from textgan.serve import Limits, create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(models, Limits(batch_ms=200)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_concurrent_requests_share_batches_and_get_their_own_rows(live, models):
    texts = [f"the {food} was {adj} ." for food in ("soup", "pasta", "pizza", "salad") for adj in ("cold", "great")]
    before = httpx.get(f"{live}/health").json()

    def one(text):
        r = httpx.post(f"{live}/v1/transfer", json={"task": "toy", "texts": [text], "to": "pos"}, timeout=60)
        return r.status_code, r.json()["results"][0]

    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(one, texts))
    after = httpx.get(f"{live}/health").json()
    assert all(status == 200 for status, _ in answers)
    assert [res["text"] for _, res in answers] == texts
    expected = models["toy"].model.transfer(texts, to="pos")
    assert [res["outputs"][0] for _, res in answers] == expected
    assert after["texts"] - before["texts"] == len(texts)
    assert after["batches"] - before["batches"] < len(texts)       # gathered, not one batch per request


def test_an_unexpected_error_answers_json_500_and_keeps_the_connection(live, models, monkeypatch):
    """Whatever no handler expected: JSON {"error": ...} with 500, no `connection: close`, and the same
    keep-alive connection answers the next request."""
    import http.client

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(models["toy"], "prepare", boom)
    host, port = live.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"task": "toy", "texts": ["the soup was cold ."]})
    conn.request("POST", "/v1/transfer", body, {"content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 500 and json.loads(r.read()) == {"error": "internal error: RuntimeError: boom"}
    assert (r.getheader("connection") or "").lower() != "close"
    sock = conn.sock
    monkeypatch.undo()
    conn.request("POST", "/v1/transfer", body, {"content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["results"][0]["outputs"][0]
    assert conn.sock is sock                                       # the same connection, not a new one
    conn.close()


def find_chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture
def browser(tmp_path):
    found = find_chromium()
    if found is None:
        if os.environ.get("TEXTGAN_REQUIRE_BROWSER"):
            pytest.fail("the browser test needs Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("no chromium + chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=900,900", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    yield driver
    driver.quit()


def test_demo_page_in_headless_chromium(live, browser, models, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(live + "/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "ready"))
    assert Select(browser.find_element(By.ID, "task")).first_selected_option.text == "toy"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#examples button.example")) == 6

    text = "the soup was cold ."
    browser.find_element(By.ID, "text").send_keys(text)
    browser.find_element(By.ID, "go").click()
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#outputs .output .text")))
    shown = browser.find_element(By.CSS_SELECTOR, "#outputs .output .text").text
    model = models["toy"].model
    assert shown == model.transfer([text], to=model.other_domain(model.detect([text])[0]))[0]
    assert "written as" in browser.find_element(By.ID, "detected").text
    assert "style after" in browser.find_element(By.ID, "outputs").text

    Select(browser.find_element(By.ID, "direction")).select_by_value("neg")      # n = 2 samples side by side
    n = browser.find_element(By.ID, "n")
    n.clear()
    n.send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#examples button.example").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#outputs .output")) == 2)
    assert browser.find_element(By.ID, "temperature-box").is_displayed()       # sampling offers a temperature
    temperature = browser.find_element(By.ID, "temperature")
    temperature.clear()
    temperature.send_keys("20")                                    # out of range: the server says so ...
    browser.find_element(By.ID, "go").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "temperature must be"))
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    assert not browser.find_element(By.ID, "result").is_displayed()            # ... and no stale result stays
    assert not browser.find_elements(By.CSS_SELECTOR, "#outputs .output")
    n.clear()
    n.send_keys("1")

    Select(browser.find_element(By.ID, "task")).select_by_value("toy_summarization")   # length slider
    assert browser.find_element(By.ID, "length-box").is_displayed()
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 1000
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if not (e["source"] == "network" and "status of 422" in e["message"])]  # ours


def test_textgan_serve_command_starts_with_the_newest_runs_and_stops(trained_run, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "textgan", "serve", "--runs-dir", str(Path(trained_run).parent.parent),
                             "--port", str(port), "--workers", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health and health["tasks"] == ["toy"] and health["workers"] == 1
        r = httpx.post(f"http://127.0.0.1:{port}/v1/transfer", json={"task": "toy", "texts": ["the soup was cold ."]},
                       timeout=60)
        assert r.status_code == 200 and r.json()["run"] == "tiny"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"serving toy: {trained_run}" in err and "demo page: http://127.0.0.1:" in err
    bad = subprocess.run([sys.executable, "-m", "textgan", "serve", "--runs-dir", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no trained runs under" in bad.stderr
