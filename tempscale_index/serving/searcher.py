"""Search a persisted index with queries embedded at its query τ, answering in the JSON of ``query --json``.

Shared by ``tempscale-index query`` and ``tempscale-index serve`` so both answer alike. Queries are embedded by the
torch-free ``OnnxQueryEncoder`` when the model has a recorded query path; otherwise by the index's own
``TempScaleEmbedding`` (PyTorch loaded), which records the query path for the next process when it runs on ONNX.
Nothing here imports torch or LlamaIndex until that fallback (or a metadata filter) needs them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from tempscale_index.node_metadata import TAU_KEY, TOKENS_KEY
from tempscale_index.serving.query_encoder import (
    OnnxQueryEncoder,
    QueryPathUnavailable,
    QueryVectors,
    record_query_path,
)
from tempscale_index.store import FaissStore
from tempscale_index.store.search import search_node_dicts

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx"]
SOURCE_RELATION = "1"  # NodeRelationship.SOURCE in a serialised LlamaIndex node: the node's document


class QueryEncoder(Protocol):
    def encode(self, texts: Sequence[str]) -> QueryVectors: ...


class EmbeddingQueryEncoder:
    """A ``TempScaleEmbedding`` (PyTorch loaded) behind the ``QueryEncoder`` interface."""

    def __init__(self, embedding: Any) -> None:
        self.embedding = embedding

    def encode(self, texts: Sequence[str]) -> QueryVectors:
        encoded = self.embedding.encode(list(texts), "query")
        return QueryVectors(encoded.embeddings, encoded.taus, encoded.token_counts)


def query_encoder_for(
    config: Any, backend: Backend | None = None, trust_callable_schedules: bool = False
) -> QueryEncoder:
    """The lightest encoder that embeds queries exactly as the index's embedding does.

    ``backend='torch'`` forces PyTorch; otherwise a recorded ONNX query path is used when there is one, and the
    first PyTorch-loaded fallback on ONNX records it. A callable schedule in ``config`` runs code: refused unless
    ``trust_callable_schedules``.
    """
    if backend != "torch":
        try:
            return OnnxQueryEncoder(config, trust_callable_schedules=trust_callable_schedules)
        except QueryPathUnavailable as exc:
            logger.info("queries load PyTorch: %s", exc)
    from tempscale_index.pipeline.retriever import query_embedding_for

    embedding = query_embedding_for(config, backend, trust_callable_schedules)
    if embedding.onnx_graph is not None:
        try:
            record_query_path(embedding)
        except OSError as exc:  # a read-only cache costs later processes speed, not this answer
            logger.info("could not record the query path: %s", exc)
    return EmbeddingQueryEncoder(embedding)


def allowed_node_ids(store: FaissStore, filters: Any = None, doc_ids: Sequence[str] | None = None) -> list[int] | None:
    """Node ids the filters allow (None: no restriction); imports LlamaIndex's filter helpers only when filtering."""
    if filters is None and not doc_ids:
        return None
    from tempscale_index.store.filters import allowed_node_ids as allowed

    return allowed(store, filters, list(doc_ids) if doc_ids else None)


def hit_row(rank: int, score: float, node: dict[str, Any]) -> dict[str, Any]:
    """One result of ``query --json`` from a stored node dict (what ``NodeWithScore`` would have shown)."""
    metadata = node.get("metadata") or {}
    source = (node.get("relationships") or {}).get(SOURCE_RELATION) or {}
    doc_id = source.get("node_id")
    text = node.get("text")
    if text is None:
        text = (node.get("text_resource") or {}).get("text", "")
    return {
        "rank": rank,
        "score": round(float(score), 6),
        "tau": metadata.get(TAU_KEY),
        "tokens": metadata.get(TOKENS_KEY),
        "doc_id": doc_id,
        "source": metadata.get("file_name") or doc_id,
        "node_id": node.get("id_"),
        "text": text,
    }


class IndexSearcher:
    """An open index and its query encoder: ``query`` for one text, ``query_many`` for a batch (one forward pass)."""

    def __init__(self, store: FaissStore, encoder: QueryEncoder) -> None:
        self.store = store
        self.encoder = encoder

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        backend: Backend | None = None,
        verify: bool = True,
        trust_callable_schedules: bool = False,
    ) -> IndexSearcher:
        if backend == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            raise ValueError("--backend onnx needs onnxruntime: pip install 'tempscale-index[onnx]'")
        store = FaissStore.open(path, verify=verify)
        try:
            return cls(store, query_encoder_for(store.config, backend, trust_callable_schedules))
        except BaseException:
            store.close()
            raise

    def refresh(self) -> bool:
        """Switch to a newer committed version of the index (same model: the encoder stays valid); one that
        failed to load is tried again only once ``CURRENT`` changes (``FaissStore.refresh``)."""
        return self.store.refresh()

    def query(self, text: str, k: int, allowed: list[int] | None = None) -> dict[str, Any]:
        return self.query_many([text], [k], [allowed])[0]

    def query_many(
        self, texts: Sequence[str], ks: Sequence[int], allowed: Sequence[list[int] | None]
    ) -> list[dict[str, Any]]:
        """One document per query: ``{"query", "query_tau", "results": [...]}``, as ``query --json`` prints it."""
        vectors = self.encoder.encode(texts)
        answers = []
        for row, (text, k, ids_allowed) in enumerate(zip(texts, ks, allowed)):
            hits = search_node_dicts(self.store, vectors.embeddings[row : row + 1], k, ids_allowed)[0]
            rows = [hit_row(rank, score, node) for rank, (score, node) in enumerate(hits, 1)]
            answers.append({"query": text, "query_tau": vectors.taus[row], "results": rows})
        return answers

    def close(self) -> None:
        self.store.close()
