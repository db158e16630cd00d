"""A FAISS index and its nodes, persisted in one directory and committed atomically.

Layout: ``CURRENT`` (the committed version and its manifest's SHA-256), ``versions/v-000004/`` (``index.faiss``,
``nodes.jsonl``, ``offsets.npy``, ``documents.jsonl``, ``manifest.json``, ``manifest.sha256``; never modified once
renamed into place), ``quarantine/`` (versions a writer could not use, kept), ``writer.lock`` and a writer's
``staging-*.jsonl``. This facade ties the parts together:
``vector_index`` (FAISS), ``node_table`` (nodes and staging), ``records`` (documents), ``manifest`` (what a
version holds and the checks on load), ``versions`` (lock, ``CURRENT``, publishing, collection, recovery) and
``version_loading`` (loading the committed version, a reader's refresh). A
crash at any point leaves ``CURRENT`` naming a complete version, so readers never see a half-written index.
Nothing is unpickled: nodes and documents are JSON, offsets are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tempscale_index.index_config import IndexConfig
from tempscale_index.node_metadata import TEXT_VIEW
from tempscale_index.store import versions
from tempscale_index.store.errors import IndexExistsError, IndexNotFoundError, StoreError
from tempscale_index.store.hashing import content_hash
from tempscale_index.store.manifest import MANIFEST_FILE, read_manifest
from tempscale_index.store.node_table import NodeTable, node_dict, node_from_dict
from tempscale_index.store.records import CHUNK_METADATA_FACT, DocumentRecord, filterable, read_chunk_metadata
from tempscale_index.store.vector_checks import check_vectors
from tempscale_index.store.vector_index import DEFAULT_INDEX_FACTORY, DEFAULT_TRAIN_SIZE, VectorIndex
from tempscale_index.store.version_files import write_version
from tempscale_index.store.version_loading import VersionLoading

if TYPE_CHECKING:
    import faiss
    from filelock import FileLock
    from llama_index.core.schema import BaseNode

logger = logging.getLogger(__name__)

__all__ = ["DocumentRecord", "FaissStore", "content_hash"]  # the record and hash types are also imported from here


class FaissStore(VersionLoading):
    """One committed version of an index directory (read-only), or a writer over it (``writable=True``).

    Open with :meth:`open`; a writer holds ``writer.lock`` until :meth:`close` and makes its changes visible
    to everyone else only through :meth:`commit`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config: IndexConfig
        self.vectors: VectorIndex
        self.manifest: dict[str, Any] = {}
        self.version = 0
        self.version_name: str | None = None
        self.documents: dict[str, DocumentRecord] = {}
        self.chunking: dict[str, Any] = {}
        self.nodes = NodeTable(self.path)
        self._next_id = 0
        self._lock: FileLock | None = None
        self._created_root: bool | None = None  # set while this writer creates the index and has not committed
        self._dirty = False
        self._failed_pointer: str | None = None  # CURRENT's text when the version it named failed to load
        self._chunk_metadata_read = True  # False for a version written before records kept per-chunk metadata

    # -- opening ---------------------------------------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a committed index (also when its ``CURRENT`` pointer was lost)."""
        return versions.has_versions(Path(path))

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: IndexConfig | None = None,
        *,
        writable: bool = False,
        create: bool = False,
        index_factory: str | None = None,
        chunking: dict[str, Any] | None = None,
        train_size: int = DEFAULT_TRAIN_SIZE,
        lock_timeout: float = 10.0,
        verify: bool = True,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> FaissStore:
        """Open the index at ``path``.

        ``config``: the embedding configuration the caller will use; an index built with another one raises
        ``IndexConfigMismatchError``. ``writable``: take the writer lock (waiting up to ``lock_timeout``
        seconds). ``create``: with ``writable``, start an empty index when none is committed yet (needs
        ``config``; ``index_factory`` defaults to exact search, ``Flat``). ``verify``: check every file's
        SHA-256 (sizes, counts and the manifest's own checksum are always checked).
        """
        store = cls(Path(path))
        empty = None
        if not cls.exists(store.path):  # checked before the lock, which would create the directory
            if not (writable and create):
                raise IndexNotFoundError(
                    f"no index at {store.path} (no {versions.CURRENT} file); build one with `tempscale-index ingest`"
                )
            empty = store._validate_new(config, index_factory or DEFAULT_INDEX_FACTORY, train_size)
        if writable:
            store._created_root = not store.path.exists() if empty is not None else None
            store._lock = versions.acquire_lock(store.path, lock_timeout)
        try:
            if cls.exists(store.path):  # again under the lock: another writer may have committed meanwhile
                store._open_existing(config, index_factory, verify)
            else:
                store.config, store.vectors, store.chunking = config, empty, dict(chunking or {})
            if writable:
                versions.remove_orphans(store.path, store.version)
                store.nodes.remove_stale_staging()
            store.vectors.tune(nprobe, ef_search)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: IndexConfig, **kwargs: Any) -> FaissStore:
        """A writer over a new, empty index at ``path`` (which must not hold a committed index yet)."""
        if cls.exists(path):
            raise IndexExistsError(f"an index already exists at {path}{versions.lost_pointer_note(Path(path))}")
        return cls.open(path, config, writable=True, create=True, **kwargs)

    @classmethod
    def read_manifest(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The committed version's manifest alone (checked against ``CURRENT``; no vectors loaded)."""
        root = Path(path)
        pointer = versions.read_pointer(root)
        return read_manifest(root / versions.VERSIONS / pointer.name / MANIFEST_FILE, pointer.manifest_sha256)

    def _validate_new(self, config: IndexConfig | None, index_factory: str, train_size: int) -> VectorIndex:
        """Everything a new index needs, checked before anything is written to disk."""
        if config is None:
            raise ValueError("creating an index needs the embedding's IndexConfig")
        versions.ensure_creatable(self.path)
        return VectorIndex.empty(index_factory, config.dimension, train_size)

    # -- reading ---------------------------------------------------------------------------------------

    @property
    def index(self) -> faiss.Index:
        """The FAISS index (HNSW removals marked since the last commit are applied when committing)."""
        return self.vectors.index

    @property
    def index_factory(self) -> str:
        return self.vectors.index_factory

    @property
    def train_size(self) -> int:
        return self.vectors.train_size

    @property
    def nprobe(self) -> int:
        return self.vectors.nprobe

    @property
    def ef_search(self) -> int:
        return self.vectors.ef_search

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def dirty(self) -> bool:
        """Whether this writer has changes not committed yet."""
        return self._dirty

    @property
    def num_documents(self) -> int:
        return len(self.documents)

    @property
    def num_nodes(self) -> int:
        return sum(len(record.node_ids) for record in self.documents.values())

    def ensure_chunk_metadata(self) -> None:
        """A version older than per-chunk metadata in records: read it from the node table, once (before
        filtering and committing; see ``records.read_chunk_metadata``)."""
        if not self._chunk_metadata_read:
            read_chunk_metadata(self.documents.values(), self.get_node_dicts)
            self._chunk_metadata_read = True

    def get_node_dicts(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The stored ``TextNode.to_dict()`` of each id (committed, or staged by this writer)."""
        return self.nodes.get(ids, self.path)

    def get_nodes(self, ids: Sequence[int]) -> list[BaseNode]:
        """The stored nodes, each of its own class (``TextNode``, ``ImageNode``, ``IndexNode``…)."""
        return [node_from_dict(data) for data in self.get_node_dicts(ids)]

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: Iterable[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row; ids are -1 where fewer than ``k`` chunks qualify.

        ``allowed_ids`` restricts the search (metadata filters): small sets are scored exactly from the stored
        vectors, large ones go through FAISS's id selector.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        allowed = None if allowed_ids is None else np.asarray(list(allowed_ids), dtype=np.int64)
        return self.vectors.search(queries, k, allowed)

    def info(self) -> dict[str, Any]:
        """What the index holds and how it was built (the manifest, less per-file hashes)."""
        return {
            "path": str(self.path),
            "version": self.version,
            "documents": self.num_documents,
            "nodes": self.num_nodes,
            "index_factory": self.index_factory,
            "config": self.config.model_dump(),
            "chunking": self.chunking,
            "created_at": self.manifest.get("created_at"),
            "packages": self.manifest.get("packages", {}),
            "bytes": sum(int(entry["bytes"]) for entry in self.manifest.get("files", {}).values()),
        }

    # -- writing ---------------------------------------------------------------------------------------

    def _require_writer(self) -> None:
        if self._lock is None:
            raise StoreError(f"the index at {self.path} was opened read-only; open it with writable=True")

    def add(
        self,
        doc_id: str,
        content_hash: str,
        nodes: Sequence[BaseNode],
        vectors: np.ndarray,
        metadata: dict[str, Any] | None = None,
    ) -> list[int]:
        """Add one document's chunks (replacing any document with the same id). Returns their node ids.
        ``metadata``: the document's own (what filters see of every chunk); each chunk's differing values are
        kept per chunk."""
        self._require_writer()
        vectors = self._checked(nodes, vectors)  # before anything changes
        if doc_id in self.documents:
            self.delete(doc_id)
        self.documents[doc_id] = DocumentRecord(doc_id, content_hash, [], dict(metadata or {}))
        return self.extend(doc_id, content_hash, nodes, vectors)

    def extend(self, doc_id: str, content_hash: str, nodes: Sequence[BaseNode], vectors: np.ndarray) -> list[int]:
        """Append chunks to document ``doc_id`` (made when absent) without touching its other chunks: the cost
        is the new chunks'. ``content_hash`` becomes the document's hash. Returns their node ids."""
        self._require_writer()
        vectors = self._checked(nodes, vectors)
        record = self.documents.setdefault(doc_id, DocumentRecord(doc_id, content_hash, []))
        ids = np.arange(self._next_id, self._next_id + len(nodes), dtype=np.int64)
        self._next_id += len(nodes)
        for node_id, node in zip(ids.tolist(), nodes):
            self.nodes.stage(node_id, node_dict(node))
        self.vectors.add(ids, vectors)
        record.add_nodes(ids.tolist(), [filterable(node.metadata) for node in nodes])
        record.content_hash = content_hash
        self._dirty = True
        return ids.tolist()

    def _checked(self, nodes: Sequence[BaseNode], vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(nodes), self.config.dimension):
            raise ValueError(
                f"expected {len(nodes)} vectors of dimension {self.config.dimension}, got shape {vectors.shape}"
            )
        check_vectors(vectors, self.config.normalize, f"the index at {self.path}", [node.node_id for node in nodes])
        return vectors

    def remove_nodes(self, doc_id: str, ids: set[int], content_hash: str) -> None:
        """Remove some chunks of document ``doc_id`` (the document when none is left); ``content_hash`` becomes
        its hash. Costs the removed chunks, not the document."""
        self._require_writer()
        record = self.documents[doc_id]
        removed = [i for i in record.node_ids if i in ids]
        if len(removed) == len(record.node_ids):
            self.delete(doc_id)
            return
        self.vectors.remove(np.asarray(removed, dtype=np.int64))
        self.nodes.remove(removed)
        record.remove_nodes(set(removed))
        record.content_hash = content_hash
        self._dirty = True

    def delete(self, doc_id: str) -> int:
        """Remove a document and its chunks. Returns how many chunks went; raises KeyError for unknown ids."""
        self._require_writer()
        record = self.documents.pop(doc_id, None)
        if record is None:
            raise KeyError(f"no document with id {doc_id!r} in the index at {self.path}")
        self.vectors.remove(np.asarray(record.node_ids, dtype=np.int64))
        self.nodes.remove(record.node_ids)
        self._dirty = True
        return len(record.node_ids)

    def commit(self) -> int:
        """Make every change since the last commit visible, atomically. Returns the committed version."""
        self._require_writer()
        if not self._dirty:
            return self.version
        self.ensure_chunk_metadata()
        self.vectors.train_on_pending()
        self.vectors.apply_removals()
        started = time.time()
        versions.remove_orphans(self.path, self.version)
        number = versions.next_number(self.path, self.version)
        name = versions.version_name(number)
        folder = versions.new_version_folder(self.path, name)
        try:
            manifest, checksum = write_version(
                folder,
                number,
                self.vectors,
                self.nodes,
                self.documents.values(),
                config=self.config.model_dump(),
                index_factory=self.index_factory,
                metric="inner_product",
                train_size=self.train_size,
                chunking=self.chunking,
                text_view=TEXT_VIEW,  # how every entry point embeds a node (node_metadata.embedded_text)
                next_id=self._next_id,
                **{CHUNK_METADATA_FACT: True},
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        final = versions.publish(self.path, folder, name, checksum)
        # The new version is committed: it becomes our base; then clean up what nobody needs any more.
        self.nodes.commit(final)
        self.manifest, self.version, self.version_name = manifest, manifest["version"], name
        self.manifest["commit_seconds"] = round(time.time() - started, 3)
        self._dirty = False
        self._created_root = None
        versions.collect_garbage(self.path)
        return self.version

    # -- closing ---------------------------------------------------------------------------------------

    def close_files(self) -> None:
        self.nodes.close()

    def close(self) -> None:
        """Release files and the writer lock; uncommitted changes are discarded, and so is the directory of a
        create that never committed."""
        self.nodes.discard_staging()
        self.close_files()
        if self._lock is not None:
            if self._created_root is not None:
                versions.remove_unused(self.path, self._created_root)
            versions.release_lock(self.path, self._lock)
            self._lock = None

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
