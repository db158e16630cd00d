"""Qdrant (local mode), Milvus Lite and LanceDB return what FAISS returns, carry τ, and keep the index config.

The same QMSum chunks, embedded once with a length-dependent document τ, go into the pipeline's FaissStore and
into each database through its LlamaIndex integration; every database must return FAISS's top-10 (up to ties)
for real QMSum questions, with τ in every hit's metadata, and must refuse a query embedding built differently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document
from llama_index.core.schema import TextNode

from tempscale_index.chunking import model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfigMismatchError
from tempscale_index.node_metadata import TAU_KEY, TOKENS_KEY
from tests.qmsum_small import SMALL_MEETINGS

TOP_K = 10
TIE = 1e-5
DOCUMENT_SCHEDULE = {"type": "loglinear", "short_tokens": 32, "short_tau": 1.0, "long_tokens": 256, "long_tau": 0.85}


def _meeting_documents(qmsum_dir: Path) -> tuple[list[Document], list[str]]:
    documents, questions = [], []
    for name in SMALL_MEETINGS:
        meeting = json.loads((qmsum_dir / f"{name}.json").read_text())
        text = "\n".join(f"{turn['speaker']}: {turn['content']}" for turn in meeting["meeting_transcripts"])
        documents.append(Document(text=text[:8000], id_=name, metadata={"file_name": f"{name}.json"}))
        questions += [query["query"] for query in meeting["specific_query_list"][:2]]
    return documents, questions


@pytest.fixture(scope="module")
def embedding() -> TempScaleEmbedding:
    return TempScaleEmbedding(document_temperature=DOCUMENT_SCHEDULE, query_temperature=0.9)


@pytest.fixture(scope="module")
def corpus(embedding, qmsum_dir):
    """Chunks with their vectors and τ, the questions, and the exact inner-product scores of every chunk."""
    documents, questions = _meeting_documents(qmsum_dir)
    nodes = embedding(model_token_splitter(embedding, chunk_size=128)(documents))
    vectors = np.array([node.embedding for node in nodes], dtype=np.float32)
    queries = embedding.encode(questions, "query").embeddings
    return nodes, vectors, questions, queries


def _copies(nodes: list[TextNode]) -> list[TextNode]:
    return [node.model_copy(deep=True) for node in nodes]


def _assert_same_top_k(got_ids: list[str], scores: dict[str, float]) -> None:
    """``got_ids`` is the exact top-k up to ties: every chunk clearly above the k-th score is in it, and
    nothing in it scores clearly below the k-th."""
    kth = sorted(scores.values(), reverse=True)[TOP_K - 1]
    assert len(got_ids) == TOP_K
    assert len(set(got_ids)) == TOP_K, "duplicate hits"
    assert all(scores[node_id] >= kth - TIE for node_id in got_ids)
    assert {node_id for node_id, score in scores.items() if score > kth + TIE} <= set(got_ids)


def _qdrant(path: Path, name: str = "meetings"):
    pytest.importorskip("qdrant_client")
    pytest.importorskip("llama_index.vector_stores.qdrant")
    from tempscale_index.connectors.qdrant import QdrantConnector

    return QdrantConnector(name, path=str(path / "qdrant"))


def _milvus(path: Path, name: str = "meetings"):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    pytest.importorskip("llama_index.vector_stores.milvus")
    from tempscale_index.connectors.milvus import MilvusConnector

    return MilvusConnector(name, uri=str(path / "milvus.db"))


def _lancedb(path: Path, name: str = "meetings"):
    pytest.importorskip("lancedb")
    pytest.importorskip("llama_index.vector_stores.lancedb")
    from tempscale_index.connectors.lancedb import LanceDBConnector

    return LanceDBConnector(name, uri=str(path / "lancedb"))


def _count(connector) -> int:
    """How many chunks the collection holds, asked of the database itself."""
    name = type(connector).__name__
    if name == "QdrantConnector":
        return connector.client.count(connector.collection_name, exact=True).count
    if name == "MilvusConnector":
        result = connector.client.query(connector.collection_name, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])
    return connector.vector_store.table.count_rows()


CONNECTORS: dict[str, Callable] = {"qdrant": _qdrant, "milvus": _milvus, "lancedb": _lancedb}


def test_faiss_store_reference_is_exact(corpus, embedding, tmp_path):
    """The pipeline's FaissStore (exact Flat) returns the true top-10: the reference the databases must match."""
    from tempscale_index.store import FaissStore

    nodes, vectors, _, queries = corpus
    store = FaissStore.create(tmp_path / "faiss", embedding.index_config())
    for doc_id in dict.fromkeys(node.ref_doc_id for node in nodes):
        rows = [i for i, node in enumerate(nodes) if node.ref_doc_id == doc_id]
        store.add(doc_id, doc_id, [nodes[i] for i in rows], vectors[rows])
    store.commit()
    _, ids = store.search(queries, TOP_K)
    for query, row in zip(queries, ids):
        hits = store.get_nodes(row.tolist())
        _assert_same_top_k([node.node_id for node in hits], dict(zip((n.node_id for n in nodes), vectors @ query)))
        assert all(TAU_KEY in node.metadata for node in hits)
    store.close()


@pytest.mark.parametrize("store", sorted(CONNECTORS))
def test_database_returns_faiss_top10_with_tau_and_config(store, corpus, embedding, tmp_path):
    nodes, vectors, questions, queries = corpus
    taus = {node.node_id: node.metadata[TAU_KEY] for node in nodes}
    assert len(set(taus.values())) > 1, "the corpus should exercise a length-dependent τ"

    connector = CONNECTORS[store](tmp_path)
    connector.attach(embedding)
    connector.add_nodes(_copies(nodes))
    assert _count(connector) == len(nodes)
    connector.close()

    # A later process: no embedding given, the collection's config rebuilds the one it was built with.
    reopened = CONNECTORS[store](tmp_path)
    rebuilt = reopened.attach()
    assert rebuilt.index_config() == embedding.index_config()
    assert rebuilt.query_temperature.tau(12) == pytest.approx(0.9)
    retriever = reopened.as_index().as_retriever(similarity_top_k=TOP_K)
    for question, query in zip(questions, queries):
        hits = retriever.retrieve(question)
        exact = dict(zip((node.node_id for node in nodes), vectors @ query))
        _assert_same_top_k([hit.node.node_id for hit in hits], exact)
        for hit in hits:
            assert hit.node.metadata[TAU_KEY] == pytest.approx(taus[hit.node.node_id])
            assert hit.node.metadata[TOKENS_KEY] > 0
            if store != "lancedb":  # LanceDB's integration reports exp(-L2²), not the inner product
                assert hit.score == pytest.approx(exact[hit.node.node_id], abs=1e-4)
    reopened.close()


@pytest.mark.parametrize("store", sorted(CONNECTORS))
def test_mismatched_embedding_is_refused(store, embedding, tmp_path):
    connector = CONNECTORS[store](tmp_path, "refuse")
    connector.attach(embedding)
    connector.close()
    other = TempScaleEmbedding(document_temperature=DOCUMENT_SCHEDULE, query_temperature=1.0)
    with pytest.raises(IndexConfigMismatchError, match="query_temperature"):
        CONNECTORS[store](tmp_path, "refuse").attach(other)


@pytest.mark.parametrize("store", sorted(CONNECTORS))
def test_unknown_collection_needs_an_embedding(store, tmp_path):
    from tempscale_index.connectors import MissingIndexConfigError

    with pytest.raises(MissingIndexConfigError, match="pass the TempScaleEmbedding"):
        CONNECTORS[store](tmp_path, "absent").attach()


@pytest.mark.parametrize("store", sorted(CONNECTORS))
def test_reingesting_replaces_instead_of_duplicating(store, embedding, tmp_path):
    documents = [
        Document(text="The remote control should be shaped like a banana. " * 15, id_="design"),
        Document(text="Marketing found that young people want fancy remotes. " * 15, id_="market"),
    ]
    connector = CONNECTORS[store](tmp_path)
    connector.attach(embedding)
    first = connector.add_documents(documents, chunk_size=64)
    assert _count(connector) == len(first) > 2
    connector.add_documents(documents, chunk_size=64)
    assert _count(connector) == len(first)
    changed = Document(text="The remote will be yellow.", id_="design")
    connector.add_documents([changed], chunk_size=64)
    market_chunks = len(connector.add_documents(documents[1:], chunk_size=64))
    assert _count(connector) == market_chunks + 1
    hits = connector.as_index().as_retriever(similarity_top_k=1).retrieve("what colour is the remote")
    assert hits[0].node.ref_doc_id == "design" and "yellow" in hits[0].node.get_content()
    connector.close()


def test_nodes_with_foreign_vectors_are_refused(embedding, tmp_path):
    connector = _lancedb(tmp_path)
    connector.attach(embedding)
    node = TextNode(text="embedded elsewhere", embedding=[0.0] * embedding.dimension)
    with pytest.raises(ValueError, match="tempscale_tau"):
        connector.add_nodes([node])
