"""A read-only LlamaIndex retriever over a persisted FAISS store: the CLI's and the evaluator's query path.

``VectorStoreIndex.from_vector_store(TempScaleFaissVectorStore...)`` is the general LlamaIndex path (insert,
delete, ingestion pipelines). This retriever stays for the read-only query path because it does two things that
path does not: it embeds queries on ONNX Runtime by default (1.7-2.7x faster forward passes, falling back to
PyTorch with a warning), and it reports the query τ it used (``last_query_tau``, printed by
``tempscale-index query``). Filters and the query itself go through the store's one query path
(``store/filters.py``, ``store/search.py``), shared with the vector store and the CLI."""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters, VectorStoreQuery, VectorStoreQueryMode

from tempscale_index.embedding import Backend, TempScaleEmbedding
from tempscale_index.engine import TempScaleNotAppliedError
from tempscale_index.engine.onnx_backend import OnnxBackendError
from tempscale_index.index_config import IndexConfig
from tempscale_index.store import FaissStore
from tempscale_index.store.filters import allowed_node_ids, compile_filters
from tempscale_index.store.search import query_nodes


def query_embedding_for(
    config: IndexConfig, backend: Backend | None, trust_callable_schedules: bool = False
) -> TempScaleEmbedding:
    """The index's own embedding for queries: on ``backend``, else ONNX Runtime when installed (faster for short
    queries), falling back to PyTorch with a warning when the model cannot be exported."""
    trust = {"trust_callable_schedules": trust_callable_schedules}
    if backend is not None:
        return TempScaleEmbedding.from_index_config(config, backend=backend, **trust)
    if importlib.util.find_spec("onnxruntime") is None:
        return TempScaleEmbedding.from_index_config(config, **trust)
    try:
        return TempScaleEmbedding.from_index_config(config, backend="onnx", **trust)
    except (OnnxBackendError, TempScaleNotAppliedError) as exc:
        warnings.warn(f"queries run on PyTorch: {exc}", RuntimeWarning, stacklevel=3)
        return TempScaleEmbedding.from_index_config(config, **trust)


class TempScaleRetriever(BaseRetriever):
    """Retrieve chunks from a :class:`FaissStore`, embedding the query with the index's query schedule.

    Without an ``embedding`` it builds the index's own, on ``backend``; None means ONNX Runtime when it is
    installed (a query's forward pass runs 1.7–2.7× faster there), falling back to PyTorch with a warning.
    Each ``NodeWithScore`` carries the chunk's document τ (``tempscale_tau``), token count and document id
    (``node.ref_doc_id``). With ``auto_refresh`` the retriever switches to a newer committed version of the
    index before each query (a reader never sees an uncommitted one). ``vector_store_query_mode`` is ``default``
    (dense) or ``mmr`` (with ``mmr_threshold``), as for ``VectorStoreIndex.as_retriever``. A callable schedule
    recorded in the index runs code: refused unless ``trust_callable_schedules``.
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
        trust_callable_schedules: bool = False,
        vector_store_query_mode: VectorStoreQueryMode | str = VectorStoreQueryMode.DEFAULT,
        mmr_threshold: float | None = None,
    ) -> None:
        if similarity_top_k <= 0:
            raise ValueError(f"similarity_top_k must be positive, got {similarity_top_k}")
        if embedding is None:
            embedding = query_embedding_for(store.config, backend, trust_callable_schedules)
        else:
            embedding.match_index(
                store.config,
                where=f"the index at {store.path}",
                trust_callable_schedules=trust_callable_schedules,
            )
        if filters is not None:
            compile_filters(filters)  # an unsupported filter fails here, not at the first query
        self.store = store
        self.embedding = embedding
        self.similarity_top_k = similarity_top_k
        self.filters = filters
        self.doc_ids = doc_ids
        self.mode = VectorStoreQueryMode(vector_store_query_mode)
        self.mmr_threshold = mmr_threshold
        self.auto_refresh = auto_refresh and not store.writable
        self.last_query_tau: float | None = None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_dir(
        cls,
        path: str | os.PathLike[str],
        embedding: TempScaleEmbedding | None = None,
        verify: bool = True,
        **kwargs: Any,
    ) -> TempScaleRetriever:
        """Open the index at ``path`` read-only (checked against ``embedding`` when given)."""
        if embedding is not None and FaissStore.exists(path):  # an 'auto' embedding adopts the index's schedule
            embedding.match_index(
                IndexConfig.from_manifest(FaissStore.read_manifest(path)),
                where=f"the index at {path}",
                trust_callable_schedules=kwargs.get("trust_callable_schedules", False),
            )
        config = embedding.index_config() if embedding is not None else None
        return cls(FaissStore.open(path, config, verify=verify), embedding, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.auto_refresh:
            self.store.refresh()
        encoded = self.embedding.encode([query_bundle.query_str], "query")
        self.last_query_tau = encoded.taus[0]
        query = VectorStoreQuery(
            query_embedding=encoded.embeddings[0].tolist(), similarity_top_k=self.similarity_top_k, mode=self.mode
        )
        allowed = allowed_node_ids(self.store, self.filters, self.doc_ids)
        result = query_nodes(self.store, query, allowed, mmr_threshold=self.mmr_threshold)
        return [NodeWithScore(node=node, score=score) for node, score in zip(result.nodes, result.similarities)]

    def as_query_engine(self, llm: Any = None, **kwargs: Any) -> Any:
        """A ``RetrieverQueryEngine`` answering with ``llm`` over this retriever's chunks."""
        from llama_index.core.query_engine import RetrieverQueryEngine

        return RetrieverQueryEngine.from_args(retriever=self, llm=llm, **kwargs)
