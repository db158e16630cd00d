"""``TempScaleFaissVectorStore``: the crash-safe FAISS index directory as a LlamaIndex vector store.

One format: a directory written by ``tempscale-index ingest`` opens here, and one written here opens in the CLI.
It replaces LlamaIndex's ``FaissVectorStore`` in existing code (``StorageContext.from_defaults(vector_store=…)``,
``VectorStoreIndex.from_vector_store``, ``IngestionPipeline(vector_store=…)``), and adds what that store lacks:
text stored with the vectors (no docstore needed), deletion, metadata filters, atomic persistence, and the
embedding the index was built with (``store.embed_model``), so queries run at the index's query τ.

Changes are staged until :meth:`TempScaleFaissVectorStore.persist`; the writer lock is taken at the first change
and held until :meth:`close`, so another process (an ``ingest``) cannot write meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_DIR,
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from tempscale_index.index_config import PENDING_AUTO, IndexConfig
from tempscale_index.schedules import ConstantSchedule
from tempscale_index.store.faiss_store import FaissStore
from tempscale_index.store.filters import allowed_node_ids, matching_documents
from tempscale_index.store.node_documents import add_to_document, checked_vectors, remove_from_document

if TYPE_CHECKING:
    import fsspec

    from tempscale_index.embedding import TempScaleEmbedding

logger = logging.getLogger(__name__)


class TempScaleFaissVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over a tempscale-index FAISS directory (see the module docstring).

    ``TempScaleFaissVectorStore(path, embed_model=…, index_type=…)`` opens the index at ``path`` or makes a new
    one; :meth:`from_persist_dir` only opens, :meth:`create` only makes. ``index_type`` is a FAISS index_factory
    string (``Flat``, ``HNSW32``, ``IVF256,Flat``…). Metadata filters see document-level metadata (what all of a
    document's chunks share, and its id as ``doc_id``/``ref_doc_id``); see ``store/filters.py``.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    persist_dir: str = Field(description="The index directory (the format `tempscale-index ingest` writes).")
    auto_refresh: bool = Field(
        default=True,
        description="Before each query of a store this process has not changed, switch to a newer version "
        "committed by another process (a reader never sees an uncommitted one).",
    )
    lock_timeout: float = Field(default=10.0, ge=0, description="Seconds to wait for the writer lock.")

    _store: FaissStore = PrivateAttr()
    _embed_model: Any = PrivateAttr(default=None)
    _node_index: dict[str, tuple[int, str]] | None = PrivateAttr(default=None)
    _mutex: Any = PrivateAttr(default_factory=threading.RLock)

    def __init__(
        self,
        persist_dir: str | os.PathLike[str] | FaissStore,
        embed_model: TempScaleEmbedding | None = None,
        index_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(persist_dir, FaissStore):
            store = persist_dir
        elif FaissStore.exists(persist_dir):
            _adopt_recorded(embed_model, IndexConfig.from_manifest(FaissStore.read_manifest(persist_dir)))
            store = FaissStore.open(persist_dir, _config_of(embed_model), index_factory=index_type)
        else:
            store, embed_model = _new_store(persist_dir, embed_model, index_type, kwargs.get("lock_timeout", 10.0))
        super().__init__(persist_dir=str(store.path), **kwargs)
        if embed_model is not None:
            _adopt_recorded(embed_model, store.config)
            store.config.ensure_matches(_config_of(embed_model), where=f"the index at {store.path}")
        self._store = store
        self._embed_model = embed_model

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | os.PathLike[str] = DEFAULT_PERSIST_DIR,
        fs: fsspec.AbstractFileSystem | None = None,
        embed_model: TempScaleEmbedding | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        **kwargs: Any,
    ) -> TempScaleFaissVectorStore:
        """Open the committed index at ``persist_dir`` (``IndexNotFoundError`` when there is none), read-only
        until the first change; ``embed_model``, when given, must be the one the index was built with.
        ``nprobe`` (IVF) and ``ef_search`` (HNSW) trade speed for recall as in ``tempscale-index query``."""
        _local_only(fs)
        if FaissStore.exists(persist_dir):
            _adopt_recorded(embed_model, IndexConfig.from_manifest(FaissStore.read_manifest(persist_dir)))
        store = FaissStore.open(persist_dir, _config_of(embed_model), nprobe=nprobe, ef_search=ef_search)
        return cls(store, embed_model, **kwargs)

    @classmethod
    def create(
        cls,
        persist_dir: str | os.PathLike[str],
        embed_model: TempScaleEmbedding | None = None,
        index_type: str = "Flat",
        **kwargs: Any,
    ) -> TempScaleFaissVectorStore:
        """A new, empty index at ``persist_dir`` for ``embed_model`` (default ``TempScaleEmbedding()``);
        ``IndexExistsError`` if one is there already."""
        store, embed_model = _new_store(persist_dir, embed_model, index_type, kwargs.get("lock_timeout", 10.0))
        return cls(store, embed_model, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "TempScaleFaissVectorStore"

    @property
    def client(self) -> FaissStore:
        """The underlying :class:`FaissStore`."""
        return self._store

    @property
    def config(self) -> IndexConfig:
        """The embedding configuration recorded in the index's manifest."""
        return self._store.config

    @property
    def embed_model(self) -> TempScaleEmbedding:
        """The ``TempScaleEmbedding`` the index was built with (model, schedules, precision from the manifest):
        pass it to ``VectorStoreIndex.from_vector_store(store, embed_model=store.embed_model)``."""
        with self._mutex:
            if self._embed_model is None:
                from tempscale_index.embedding import TempScaleEmbedding

                self._embed_model = TempScaleEmbedding.from_index_config(self._store.config)
            return self._embed_model

    # -- writing ---------------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Stage ``nodes`` (with their embeddings) under their ``ref_doc_id``; a node id already stored is
        replaced. Nodes without a ``tempscale_tau`` get the τ the document schedule gives their embedded text.
        Visible to this object's queries at once, to other processes after :meth:`persist`."""
        if not nodes:
            return []
        with self._mutex:
            self._decide_pending_auto(nodes)
            vectors = checked_vectors(self._store.config, nodes, where=f"the index at {self._store.path}")
            self._record_missing_taus(nodes)
            store = self._writer()
            by_document: dict[str, list[int]] = {}
            for position, node in enumerate(nodes):
                by_document.setdefault(node.ref_doc_id or node.node_id, []).append(position)
            for doc_id, positions in by_document.items():
                add_to_document(store, doc_id, [nodes[i] for i in positions], vectors[positions])
            self._node_index = None
        return [node.node_id for node in nodes]

    def _decide_pending_auto(self, nodes: Sequence[BaseNode]) -> None:
        """A new store made for an 'auto' embedding records the schedule its first nodes were embedded with:
        decided already while they were embedded as nodes, or decided now from them (``VectorStoreIndex`` embeds
        texts, which cannot decide: those came at τ = 1 provisionally and are embedded again if the choice
        differs), or, if they are too few to decide, τ = 1 settled for this store."""
        if self._store.config.document_temperature != PENDING_AUTO:
            return
        embed_model = self.embed_model
        if embed_model.auto_pending:
            embed_model.calibrate(nodes)
            if embed_model.auto_pending:
                embed_model.settle_pending()
            elif embed_model.document_temperature != ConstantSchedule(1.0):
                embed_model(list(nodes))  # all of them were embedded while pending, at τ = 1
        self._store.config = IndexConfig.from_embedding(embed_model)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the document ``ref_doc_id`` (nothing happens for an unknown id)."""
        with self._mutex:
            if ref_doc_id in self._store.documents:
                self._writer().delete(ref_doc_id)
                self._node_index = None

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Remove the nodes in ``node_ids`` (all when None) whose documents pass ``filters`` (all when None)."""
        with self._mutex:
            store = self._writer()
            for doc_id, removed in self._select(node_ids, filters).items():
                remove_from_document(store, doc_id, removed)
            self._node_index = None

    def clear(self) -> None:
        """Remove every document (committed by the next :meth:`persist`)."""
        with self._mutex:
            store = self._writer()
            for doc_id in list(store.documents):
                store.delete(doc_id)
            self._node_index = None

    def persist(self, persist_path: str | None = None, fs: fsspec.AbstractFileSystem | None = None) -> None:
        """Commit every change since the last commit, atomically.

        Durability: once ``persist`` returns, the new version is fsynced and named by ``CURRENT``; it survives a
        crash or power loss. Changes not yet persisted live in memory and a staging file only and are lost if
        the process dies; a crash during ``persist`` leaves the previous version loadable. The index lives in
        ``persist_dir``: a ``persist_path`` elsewhere (``StorageContext.persist(other_dir)``) is logged, not
        written to. Nothing to commit is a no-op.
        """
        _local_only(fs)
        if persist_path is not None:
            target = Path(persist_path).resolve()
            own = Path(self.persist_dir).resolve()
            if own not in (target, target.parent):
                logger.warning(
                    "the vector store's index lives in %s; persist() commits there, not to %s", own, persist_path
                )
        with self._mutex:
            if self._store.writable:
                self._store.commit()

    def close(self) -> None:
        """Release the index's files and writer lock; changes not persisted are discarded."""
        with self._mutex:
            self._store.close()

    # -- reading ---------------------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes in ``node_ids`` (in that order; all when None) whose documents pass ``filters``."""
        with self._mutex:
            selected = self._select(node_ids, filters)
            ids = sorted(i for chosen in selected.values() for i in chosen)
            nodes = self._store.get_nodes(ids)
        if node_ids is None:
            return list(nodes)
        by_id = {node.node_id: node for node in nodes}
        return [by_id[node_id] for node_id in node_ids if node_id in by_id]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense top-k search, restricted by ``filters``, ``doc_ids`` and ``node_ids``; hits carry their τ."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise NotImplementedError(
                f"query mode {query.mode.value!r} is not supported; this store answers dense (default) queries"
            )
        if query.query_embedding is None:
            raise ValueError("this store needs a query embedding: query it through an index with an embed_model")
        vector = np.asarray(query.query_embedding, dtype=np.float32)[None, :]
        with self._mutex:
            if vector.shape[1] != self._store.config.dimension:
                raise ValueError(
                    f"query embedding has dimension {vector.shape[1]}; the index holds "
                    f"{self._store.config.dimension}-dimensional vectors"
                )
            if self.auto_refresh and not self._store.writable and self._store.refresh():
                self._node_index = None
            allowed = self._allowed_ids(query)
            if self._store.num_nodes == 0:  # FaissStore.search fails on an emptied IDMap index
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            scores, ids = self._store.search(vector, query.similarity_top_k, allowed)
            hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
            nodes = self._store.get_nodes([i for i, _ in hits])
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[score for _, score in hits], ids=[node.node_id for node in nodes]
        )

    # -- async twins (the store works on local files: each runs in a worker thread) -------------------

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    async def apersist(self, persist_path: str | None = None, fs: fsspec.AbstractFileSystem | None = None) -> None:
        await asyncio.to_thread(self.persist, persist_path, fs)

    # -- helpers ---------------------------------------------------------------------------------------

    def _writer(self) -> FaissStore:
        """The store, reopened as the writer (taking the lock) at the first change."""
        if not self._store.writable:
            reader = self._store
            self._store = FaissStore.open(
                reader.path,
                reader.config,
                writable=True,
                lock_timeout=self.lock_timeout,
                nprobe=reader.nprobe,
                ef_search=reader.ef_search,
            )
            reader.close()
            self._node_index = None
        return self._store

    def _record_missing_taus(self, nodes: Sequence[BaseNode]) -> None:
        """Nodes embedded by ``VectorStoreIndex`` (not by the embedding as a transformation) carry no τ: give
        them the one the document schedule assigns their embedded text, as the embedding did."""
        from tempscale_index.embedding import TAU_KEY

        missing = [node for node in nodes if TAU_KEY not in node.metadata]
        if not missing:
            return
        embedding = self.embed_model
        counts = embedding.token_counts([node.get_content(metadata_mode=MetadataMode.EMBED) for node in missing])
        for node, tau, count in zip(missing, embedding.schedule_for("document").taus(counts), counts):
            embedding.record_tau(node, tau, count)

    def _select(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> dict[str, set[int]]:
        """Store ids per document of the nodes in ``node_ids`` (all when None) passing ``filters``."""
        records = matching_documents(self._store.documents.values(), filters)
        if node_ids is None:
            return {record.doc_id: set(record.node_ids) for record in records}
        passing = {record.doc_id for record in records}
        index = self._llama_ids()
        selected: dict[str, set[int]] = {}
        for node_id in node_ids:
            store_id, doc_id = index.get(node_id, (-1, ""))
            if doc_id in passing:
                selected.setdefault(doc_id, set()).add(store_id)
        return selected

    def _allowed_ids(self, query: VectorStoreQuery) -> list[int] | None:
        """Ids a query may return. Empty ``node_ids``/``doc_ids`` mean no restriction, as in LlamaIndex's other
        text-storing stores (``VectorStoreIndex.as_retriever`` passes ``node_ids=[]`` for them)."""
        doc_ids = query.doc_ids or None
        if not query.node_ids:
            return allowed_node_ids(self._store, query.filters, doc_ids)
        selected = self._select(query.node_ids, query.filters)
        return [i for doc_id, ids in selected.items() if doc_ids is None or doc_id in doc_ids for i in ids]

    def _llama_ids(self) -> dict[str, tuple[int, str]]:
        """LlamaIndex node id → (store id, document id), read from the node table once per version."""
        if self._node_index is None:
            index: dict[str, tuple[int, str]] = {}
            for record in self._store.documents.values():
                for store_id, data in zip(record.node_ids, self._store.get_node_dicts(record.node_ids)):
                    index[data["id_"]] = (store_id, record.doc_id)
            self._node_index = index
        return self._node_index


def _new_store(
    path: str | os.PathLike[str], embed_model: TempScaleEmbedding | None, index_type: str | None, lock_timeout: float
) -> tuple[FaissStore, TempScaleEmbedding]:
    """A writer over a new index at ``path`` for ``embed_model`` (default ``TempScaleEmbedding()``)."""
    if embed_model is None:
        from tempscale_index.embedding import TempScaleEmbedding

        embed_model = TempScaleEmbedding()
    store = FaissStore.create(path, _config_of(embed_model), index_factory=index_type, lock_timeout=lock_timeout)
    return store, embed_model


def _config_of(embed_model: TempScaleEmbedding | None) -> IndexConfig | None:
    return IndexConfig.from_embedding(embed_model, pending_ok=True) if embed_model is not None else None


def _adopt_recorded(embed_model: TempScaleEmbedding | None, config: IndexConfig) -> None:
    """An existing index never re-decides 'auto': a pending embedding takes the index's recorded schedule."""
    if embed_model is not None:
        embed_model.adopt_document_schedule(config.document_temperature)


def _local_only(fs: fsspec.AbstractFileSystem | None) -> None:
    if fs is None:
        return
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        raise NotImplementedError("TempScaleFaissVectorStore keeps its index on the local file system only")
