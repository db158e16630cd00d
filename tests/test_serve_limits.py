"""Issue 15, points 5–9: the server's limits and supervision, on a real uvicorn over a small random-vector index
(no model: a stub encoder), so every case runs in seconds. Hangs are caught by client timeouts, not timings."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from tempscale_index.serving import batcher as batcher_module  # noqa: E402
from tempscale_index.serving.query_encoder import QueryVectors  # noqa: E402
from tempscale_index.serving.requests import MAX_BODY_BYTES  # noqa: E402
from tempscale_index.serving.searcher import IndexSearcher  # noqa: E402
from tempscale_index.serving.server import create_app  # noqa: E402
from tempscale_index.store import CorruptIndexError, FaissStore  # noqa: E402
from tests.pipeline_helpers import fake_config  # noqa: E402
from tests.test_store import DIM, add_docs  # noqa: E402

JSON = {"content-type": "application/json"}


class StubEncoder:
    """Unit vectors from a seeded generator; records each batch's size and can hold batches at a gate."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def encode(self, texts):
        self.gate.wait(30)
        self.batch_sizes.append(len(texts))
        vectors = np.random.default_rng(len(texts)).standard_normal((len(texts), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return QueryVectors(vectors, [1.0] * len(texts), [3] * len(texts))


@pytest.fixture
def index_dir(tmp_path):
    with FaissStore.create(tmp_path / "index", fake_config(DIM)) as store:
        add_docs(store, {"a": 4, "b": 4})
        store.commit()
    return tmp_path / "index"


class Served:
    def __init__(self, index_dir, **options) -> None:
        self.encoder = StubEncoder()
        self.searcher = IndexSearcher(FaissStore.open(index_dir), self.encoder)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.searcher, **options), host="127.0.0.1", port=self.port, log_level="critical"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def post(self, body, headers=JSON, timeout: float = 20):
        if isinstance(body, dict):
            return httpx.post(f"{self.url}/query", json=body, timeout=timeout)
        return httpx.post(f"{self.url}/query", content=body, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.encoder.gate.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.searcher.close()


@pytest.fixture
def serve(index_dir):
    started = []

    def start(**options) -> Served:
        started.append(Served(index_dir, **options))
        return started[-1]

    yield start
    for served in started:
        served.close()


def nested_filters(depth: int) -> dict:
    filters: dict = {"filters": [{"key": "doc_id", "value": "a", "operator": "=="}]}
    for _ in range(depth):
        filters = {"filters": [filters], "condition": "and"}
    return filters


def test_deep_nesting_is_a_400_not_a_500(serve):
    served = serve()
    response = served.post("[" * 200_000)
    assert response.status_code == 400 and "nests deeper than" in response.json()["error"]
    response = served.post(json.dumps({"text": "a", "filters": nested_filters(40)}))
    assert response.status_code == 400 and "nests deeper than" in response.json()["error"]
    assert served.post({"text": "a", "filters": nested_filters(2)}).status_code == 200


def test_a_large_body_is_refused_before_it_is_read(serve):
    """An 80 MB Content-Length is answered 413 at once, although not one byte of the body was sent."""
    served = serve()
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as raw:
        raw.sendall(
            b"POST /query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 80000000\r\n\r\n"
        )
        head = raw.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head
    chunks = (b" " * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))  # chunked: no Content-Length at all
    response = served.post(chunks)
    assert response.status_code == 413 and "limit" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_only_json_is_accepted(serve, content_type):
    served = serve()
    headers = {} if content_type is None else {"content-type": content_type}
    response = served.post('{"text": "a"}', headers=headers)
    assert response.status_code == 415 and "application/json" in response.json()["error"]
    ok = served.post('{"text": "a"}', headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_a_full_queue_answers_503_with_retry_after(serve):
    served = serve(max_batch=1, max_wait_ms=0, max_queue=2)
    served.encoder.gate.clear()  # the worker holds its first batch: the queue fills up behind it
    with ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(served.post, {"text": f"q{i}", "k": 2}) for i in range(8)]
        time.sleep(0.5)  # not a timed assertion: only gives the requests time to arrive
        served.encoder.gate.set()
        responses = [future.result() for future in pending]
    codes = sorted(response.status_code for response in responses)
    assert 503 in codes and 200 in codes, codes
    refused = next(response for response in responses if response.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "retry" in refused.json()["error"]


def test_a_worker_crash_fails_only_its_batch_and_the_worker_restarts(serve, monkeypatch):
    """``_answer`` raising outside its own try used to kill the worker: every later request hung and /health
    said ok. Now that batch gets a 500, the next requests are answered, and /health counts the restart."""
    original = batcher_module.MicroBatcher._answer
    calls = {"n": 0}

    def crash_once(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom outside the try")
        return original(self, batch)

    monkeypatch.setattr(batcher_module.MicroBatcher, "_answer", crash_once)
    served = serve(max_batch=1)
    codes = [served.post({"text": f"q{i}", "k": 2}).status_code for i in range(4)]
    assert codes == [200, 500, 200, 200]
    health = httpx.get(f"{served.url}/health", timeout=20).json()
    assert health["status"] == "ok" and health["worker"]["state"] == "running"
    assert health["worker"]["restarts"] == 1 and "boom" in health["worker"]["last_error"]


def test_injected_faults_never_hang_good_requests(serve, monkeypatch):
    monkeypatch.setenv(batcher_module.FAULT_ENV, "3")
    served = serve(max_batch=4, max_wait_ms=1)
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda i: served.post({"text": f"q{i}", "k": 2}).status_code, range(24)))
    assert set(codes) <= {200, 500} and codes.count(200) >= 12
    assert httpx.get(f"{served.url}/health", timeout=20).json()["worker"]["restarts"] >= 1


def test_max_wait_zero_still_batches_what_is_queued(serve):
    """``wait_for(get(), 0)`` always timed out, so ``--max-wait-ms 0`` never batched; ``get_nowait`` takes every
    query already waiting."""
    served = serve(max_batch=16, max_wait_ms=0)
    served.encoder.gate.clear()
    with ThreadPoolExecutor(6) as pool:
        pending = [pool.submit(served.post, {"text": f"q{i}", "k": 2}) for i in range(6)]
        time.sleep(0.5)  # not a timed assertion: lets the queries queue behind the held first batch
        served.encoder.gate.set()
        assert all(future.result().status_code == 200 for future in pending)
    assert max(served.encoder.batch_sizes) > 1, served.encoder.batch_sizes


def test_a_damaged_new_version_is_verified_once_until_current_changes(index_dir, monkeypatch):
    """A damaged newer version used to be re-verified before every batch (197 warnings in 800 requests)."""
    from tempscale_index.store import version_loading

    reader = FaissStore.open(index_dir)
    with FaissStore.open(index_dir, writable=True) as writer:
        add_docs(writer, {"c": 2}, seed=4)
        writer.commit()
        damaged = index_dir / "versions" / "v-000002" / "index.faiss"
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0x01
        damaged.write_bytes(bytes(data))
        loads = {"n": 0}
        real = version_loading.read_version

        def counting(*args, **kwargs):
            loads["n"] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(version_loading, "read_version", counting)
        with pytest.raises(CorruptIndexError):
            reader.refresh()
        assert [reader.refresh() for _ in range(50)] == [False] * 50
        assert loads["n"] == 1 and reader.version == 1  # still serving version 1
        add_docs(writer, {"d": 1}, seed=6)
        writer.commit()  # CURRENT changes: the reader tries again and moves on
    assert reader.refresh() and reader.version == 3 and loads["n"] == 2
    reader.close()
