"""`tempscale-index serve`: a real server on 127.0.0.1, a real HTTP client, concurrent load, a new commit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from tempscale_index.embedding import TempScaleEmbedding  # noqa: E402
from tempscale_index.pipeline import ingest  # noqa: E402
from tempscale_index.serving.query_encoder import OnnxQueryEncoder, record_query_path  # noqa: E402
from tempscale_index.serving.searcher import IndexSearcher  # noqa: E402
from tempscale_index.serving.server import create_app  # noqa: E402
from tests.pipeline_helpers import package_docs  # noqa: E402

QUERIES = [
    "Jinja templates",
    "numerical arrays",
    "HTTP requests",
    "progress bars in the terminal",
    "file locking between processes",
    "YAML parser",
    "tokenizer",
    "data validation with type hints",
]


@pytest.fixture(scope="module")
def embedding():
    return TempScaleEmbedding(backend="onnx", document_temperature=1.0, query_temperature=0.9)


@pytest.fixture(scope="module")
def index_dir(embedding, tmp_path_factory):
    record_query_path(embedding)
    index = tmp_path_factory.mktemp("serve") / "index"
    ingest(package_docs(count=6, max_chars=800), index, embedding, chunk_size=128)
    return index


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(index_dir):
    """The app under uvicorn in a thread of this process, on a free port."""
    searcher = IndexSearcher.open(index_dir)
    assert isinstance(searcher.encoder, OnnxQueryEncoder)
    config = uvicorn.Config(
        create_app(searcher, max_batch=8, max_wait_ms=5), host="127.0.0.1", port=free_port(), log_level="warning"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}"
    instance.should_exit = True
    thread.join(10)
    searcher.close()


def cli_answer(index_dir, text: str, k: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tempscale_index.cli import main; main()",
            "query",
            str(index_dir),
            text,
            "-k",
            str(k),
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same_hits(got: dict, expected: dict, tolerance: float = 1e-5) -> bool:
    """Same chunks in the same order; scores equal up to the padding of a batched forward pass."""
    pairs = list(zip(got["results"], expected["results"]))
    return (
        got["query"] == expected["query"]
        and got["query_tau"] == expected["query_tau"]
        and len(got["results"]) == len(expected["results"])
        and all(a["node_id"] == b["node_id"] and abs(a["score"] - b["score"]) <= tolerance for a, b in pairs)
    )


def test_answers_equal_query_json(server, index_dir) -> None:
    with httpx.Client(base_url=server) as client:
        for text, k in (("Jinja templates", 3), ("numerical arrays", 1)):
            response = client.post("/query", json={"text": text, "k": k})
            assert response.status_code == 200
            assert response.json() == cli_answer(index_dir, text, k)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"text": "", "k": 3}', "'text' must be a non-empty string"),
        ('{"text": "a", "k": 0}', "'k' must be an integer"),
        ('{"text": "a", "k": true}', "'k' must be an integer"),
        ('{"text": "a", "top": 3}', "unknown keys ['top']"),
        ("[1, 2]", "the body must be a JSON object"),
        ('{"text": ', "the body is not valid JSON"),
        ('{"text": "a", "filters": [1]}', "'filters' must be an object"),
        ('{"text": "a", "filters": {"filters": [{"key": "doc_id", "value": "x", "operator": "~"}]}}', "bad filters"),
    ],
)
def test_bad_input_is_a_400_with_a_message(server, body: str, message: str) -> None:
    response = httpx.post(f"{server}/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(message) or message in response.json()["error"]


def test_filters_restrict_to_one_document(server) -> None:
    filters = {"filters": [{"key": "doc_id", "value": "dist:jinja2", "operator": "=="}], "condition": "and"}
    answer = httpx.post(f"{server}/query", json={"text": "numerical arrays", "k": 3, "filters": filters}).json()
    assert answer["results"] and {row["doc_id"] for row in answer["results"]} == {"dist:jinja2"}


def test_concurrent_clients_all_get_their_own_answers(server) -> None:
    with httpx.Client(base_url=server) as client:
        expected = {text: client.post("/query", json={"text": text, "k": 4}).json() for text in QUERIES}

    def client_run(offset: int) -> list[bool]:
        with httpx.Client(base_url=server, timeout=60) as client:
            texts = [QUERIES[(offset + i) % len(QUERIES)] for i in range(10)]
            return [
                same_hits(client.post("/query", json={"text": text, "k": 4}).json(), expected[text]) for text in texts
            ]

    with ThreadPoolExecutor(8) as pool:
        results = [ok for batch in pool.map(client_run, range(8)) for ok in batch]
    assert len(results) == 80 and all(results)


def test_a_new_commit_is_served_without_restart(server, index_dir, embedding) -> None:
    before = httpx.get(f"{server}/health").json()
    filters = {"filters": [{"key": "doc_id", "value": "new-doc", "operator": "=="}]}
    assert httpx.post(f"{server}/query", json={"text": "otters", "filters": filters}).json()["results"] == []
    from llama_index.core import Document

    ingest([Document(text="Sea otters hold hands while they sleep.", id_="new-doc")], index_dir, embedding)
    answer = httpx.post(f"{server}/query", json={"text": "otters", "k": 1, "filters": filters}).json()
    assert [row["doc_id"] for row in answer["results"]] == ["new-doc"]
    assert httpx.get(f"{server}/health").json()["version"] == before["version"] + 1
