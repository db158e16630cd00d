"""The torch-free query path: same vectors as TempScaleEmbedding, hash-checked files, and a quiet, light CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.schema import TextNode

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.pipeline import ingest
from tempscale_index.serving.query_encoder import OnnxQueryEncoder, QueryPathUnavailable, record_query_path
from tempscale_index.serving.searcher import EmbeddingQueryEncoder, query_encoder_for
from tests.pipeline_helpers import package_docs

QUERIES = ["what is faiss", "How do I persist an index and reload it later with the same settings?", "word " * 400]
HEAVY = ("torch", "transformers", "sentence_transformers", "llama_index")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A graph cache of this module's own, so that records and graphs of other tests do not leak in."""
    folder = tmp_path_factory.mktemp("query-cache")
    previous = os.environ.get("TEMPSCALE_INDEX_CACHE")
    os.environ["TEMPSCALE_INDEX_CACHE"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["TEMPSCALE_INDEX_CACHE"]
    else:
        os.environ["TEMPSCALE_INDEX_CACHE"] = previous


@pytest.mark.parametrize("tau", [1.0, 0.8])
def test_light_vectors_equal_the_embedding_on_onnx_and_torch(tau, cache) -> None:
    on_onnx = TempScaleEmbedding(backend="onnx", document_temperature=1.0, query_temperature=tau, max_length=128)
    assert record_query_path(on_onnx) is not None
    light = OnnxQueryEncoder(on_onnx.index_config()).encode(QUERIES)
    assert light.token_counts[-1] == 128  # truncated like the embedding
    for backend in ("onnx", "torch"):
        embedding = (
            on_onnx
            if backend == "onnx"
            else TempScaleEmbedding(document_temperature=1.0, query_temperature=tau, max_length=128)
        )
        expected = embedding.encode(QUERIES, "query")
        assert light.taus == expected.taus and light.token_counts == expected.token_counts
        assert np.abs(light.embeddings - expected.embeddings).max() <= 1e-4
        assert (light.embeddings * expected.embeddings).sum(axis=1).min() >= 0.9999


def test_a_changed_graph_or_missing_record_is_refused(cache) -> None:
    embedding = TempScaleEmbedding(backend="onnx", document_temperature=1.0, query_temperature=0.8, max_length=128)
    record = json.loads(record_query_path(embedding).read_text())
    config = embedding.index_config()
    graph = Path(record["graph"])
    original = graph.read_bytes()
    try:
        graph.write_bytes(original + b"\0")
        with pytest.raises(QueryPathUnavailable, match="changed since it was verified"):
            OnnxQueryEncoder(config)
    finally:
        graph.write_bytes(original)
    OnnxQueryEncoder(config)
    other = config.model_copy(update={"weights_sha256": "f" * 64})
    with pytest.raises(QueryPathUnavailable, match="no query path recorded"):
        OnnxQueryEncoder(other)


def test_torch_backend_is_forced_and_the_fallback_records_the_path(cache, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEMPSCALE_INDEX_CACHE", str(tmp_path / "fresh-cache"))
    config = TempScaleEmbedding(document_temperature=1.0, query_temperature=0.9, max_length=64).index_config()
    assert isinstance(query_encoder_for(config, "torch"), EmbeddingQueryEncoder)
    fallback = query_encoder_for(config)  # nothing recorded in this cache yet: PyTorch on ONNX, which records
    assert isinstance(fallback, EmbeddingQueryEncoder) and fallback.embedding.onnx_graph is not None
    light = query_encoder_for(config)
    assert isinstance(light, OnnxQueryEncoder)
    assert np.abs(light.encode(QUERIES).embeddings - fallback.encode(QUERIES).embeddings).max() <= 1e-4


def test_int8_index_queries_on_its_int8_graph(cache) -> None:
    embedding = TempScaleEmbedding(precision="int8", document_temperature=1.0, query_temperature=0.8, max_length=128)
    record = json.loads(record_query_path(embedding).read_text())
    assert record["graph"].endswith("-int8.onnx") and record["precision"] == "int8"
    light = OnnxQueryEncoder(embedding.index_config()).encode(QUERIES)
    assert np.abs(light.embeddings - embedding.encode(QUERIES, "query").embeddings).max() <= 1e-4


@pytest.fixture(scope="module")
def index_dir(cache, tmp_path_factory):
    embedding = TempScaleEmbedding(backend="onnx", document_temperature=1.0, query_temperature=0.9)
    record_query_path(embedding)
    index = tmp_path_factory.mktemp("fast-query") / "index"
    ingest(package_docs(count=4, max_chars=800), index, embedding, chunk_size=128)
    return index


def run_query(index: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The CLI in a fresh process; also returns which heavy libraries that process imported."""
    script = (
        "import json, os, sys\n"
        "from tempscale_index.cli import main\n"
        "try:\n    main()\nfinally:\n"
        f"    loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        "    open(os.environ['MODULES_OUT'], 'w').write(json.dumps(loaded))\n"
    )
    modules = index.parent / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", script, "query", str(index), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MODULES_OUT": str(modules)},
        timeout=300,
    )
    return done, json.loads(modules.read_text())


def test_cli_query_json_is_one_document_on_stdout_and_loads_no_torch(index_dir) -> None:
    done, loaded = run_query(index_dir, "Jinja templates", "-k", "2", "--json")
    assert done.returncode == 0 and done.stderr == ""
    answer = json.loads(done.stdout)
    assert answer["query_tau"] == 0.9 and answer["results"][0]["doc_id"].lower() == "dist:jinja2"
    assert loaded == []
    forced, loaded = run_query(index_dir, "Jinja templates", "-k", "2", "--json", "--backend", "torch")
    assert forced.returncode == 0 and "torch" in loaded
    on_torch = json.loads(forced.stdout)
    assert [row["node_id"] for row in on_torch["results"]] == [row["node_id"] for row in answer["results"]]
    assert all(abs(a["score"] - b["score"]) <= 1e-4 for a, b in zip(on_torch["results"], answer["results"]))


@pytest.mark.slow
def test_ingest_and_persist_prepare_the_torch_free_query_path(tmp_path, monkeypatch) -> None:
    """The first query after an ingest (or a store's persist) finds a verified query path: no export, no torch."""
    from tempscale_index.serving.query_encoder import QUERY_PATH_ENV
    from tempscale_index.store.vector_store import TempScaleFaissVectorStore

    monkeypatch.delenv(QUERY_PATH_ENV)
    for name in ("ingest", "persist"):
        monkeypatch.setenv("TEMPSCALE_INDEX_CACHE", str(tmp_path / f"cache-{name}"))  # nothing recorded yet
        embedding = TempScaleEmbedding(document_temperature=1.0, query_temperature=0.8, max_length=128)
        with pytest.raises(QueryPathUnavailable):
            OnnxQueryEncoder(embedding.index_config())
        if name == "ingest":
            ingest([Document(id_="a", text="The committee approved the budget.")], tmp_path / name, embedding)
        else:
            store = TempScaleFaissVectorStore.create(tmp_path / name, embed_model=embedding)
            store.add(
                [
                    TextNode(
                        text="The committee approved the budget.",
                        embedding=embedding.get_text_embedding("The committee approved the budget."),
                    )
                ]
            )
            store.persist()
            store.close()
        assert isinstance(query_encoder_for(embedding.index_config()), OnnxQueryEncoder), name
