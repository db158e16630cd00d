"""``TempScaleFaissVectorStore``: the crash-safe FAISS index directory as a LlamaIndex vector store.

One format: a directory written by ``tempscale-index ingest`` opens here, and one written here opens in the CLI.
It replaces LlamaIndex's ``FaissVectorStore`` in existing code (``StorageContext.from_defaults(vector_store=…)``,
``VectorStoreIndex.from_vector_store``, ``IngestionPipeline(vector_store=…)``), and adds what that store lacks:
nodes stored with the vectors, of their own class (no docstore needed), deletion, per-chunk metadata filters,
MMR and filter-only queries, atomic persistence, and the embedding the index was built with
(``store.embed_model``), so queries run at the index's query τ. Queries go through ``store/search.py``, the
path the retriever and the CLI share.

Changes are staged until :meth:`TempScaleFaissVectorStore.persist`; the writer lock is taken at the first change
and held until :meth:`close`, so another process (an ``ingest``) cannot write meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_DIR,
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from tempscale_index.index_config import PENDING_AUTO, IndexConfig
from tempscale_index.schedules import ConstantSchedule
from tempscale_index.serving.query_encoder import prepare_query_path
from tempscale_index.store.async_twins import AsyncTwins
from tempscale_index.store.errors import IndexNotFoundError, StoreError
from tempscale_index.store.faiss_store import FaissStore
from tempscale_index.store.filters import allowed_node_ids, matching_nodes
from tempscale_index.store.node_documents import (
    StoredNodes,
    checked_vectors,
    count_missing_tokens,
    record_missing_taus,
)
from tempscale_index.store.opening import config_of, local_only, match_recorded, new_store
from tempscale_index.store.search import DEFAULT_MMR_PREFETCH_FACTOR, fetch_nodes, query_nodes

if TYPE_CHECKING:
    import fsspec

    from tempscale_index.embedding import TempScaleEmbedding

logger = logging.getLogger(__name__)


class TempScaleFaissVectorStore(AsyncTwins, BasePydanticVectorStore):
    """A LlamaIndex vector store over a tempscale-index FAISS directory (see the module docstring).

    ``TempScaleFaissVectorStore(path, embed_model=…, index_type=…)`` opens the index at ``path`` or makes a new
    one; :meth:`from_persist_dir` only opens, :meth:`create` only makes. ``index_type`` is a FAISS index_factory
    string (``Flat``, ``HNSW32``, ``IVF256,Flat``…). Metadata filters see each chunk's metadata and its document's
    id as ``doc_id``/``ref_doc_id``; see ``store/filters.py``.

    A pickled or copied store reopens the committed index at ``persist_dir`` read-only (a FAISS index, its
    writer lock and open files cannot travel); a store with changes not yet persisted refuses, since the copy
    would silently miss them.
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
    return_embeddings: bool = Field(
        default=False,
        description="Put each returned node's stored vector in its `embedding` (get_nodes and queries; a call's "
        "`return_embeddings=` overrides it). Off by default: a vector is 384+ floats per node.",
    )

    _store: FaissStore = PrivateAttr()
    _embed_model: Any = PrivateAttr(default=None)
    _nodes: StoredNodes = PrivateAttr(default_factory=StoredNodes)
    _mutex: Any = PrivateAttr(default_factory=threading.RLock)
    _trust: bool = PrivateAttr(default=False)  # trust_callable_schedules: a recorded callable schedule runs code

    def __init__(
        self,
        persist_dir: str | os.PathLike[str] | FaissStore,
        embed_model: TempScaleEmbedding | None = None,
        index_type: str | None = None,
        trust_callable_schedules: bool = False,
        **kwargs: Any,
    ) -> None:
        trust = trust_callable_schedules
        if isinstance(persist_dir, FaissStore):
            store = persist_dir
        elif FaissStore.exists(persist_dir):
            match_recorded(
                embed_model, IndexConfig.from_manifest(FaissStore.read_manifest(persist_dir)), persist_dir, trust
            )
            store = FaissStore.open(persist_dir, config_of(embed_model), index_factory=index_type)
        else:
            store, embed_model = new_store(persist_dir, embed_model, index_type, kwargs.get("lock_timeout", 10.0))
        super().__init__(persist_dir=str(store.path), **kwargs)
        match_recorded(embed_model, store.config, store.path, trust)
        self._store = store
        self._embed_model, self._trust = embed_model, trust

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
        local_only(fs)
        if FaissStore.exists(persist_dir):
            recorded = IndexConfig.from_manifest(FaissStore.read_manifest(persist_dir))
            match_recorded(embed_model, recorded, persist_dir, kwargs.get("trust_callable_schedules", False))
        store = FaissStore.open(persist_dir, config_of(embed_model), nprobe=nprobe, ef_search=ef_search)
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
        store, embed_model = new_store(persist_dir, embed_model, index_type, kwargs.get("lock_timeout", 10.0))
        return cls(store, embed_model, **kwargs)

    @classmethod
    def from_persist_path(
        cls, persist_path: str | os.PathLike[str], fs: fsspec.AbstractFileSystem | None = None, **kwargs: Any
    ) -> TempScaleFaissVectorStore:
        """``FaissVectorStore.from_persist_path``'s twin: ``persist_path`` is the index directory, or a file in it
        (such as ``storage/default__vector_store.json``, which ``FaissVectorStore`` code passes)."""
        path = Path(persist_path)
        if not FaissStore.exists(path) and FaissStore.exists(path.parent):
            path = path.parent
        if not FaissStore.exists(path):
            raise IndexNotFoundError(
                f"no index at {persist_path} or its folder; build one with `tempscale-index ingest`"
            )
        return cls.from_persist_dir(path, fs=fs, **kwargs)

    @classmethod
    def from_params(
        cls,
        persist_dir: str | os.PathLike[str] = DEFAULT_PERSIST_DIR,
        embed_model: TempScaleEmbedding | None = None,
        index_type: str | None = None,
        **kwargs: Any,
    ) -> TempScaleFaissVectorStore:
        """Open the index at ``persist_dir``, or make one there (the constructor, under the name LlamaIndex's
        stores use for it)."""
        return cls(persist_dir, embed_model=embed_model, index_type=index_type, **kwargs)

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

                config = self._store.config
                self._embed_model = TempScaleEmbedding.from_index_config(config, trust_callable_schedules=self._trust)
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
            count_missing_tokens(lambda: self.embed_model, nodes)
            vectors = checked_vectors(self._store.config, nodes, f"the index at {self._store.path}", self._trust)
            record_missing_taus(lambda: self.embed_model, nodes)
            self._nodes.add(self._writer(), nodes, vectors)
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
        self._store.config = embed_model.index_config()

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the document ``ref_doc_id`` (nothing happens for an unknown id)."""
        with self._mutex:
            if ref_doc_id in self._store.documents:
                self._nodes.delete_document(self._writer(), ref_doc_id)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Remove the nodes in ``node_ids`` (all when None) whose documents pass ``filters`` (all when None)."""
        with self._mutex:
            self._nodes.remove(self._writer(), self._select(node_ids, filters))

    def clear(self) -> None:
        """Remove every document (committed by the next :meth:`persist`)."""
        with self._mutex:
            store = self._writer()
            for doc_id in list(store.documents):
                store.delete(doc_id)
            self._nodes.reset()

    def persist(self, persist_path: str | None = None, fs: fsspec.AbstractFileSystem | None = None) -> None:
        """Commit every change since the last commit, atomically.

        Durability: once ``persist`` returns, the new version is fsynced and named by ``CURRENT``; it survives a
        crash or power loss. Changes not yet persisted live in memory and a staging file only and are lost if
        the process dies; a crash during ``persist`` leaves the previous version loadable. The index lives in
        ``persist_dir``: a ``persist_path`` elsewhere (``StorageContext.persist(other_dir)``) is logged, not
        written to. Nothing to commit is a no-op.
        """
        local_only(fs)
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
                if self._embed_model is not None and self._store.config.document_temperature != PENDING_AUTO:
                    prepare_query_path(self._embed_model)  # the first query after it is as fast as any (a
                    # store given vectors alone loads no model for it)

    def close(self) -> None:
        """Release the index's files and writer lock; changes not persisted are discarded."""
        with self._mutex:
            self._store.close()

    # -- reading ---------------------------------------------------------------------------------------

    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        return_embeddings: bool | None = None,
    ) -> list[BaseNode]:
        """The stored nodes in ``node_ids`` (in that order; all when None) that pass ``filters``."""
        with self._mutex:
            selected = self._select(node_ids, filters)
            ids = sorted(i for chosen in selected.values() for i in chosen)
            nodes = fetch_nodes(self._store, ids, self._with_embeddings(return_embeddings))
        if node_ids is None:
            return list(nodes)
        by_id = {node.node_id: node for node in nodes}
        return [by_id[node_id] for node_id in node_ids if node_id in by_id]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top-k among the nodes ``filters``, ``doc_ids`` and ``node_ids`` allow, hits carrying their τ: dense
        (default) or MMR (``mmr_threshold``, ``mmr_prefetch_factor``), or, without a query embedding, the
        filtered nodes themselves; see ``store/search.py``. ``return_embeddings=`` as for :meth:`get_nodes`."""
        with self._mutex:
            if self.auto_refresh and not self._store.writable and self._store.refresh():
                self._nodes.reset()
            return query_nodes(
                self._store,
                query,
                self._allowed_ids(query),
                with_embeddings=self._with_embeddings(kwargs.get("return_embeddings")),
                mmr_threshold=kwargs.get("mmr_threshold"),
                mmr_prefetch_factor=kwargs.get("mmr_prefetch_factor", DEFAULT_MMR_PREFETCH_FACTOR),
            )

    def _with_embeddings(self, asked: bool | None) -> bool:
        return self.return_embeddings if asked is None else bool(asked)

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
            self._nodes.reset()
        return self._store

    def _select(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> dict[str, set[int]]:
        """Store ids per document of the nodes in ``node_ids`` (all when None) passing ``filters``."""
        if filters is not None:
            self._store.ensure_chunk_metadata()
        passing = matching_nodes(self._store.documents.values(), filters)
        if node_ids is None:
            return {doc_id: set(ids) for doc_id, ids in passing.items()}
        index = self._nodes.lookup(self._store)
        allowed = None if filters is None else {i for ids in passing.values() for i in ids}
        selected: dict[str, set[int]] = {}
        for node_id in node_ids:
            store_id, doc_id = index.get(node_id, (-1, ""))
            if store_id >= 0 and (allowed is None or store_id in allowed):
                selected.setdefault(doc_id, set()).add(store_id)
        return selected

    def _allowed_ids(self, query: VectorStoreQuery) -> list[int] | None:
        """Ids a query may return. Empty ``node_ids``/``doc_ids`` mean no restriction, as in LlamaIndex's other
        text-storing stores (``VectorStoreIndex.as_retriever`` passes ``node_ids=[]`` for them)."""
        doc_ids = query.doc_ids or None
        if not query.node_ids:
            return allowed_node_ids(self._store, query.filters, doc_ids)
        selected = self._select(query.node_ids, query.filters)
        return sorted(i for doc_id, ids in selected.items() if doc_ids is None or doc_id in doc_ids for i in ids)

    # -- pickling and copying: reopen the committed index by path -------------------------------------

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        with self._mutex:
            if self._store.writable and (self._store.dirty or self._store.version == 0):
                raise StoreError(
                    f"persist() the vector store at {self.persist_dir} before pickling or copying it: a copy reopens "
                    "the committed index, and would miss the changes made since"
                )
            fields = {name: getattr(self, name) for name in ("auto_refresh", "lock_timeout", "return_embeddings")}
            return _reopen, (self.persist_dir, fields, self._store.nprobe, self._store.ef_search)

    def __copy__(self) -> TempScaleFaissVectorStore:
        function, args = self.__reduce__()
        return function(*args)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> TempScaleFaissVectorStore:
        return self.__copy__()


def _reopen(persist_dir: str, fields: dict[str, Any], nprobe: int, ef_search: int) -> TempScaleFaissVectorStore:
    """A pickled or copied store: the committed index at ``persist_dir``, read-only until its first change."""
    return TempScaleFaissVectorStore.from_persist_dir(persist_dir, nprobe=nprobe, ef_search=ef_search, **fields)
