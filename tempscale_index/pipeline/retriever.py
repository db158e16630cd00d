"""A LlamaIndex retriever over a persisted FAISS store: queries embedded at the query τ, nodes returned with
their document τ and document ids, filters on document-level metadata (doc id, file name…)."""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from tempscale_index.embedding import Backend, TempScaleEmbedding
from tempscale_index.engine import TempScaleNotAppliedError
from tempscale_index.engine.onnx_backend import OnnxBackendError
from tempscale_index.index_config import IndexConfig
from tempscale_index.store import DocumentRecord, FaissStore

DOC_ID_KEYS = {"doc_id", "ref_doc_id", "document_id"}
_OPERATORS = {
    FilterOperator.EQ: lambda value, target: value == target,
    FilterOperator.NE: lambda value, target: value != target,
    FilterOperator.IN: lambda value, target: value in target,
    FilterOperator.NIN: lambda value, target: value not in target,
}


def _document_value(record: DocumentRecord, key: str) -> Any:
    return record.doc_id if key in DOC_ID_KEYS else record.metadata.get(key)


def _matches(record: DocumentRecord, filters: MetadataFilters | MetadataFilter) -> bool:
    if isinstance(filters, MetadataFilter):
        operator = FilterOperator(filters.operator)
        if operator not in _OPERATORS:
            raise NotImplementedError(
                f"filter operator {operator.value!r} is not supported; use ==, !=, in or nin on doc_id, file_name "
                "or another document-level metadata key"
            )
        return _OPERATORS[operator](_document_value(record, filters.key), filters.value)
    results = [_matches(record, item) for item in filters.filters]
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.OR:
        return any(results)
    if condition == FilterCondition.NOT:
        return not any(results)
    return all(results)


def allowed_node_ids(store: FaissStore, filters: MetadataFilters | None = None,
                     doc_ids: list[str] | None = None) -> list[int] | None:
    """Node ids of the documents passing ``filters`` and in ``doc_ids`` (None when nothing restricts)."""
    if filters is None and doc_ids is None:
        return None
    wanted = set(doc_ids) if doc_ids is not None else None
    ids: list[int] = []
    for record in store.documents.values():
        if wanted is not None and record.doc_id not in wanted:
            continue
        if filters is not None and not _matches(record, filters):
            continue
        ids.extend(record.node_ids)
    return ids


def _query_embedding(config: IndexConfig, backend: Backend | None) -> TempScaleEmbedding:
    if backend is not None:
        return TempScaleEmbedding.from_index_config(config, backend=backend)
    if importlib.util.find_spec("onnxruntime") is None:
        return TempScaleEmbedding.from_index_config(config)
    try:
        return TempScaleEmbedding.from_index_config(config, backend="onnx")
    except (OnnxBackendError, TempScaleNotAppliedError) as exc:
        warnings.warn(f"queries run on PyTorch: {exc}", RuntimeWarning, stacklevel=3)
        return TempScaleEmbedding.from_index_config(config)


class TempScaleRetriever(BaseRetriever):
    """Retrieve chunks from a :class:`FaissStore`, embedding the query with the index's query schedule.

    Without an ``embedding`` it builds the index's own, on ``backend``; None means ONNX Runtime when it is
    installed (a query's forward pass runs 1.7–2.7× faster there), falling back to PyTorch with a warning.
    Each ``NodeWithScore`` carries the chunk's document τ (``tempscale_tau``), token count and document id
    (``node.ref_doc_id``). With ``auto_refresh`` the retriever switches to a newer committed version of the
    index before each query (a reader never sees an uncommitted one).
    """

    def __init__(
        self,
        store: FaissStore,
        embedding: TempScaleEmbedding | None = None,
        similarity_top_k: int = 5,
        filters: MetadataFilters | None = None,
        doc_ids: list[str] | None = None,
        auto_refresh: bool = True,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        backend: Backend | None = None,
    ) -> None:
        if similarity_top_k <= 0:
            raise ValueError(f"similarity_top_k must be positive, got {similarity_top_k}")
        if embedding is None:
            embedding = _query_embedding(store.config, backend)
        else:
            store.config.ensure_matches(IndexConfig.from_embedding(embedding), where=f"the index at {store.path}")
        self.store = store
        self.embedding = embedding
        self.similarity_top_k = similarity_top_k
        self.filters = filters
        self.doc_ids = doc_ids
        self.auto_refresh = auto_refresh and not store.writable
        self.last_query_tau: float | None = None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_dir(
        cls, path: str | os.PathLike[str], embedding: TempScaleEmbedding | None = None, verify: bool = True,
        **kwargs: Any,
    ) -> TempScaleRetriever:
        """Open the index at ``path`` read-only (checked against ``embedding`` when given)."""
        config = IndexConfig.from_embedding(embedding) if embedding is not None else None
        return cls(FaissStore.open(path, config, verify=verify), embedding, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.auto_refresh:
            self.store.refresh()
        encoded = self.embedding.encode([query_bundle.query_str], "query")
        self.last_query_tau = encoded.taus[0]
        allowed = allowed_node_ids(self.store, self.filters, self.doc_ids)
        scores, ids = self.store.search(encoded.embeddings, self.similarity_top_k, allowed)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        nodes = self.store.get_nodes([i for i, _ in hits])
        return [NodeWithScore(node=node, score=score) for node, (_, score) in zip(nodes, hits)]

    def as_query_engine(self, llm: Any = None, **kwargs: Any) -> Any:
        """A ``RetrieverQueryEngine`` answering with ``llm`` over this retriever's chunks."""
        from llama_index.core.query_engine import RetrieverQueryEngine

        return RetrieverQueryEngine.from_args(retriever=self, llm=llm, **kwargs)
