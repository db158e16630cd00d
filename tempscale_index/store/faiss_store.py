"""A FAISS index and its nodes, persisted in one directory and committed atomically.

Layout of an index directory::

    CURRENT                 the committed version's name ("v-000004"), replaced atomically on commit
    versions/v-000004/      one committed version, never modified once renamed into place
        index.faiss         faiss.write_index of the vectors; FAISS ids are the store's node ids
        nodes.jsonl         one node a line, {"id": int, "node": TextNode.to_dict() without its vector}
        offsets.npy         int64 [n, 3]: node id, byte offset and byte length of its line, sorted by id
        documents.jsonl     one document a line: doc id, content hash, node ids, metadata
        manifest.json       IndexConfig, index factory string, counts, package versions, and the size and
                            SHA-256 of every file above
    writer.lock             held by the one process allowed to write
    staging-*.jsonl         nodes a writer added since its last commit (removed once committed)

A commit writes a whole new version under ``versions/.tmp-*``, fsyncs it, renames it into place and only then
replaces ``CURRENT``. A crash at any point leaves ``CURRENT`` naming a complete version (the previous one, or
the new one once the replace happened), so readers never see a half-written index and the vectors can never get
out of step with the text. Loading checks every file's size and hash against the manifest and the counts
against each other, and refuses an index built with another model or schedule than the one asked for.
Nothing is unpickled: nodes and documents are JSON, offsets are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock, Timeout
from llama_index.core.schema import BaseNode, TextNode

from tempscale_index.index_config import IndexConfig
from tempscale_index.store.errors import (
    CorruptIndexError,
    IndexExistsError,
    IndexLockedError,
    IndexNotFoundError,
    StoreError,
)
from tempscale_index.store.files import HashingWriter, crash_point, fsync_path, sha256_file, write_atomic_text

FORMAT = "tempscale-index/faiss"
FORMAT_VERSION = 1
DEFAULT_INDEX_FACTORY = "Flat"
DEFAULT_TRAIN_SIZE = 20_000
DEFAULT_NPROBE = 16
DEFAULT_EF_SEARCH = 64
KEEP_VERSIONS = 2  # the current version and the one before it, for readers still loading it
EXACT_FILTER_LIMIT = 20_000  # filtered searches over at most this many chunks are scored exactly

CURRENT, VERSIONS, LOCK = "CURRENT", "versions", "writer.lock"
INDEX_FILE, NODES_FILE, OFFSETS_FILE, DOCUMENTS_FILE, MANIFEST_FILE = (
    "index.faiss",
    "nodes.jsonl",
    "offsets.npy",
    "documents.jsonl",
    "manifest.json",
)
_PACKAGES = ("tempscale-index", "faiss-cpu", "numpy", "torch", "transformers", "sentence-transformers",
             "llama-index-core")


def content_hash(doc_id: str, texts: Sequence[str]) -> str:
    """What makes a document unchanged: its id and its text (parts in order). Metadata such as file dates is
    not content, so touching a file does not re-embed it; the pipeline and the batch job share this hash."""
    return hashlib.sha256(json.dumps([doc_id, *texts], ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class DocumentRecord:
    """One ingested document: its id, the hash of its text, its chunks' node ids and its metadata."""

    doc_id: str
    content_hash: str
    node_ids: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"doc_id": self.doc_id, "hash": self.content_hash, "ids": self.node_ids, "metadata": self.metadata},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> DocumentRecord:
        data = json.loads(line)
        return cls(data["doc_id"], data["hash"], [int(i) for i in data["ids"]], data.get("metadata") or {})


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    versions["faiss"] = faiss.__version__
    return versions


def build_faiss_index(index_factory: str, dimension: int) -> faiss.Index:
    """An empty index for ``index_factory`` (inner product), able to hold the store's own int64 ids."""
    spec = index_factory.strip()
    if not spec or spec.upper().startswith("IDMAP"):
        raise ValueError(f"index type {index_factory!r}: give a FAISS index_factory string such as Flat, HNSW32, "
                         "IVF256,Flat or IVF256,PQ16 (ids are managed by the store, so no IDMap prefix)")
    try:
        base = faiss.index_factory(int(dimension), spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"FAISS cannot build index type {index_factory!r}: {_faiss_message(exc)}") from None
    ivf = faiss.try_extract_index_ivf(base)
    if ivf is not None:  # IVF indexes store ids themselves; a hash table maps ids back for reconstruct/remove
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return base
    return faiss.IndexIDMap2(base)


def _faiss_message(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = next((line for line in reversed(lines) if not line.startswith("Error in")), lines[-1] if lines else "")
    return message.removeprefix("Error: ").strip("' ")


def _tune(index: faiss.Index, nprobe: int, ef_search: int) -> None:
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = max(1, min(int(nprobe), int(ivf.nlist)))
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = int(ef_search)


class FaissStore:
    """One committed version of an index directory (read-only), or a writer over it (``writable=True``).

    Open with :meth:`open`; a writer holds ``writer.lock`` until :meth:`close` and makes its changes visible
    to everyone else only through :meth:`commit`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config: IndexConfig
        self.index_factory: str
        self.manifest: dict[str, Any] = {}
        self.version = 0
        self.version_name: str | None = None
        self.index: faiss.Index
        self.documents: dict[str, DocumentRecord] = {}
        self.chunking: dict[str, Any] = {}
        self.train_size = DEFAULT_TRAIN_SIZE
        self.nprobe, self.ef_search = DEFAULT_NPROBE, DEFAULT_EF_SEARCH
        self._ids = np.zeros(0, dtype=np.int64)  # committed node ids, sorted, with their line offsets
        self._offsets = np.zeros(0, dtype=np.int64)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._nodes_fd: int | None = None
        self._next_id = 0
        # writer state
        self._lock: FileLock | None = None
        self._deleted: set[int] = set()
        self._staged: dict[int, tuple[int, int]] = {}
        self._staging_path: Path | None = None
        self._staging_handle: Any = None
        self._staging_size = 0
        self._pending_ids: list[np.ndarray] = []
        self._pending_vectors: list[np.ndarray] = []
        self._dirty = False
        self._id_map_cache: tuple[faiss.Index, np.ndarray] | None = None

    # -- opening ---------------------------------------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` holds a committed index."""
        return (Path(path) / CURRENT).is_file()

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
        SHA-256 (sizes and counts are always checked).
        """
        store = cls(Path(path))
        if writable and create and store.path.is_dir() and not cls.exists(store.path):
            foreign = sorted(
                p.name for p in store.path.iterdir()
                if p.name not in (LOCK, VERSIONS) and not p.name.startswith(("staging-", f".{CURRENT}."))
            )
            if foreign:
                raise IndexExistsError(
                    f"{store.path} is not empty ({foreign[0]}…) and holds no index; give a new or empty directory"
                )
        if writable:
            store._acquire(lock_timeout)
        try:
            if cls.exists(store.path):
                store._load_current(verify)
                if config is not None:
                    store.config.ensure_matches(config, where=f"the index at {store.path}")
                if index_factory is not None and index_factory.strip() != store.index_factory:
                    raise ValueError(
                        f"the index at {store.path} is a {store.index_factory!r} index; it cannot be extended "
                        f"as {index_factory!r} (leave the index type out, or ingest into a new directory)"
                    )
            elif writable and create:
                if config is None:
                    raise ValueError("creating an index needs the embedding's IndexConfig")
                store._init_empty(config, index_factory or DEFAULT_INDEX_FACTORY, chunking or {}, train_size)
            else:
                raise IndexNotFoundError(
                    f"no index at {store.path} (no {CURRENT} file); build one with `tempscale-index ingest`"
                )
            if writable:
                store._remove_orphans()
            if nprobe is not None:
                store.nprobe = int(nprobe)
            if ef_search is not None:
                store.ef_search = int(ef_search)
            _tune(store.index, store.nprobe, store.ef_search)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: IndexConfig, **kwargs: Any) -> FaissStore:
        """A writer over a new, empty index at ``path`` (which must not hold a committed index yet)."""
        if cls.exists(path):
            raise IndexExistsError(f"an index already exists at {path}")
        return cls.open(path, config, writable=True, create=True, **kwargs)

    @classmethod
    def read_manifest(cls, path: str | os.PathLike[str]) -> dict[str, Any]:
        """The committed version's manifest alone (no vectors loaded, files not checked)."""
        store = cls(Path(path))
        return _read_manifest(store.path / VERSIONS / store._read_current() / MANIFEST_FILE)

    def _acquire(self, timeout: float) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path / LOCK), timeout=timeout)
        try:
            self._lock.acquire()
        except Timeout:
            self._lock = None
            raise IndexLockedError(
                f"another process is writing to {self.path} (it holds {LOCK}); wait for it to finish"
            ) from None

    def _init_empty(self, config: IndexConfig, index_factory: str, chunking: dict[str, Any], train_size: int) -> None:
        self.config = config
        self.index_factory = index_factory.strip()
        self.index = build_faiss_index(self.index_factory, config.dimension)
        self.chunking = dict(chunking)
        self.train_size = int(train_size)

    def _load_current(self, verify: bool, attempts: int = 5) -> None:
        """Load the version ``CURRENT`` names; if a newer commit removed it meanwhile, load the newer one."""
        for attempt in range(attempts):
            name = self._read_current()
            try:
                self._load_version(name, verify)
                return
            except (FileNotFoundError, CorruptIndexError):
                if attempt + 1 < attempts and self._read_current() != name:
                    continue  # a writer committed (and cleaned up) while we were loading: take the new version
                raise

    def _read_current(self) -> str:
        try:
            name = (self.path / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise IndexNotFoundError(f"no index at {self.path} (no {CURRENT} file)") from None
        if not name.startswith("v-") or "/" in name or not (self.path / VERSIONS / name).is_dir():
            raise CorruptIndexError(
                f"{self.path / CURRENT} names version {name!r}, which is not in {self.path / VERSIONS}"
            )
        return name

    def _load_version(self, name: str, verify: bool) -> None:
        folder = self.path / VERSIONS / name
        manifest = _read_manifest(folder / MANIFEST_FILE)
        for file_name, expected in manifest["files"].items():
            _check_file(folder / file_name, expected, verify)
        try:
            index = faiss.read_index(str(folder / INDEX_FILE))
        except RuntimeError as exc:
            raise CorruptIndexError(f"{folder / INDEX_FILE} cannot be read by FAISS: {_faiss_message(exc)}") from None
        try:
            table = np.load(folder / OFFSETS_FILE, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CorruptIndexError(f"{folder / OFFSETS_FILE} is unreadable: {exc}") from None
        documents: dict[str, DocumentRecord] = {}
        with open(folder / DOCUMENTS_FILE, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = DocumentRecord.from_json(line)
                except (ValueError, KeyError, TypeError) as exc:
                    raise CorruptIndexError(
                        f"{folder / DOCUMENTS_FILE} line {number} is not a document: {exc}"
                    ) from None
                documents[record.doc_id] = record
        counts = manifest["counts"]
        config = IndexConfig(**manifest["config"])
        found = {
            "vectors in index.faiss": int(index.ntotal),
            "rows in offsets.npy": int(table.shape[0]) if table.ndim == 2 else -1,
            "node ids of documents.jsonl": sum(len(record.node_ids) for record in documents.values()),
        }
        problems = [f"{what}: {value}" for what, value in found.items() if value != counts["nodes"]]
        if len(documents) != counts["documents"]:
            problems.append(f"documents: {len(documents)}")
        if index.d != config.dimension:
            problems.append(f"index dimension {index.d} (config says {config.dimension})")
        if problems:
            raise CorruptIndexError(
                f"{folder} is inconsistent: the manifest counts {counts['nodes']} nodes in {counts['documents']} "
                f"documents, but found " + ", ".join(problems)
            )
        self.close_files()
        self.manifest, self.config, self.index, self.documents = manifest, config, index, documents
        self._id_map_cache = None
        self.index_factory = manifest["index_factory"]
        self.chunking = manifest.get("chunking", {})
        self.train_size = int(manifest.get("train_size", DEFAULT_TRAIN_SIZE))
        self.version, self.version_name = int(manifest["version"]), name
        self._next_id = int(manifest["next_id"])
        self._ids = np.ascontiguousarray(table[:, 0]) if len(table) else np.zeros(0, dtype=np.int64)
        self._offsets = np.ascontiguousarray(table[:, 1]) if len(table) else np.zeros(0, dtype=np.int64)
        self._lengths = np.ascontiguousarray(table[:, 2]) if len(table) else np.zeros(0, dtype=np.int64)
        # Keep the nodes file open: a later commit may remove this version's folder, the open file stays readable.
        self._nodes_fd = os.open(folder / NODES_FILE, os.O_RDONLY)

    def refresh(self, verify: bool = True) -> bool:
        """Read-only stores: switch to the newest committed version if there is one. Returns whether it did."""
        if self._lock is not None:
            raise StoreError("a writer sees its own changes; refresh() is for readers")
        if self._read_current() == self.version_name:
            return False
        self._load_current(verify)
        _tune(self.index, self.nprobe, self.ef_search)
        return True

    # -- reading ---------------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._lock is not None

    @property
    def num_documents(self) -> int:
        return len(self.documents)

    @property
    def num_nodes(self) -> int:
        return sum(len(record.node_ids) for record in self.documents.values())

    def get_node_dicts(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The stored ``TextNode.to_dict()`` of each id (committed, or staged by this writer)."""
        out = []
        for node_id in ids:
            node_id = int(node_id)
            if node_id in self._staged:
                offset, length = self._staged[node_id]
                self._staging_handle.flush()
                raw = os.pread(self._staging_handle.fileno(), length, offset)
            else:
                position = int(np.searchsorted(self._ids, node_id))
                if position >= len(self._ids) or self._ids[position] != node_id or node_id in self._deleted:
                    raise KeyError(f"node id {node_id} is not in the index at {self.path}")
                raw = os.pread(self._nodes_fd, int(self._lengths[position]), int(self._offsets[position]))
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise CorruptIndexError(f"node {node_id} of {self.path} is unreadable: {exc}") from None
            if record.get("id") != node_id:
                raise CorruptIndexError(f"node {node_id} of {self.path}: offsets point at node {record.get('id')}")
            out.append(record["node"])
        return out

    def get_nodes(self, ids: Sequence[int]) -> list[TextNode]:
        return [TextNode.from_dict(data) for data in self.get_node_dicts(ids)]

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
        if allowed_ids is None:
            return self._search(queries, k)
        allowed = np.fromiter((int(i) for i in allowed_ids), dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        if len(allowed) == 0 or self.index.ntotal == 0:
            return scores, ids
        if len(allowed) <= EXACT_FILTER_LIMIT:
            vectors = self._reconstruct(allowed)
            all_scores = queries @ vectors.T
            top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
            take = top.shape[1]
            scores[:, :take] = np.take_along_axis(all_scores, top, axis=1)
            ids[:, :take] = allowed[top]
            return scores, ids
        return self._search(queries, k, allowed)

    def _search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search the index; ``IndexIDMap2`` is bypassed (its id translation runs an OpenMP region that costs
        milliseconds on a busy machine, ten times an HNSW search) and ids are mapped back with numpy."""
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:  # IVF indexes hold the store's ids themselves
            if allowed is None:
                return self.index.search(queries, k)
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed), nprobe=ivf.nprobe)
            return self.index.search(queries, k, params=params)
        inner, id_map = self._id_mapping()
        if allowed is None:
            scores, labels = inner.search(queries, k)
        else:
            positions = np.flatnonzero(np.isin(id_map, allowed)).astype(np.int64)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(positions))
            scores, labels = inner.search(queries, k, params=params)
        return scores, np.where(labels >= 0, id_map[np.maximum(labels, 0)], -1)

    def _id_mapping(self) -> tuple[faiss.Index, np.ndarray]:
        """The index inside ``IndexIDMap2`` and its position → node id table (cached until the index changes)."""
        if self._id_map_cache is None:
            self._id_map_cache = (
                faiss.downcast_index(self.index.index),
                faiss.vector_to_array(self.index.id_map).astype(np.int64),
            )
        return self._id_map_cache

    def _reconstruct(self, ids: np.ndarray) -> np.ndarray:
        try:
            return np.vstack([self.index.reconstruct(int(i)) for i in ids]).astype(np.float32)
        except RuntimeError as exc:
            raise StoreError(f"{self.index_factory} cannot return stored vectors: {_faiss_message(exc)}") from None

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
        """Add one document's chunks (replacing any document with the same id). Returns their node ids."""
        self._require_writer()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(nodes), self.config.dimension):
            raise ValueError(
                f"expected {len(nodes)} vectors of dimension {self.config.dimension}, got shape {vectors.shape}"
            )
        if doc_id in self.documents:
            self.delete(doc_id)
        ids = np.arange(self._next_id, self._next_id + len(nodes), dtype=np.int64)
        self._next_id += len(nodes)
        for node_id, node in zip(ids, nodes):
            data = node.to_dict()
            data["embedding"] = None
            self._stage(int(node_id), json.dumps({"id": int(node_id), "node": data}, ensure_ascii=False))
        if self.index.is_trained:
            self.index.add_with_ids(vectors, ids)
            self._id_map_cache = None
        else:
            self._pending_ids.append(ids)
            self._pending_vectors.append(vectors)
            if sum(len(block) for block in self._pending_ids) >= self.train_size:
                self._train_on_pending()
        self.documents[doc_id] = DocumentRecord(doc_id, content_hash, ids.tolist(), dict(metadata or {}))
        self._dirty = True
        return ids.tolist()

    def _stage(self, node_id: int, line: str) -> None:
        if self._staging_handle is None:
            self._staging_path = self.path / f"staging-{uuid.uuid4().hex}.jsonl"
            self._staging_handle = open(self._staging_path, "w+b")  # noqa: SIM115 - closed in close_files()
            self._staging_size = 0
        data = line.encode("utf-8") + b"\n"
        self._staging_handle.write(data)
        self._staged[node_id] = (self._staging_size, len(data))
        self._staging_size += len(data)

    def _train_on_pending(self) -> None:
        ids = np.concatenate(self._pending_ids)
        vectors = np.concatenate(self._pending_vectors)
        try:
            self.index.train(vectors)
        except RuntimeError as exc:
            raise StoreError(
                f"FAISS could not train a {self.index_factory!r} index on the {len(vectors)} chunks ingested: "
                f"{_faiss_message(exc)}; ingest more text or choose an index that needs no training (Flat, HNSW32)"
            ) from None
        self.index.add_with_ids(vectors, ids)
        self._id_map_cache = None
        self._pending_ids, self._pending_vectors = [], []

    def delete(self, doc_id: str) -> int:
        """Remove a document and its chunks. Returns how many chunks went; raises KeyError for unknown ids."""
        self._require_writer()
        record = self.documents.pop(doc_id, None)
        if record is None:
            raise KeyError(f"no document with id {doc_id!r} in the index at {self.path}")
        removed = np.asarray(record.node_ids, dtype=np.int64)
        if self._pending_ids:
            keep = [~np.isin(block, removed) for block in self._pending_ids]
            self._pending_vectors = [block[mask] for block, mask in zip(self._pending_vectors, keep)]
            self._pending_ids = [block[mask] for block, mask in zip(self._pending_ids, keep)]
        if self.index.ntotal:
            self._remove_ids(removed)
        for node_id in record.node_ids:
            if self._staged.pop(node_id, None) is None:
                self._deleted.add(node_id)
        self._dirty = True
        return len(removed)

    def _remove_ids(self, ids: np.ndarray) -> None:
        self._id_map_cache = None
        try:
            self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
            return
        except RuntimeError:
            pass
        # This index type cannot remove (HNSW): rebuild it from its own vectors, less the removed ones.
        all_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.index.index.reconstruct_n(0, self.index.ntotal)
        keep = ~np.isin(all_ids, ids)
        rebuilt = build_faiss_index(self.index_factory, self.config.dimension)
        if keep.any():
            if not rebuilt.is_trained:
                rebuilt.train(vectors[keep])
            rebuilt.add_with_ids(np.ascontiguousarray(vectors[keep]), all_ids[keep])
        _tune(rebuilt, self.nprobe, self.ef_search)
        self.index = rebuilt

    def commit(self) -> int:
        """Make every change since the last commit visible, atomically. Returns the committed version."""
        self._require_writer()
        if not self._dirty:
            return self.version
        if self._pending_ids:
            self._train_on_pending()
        started = time.time()
        version = self.version + 1
        name = f"v-{version:06d}"
        versions = self.path / VERSIONS
        versions.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()
        tmp = versions / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        files: dict[str, dict[str, Any]] = {}

        faiss.write_index(self.index, str(tmp / INDEX_FILE))
        fsync_path(tmp / INDEX_FILE)
        files[INDEX_FILE] = {"bytes": (tmp / INDEX_FILE).stat().st_size, "sha256": sha256_file(tmp / INDEX_FILE)}
        crash_point("commit:index-written")

        ids, offsets, lengths = self._write_nodes(tmp / NODES_FILE, files)
        with HashingWriter(tmp / OFFSETS_FILE) as writer:
            np.save(writer, np.stack([ids, offsets, lengths], axis=1) if len(ids) else np.zeros((0, 3), np.int64),
                    allow_pickle=False)
            files[OFFSETS_FILE] = writer.close()
        with HashingWriter(tmp / DOCUMENTS_FILE) as writer:
            for record in self.documents.values():
                writer.write(record.to_json().encode("utf-8") + b"\n")
            files[DOCUMENTS_FILE] = writer.close()
        if len(ids) != self.index.ntotal:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"internal error: {len(ids)} nodes but {self.index.ntotal} vectors; nothing committed")

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": self.config.model_dump(),
            "index_factory": self.index_factory,
            "metric": "inner_product",
            "train_size": self.train_size,
            "chunking": self.chunking,
            "counts": {"documents": len(self.documents), "nodes": len(ids)},
            "next_id": self._next_id,
            "packages": package_versions(),
            "files": files,
        }
        with HashingWriter(tmp / MANIFEST_FILE) as writer:
            writer.write(json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8"))
            writer.close()
        fsync_path(tmp)
        crash_point("commit:version-written")
        os.rename(tmp, versions / name)
        fsync_path(versions)
        crash_point("commit:version-renamed")
        write_atomic_text(self.path / CURRENT, name + "\n")
        crash_point("commit:current-replaced")

        # The new version is committed: it becomes our base; then clean up what nobody needs any more.
        self.close_files()
        self._nodes_fd = os.open(versions / name / NODES_FILE, os.O_RDONLY)
        self._ids, self._offsets, self._lengths = ids, offsets, lengths
        self.manifest, self.version, self.version_name = manifest, version, name
        self.manifest["commit_seconds"] = round(time.time() - started, 3)
        self._discard_staging()
        self._deleted.clear()
        self._dirty = False
        self._collect_garbage()
        return version

    def _write_nodes(
        self, path: Path, files: dict[str, dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stream the live committed lines, then the staged ones, into ``path``; returns the new offset table."""
        ids: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        written = 0
        with HashingWriter(path) as writer:
            if len(self._ids):
                keep = ~np.isin(self._ids, np.fromiter(self._deleted, dtype=np.int64, count=len(self._deleted)))
                with os.fdopen(os.dup(self._nodes_fd), "rb") as source:
                    for start, stop in _runs(keep):
                        begin = int(self._offsets[start])
                        end = int(self._offsets[stop - 1] + self._lengths[stop - 1])
                        source.seek(begin)
                        _copy(source, writer, end - begin)
                        ids.append(self._ids[start:stop])
                        offsets.append(self._offsets[start:stop] - begin + written)
                        lengths.append(self._lengths[start:stop])
                        written += end - begin
            if self._staged:
                self._staging_handle.flush()
                staged_ids = np.fromiter(sorted(self._staged), dtype=np.int64, count=len(self._staged))
                staged_offsets = np.zeros(len(staged_ids), dtype=np.int64)
                staged_lengths = np.zeros(len(staged_ids), dtype=np.int64)
                for position, node_id in enumerate(staged_ids):
                    offset, length = self._staged[int(node_id)]
                    writer.write(os.pread(self._staging_handle.fileno(), length, offset))
                    staged_offsets[position], staged_lengths[position] = written, length
                    written += length
                    if position == len(staged_ids) // 2:
                        crash_point("commit:nodes-half-written")
                ids.append(staged_ids)
                offsets.append(staged_offsets)
                lengths.append(staged_lengths)
            files[NODES_FILE] = writer.close()
        if not ids:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(ids), np.concatenate(offsets), np.concatenate(lengths)

    def _discard_staging(self) -> None:
        if self._staging_handle is not None:
            self._staging_handle.close()
            self._staging_handle = None
        if self._staging_path is not None:
            self._staging_path.unlink(missing_ok=True)
            self._staging_path = None
        self._staged.clear()

    def _remove_orphans(self) -> None:
        """Remove what a crashed writer left (we hold the lock, so no other writer is at work): unfinished
        ``.tmp-*`` folders, and versions renamed into place whose ``CURRENT`` replace never happened."""
        versions = self.path / VERSIONS
        for leftover in versions.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for folder in versions.glob("v-*"):
            if folder.name > f"v-{self.version:06d}":
                shutil.rmtree(folder, ignore_errors=True)
        for staging in self.path.glob("staging-*.jsonl"):
            if staging != self._staging_path:
                staging.unlink(missing_ok=True)

    def _collect_garbage(self) -> None:
        """Remove versions older than the last ``KEEP_VERSIONS``."""
        versions = self.path / VERSIONS
        committed = sorted(p for p in versions.iterdir() if p.name.startswith("v-"))
        for old in committed[:-KEEP_VERSIONS]:
            shutil.rmtree(old, ignore_errors=True)

    # -- closing ---------------------------------------------------------------------------------------

    def close_files(self) -> None:
        if self._nodes_fd is not None:
            os.close(self._nodes_fd)
            self._nodes_fd = None

    def close(self) -> None:
        """Release files and the writer lock; uncommitted changes are discarded."""
        self._discard_staging()
        self.close_files()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges where ``mask`` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return zip(edges[::2].tolist(), edges[1::2].tolist())


def _copy(source: Any, writer: HashingWriter, size: int, block: int = 1 << 20) -> None:
    while size > 0:
        data = source.read(min(block, size))
        if not data:
            raise CorruptIndexError(f"{writer.path}: the previous version's nodes file ended early")
        writer.write(data)
        size -= len(data)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptIndexError(f"{path} is unreadable: {exc}") from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise CorruptIndexError(f"{path} is not valid JSON (truncated or corrupted): {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptIndexError(f"{path} is not a tempscale-index manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(
            f"{path} has format version {manifest.get('format_version')}; this tempscale-index reads "
            f"version {FORMAT_VERSION}"
        )
    missing = {"version", "config", "index_factory", "counts", "next_id", "files"} - set(manifest)
    if missing:
        raise CorruptIndexError(f"{path} lacks {sorted(missing)}")
    return manifest


def _check_file(path: Path, expected: dict[str, Any], verify: bool) -> None:
    size = path.stat().st_size  # FileNotFoundError propagates: the caller may retry on a newer version
    if size != int(expected["bytes"]):
        raise CorruptIndexError(
            f"{path} has {size} bytes but the manifest recorded {expected['bytes']}: the file is "
            + ("truncated" if size < int(expected["bytes"]) else "altered")
            + "; restore it or rebuild the index"
        )
    if verify and sha256_file(path) != expected["sha256"]:
        raise CorruptIndexError(
            f"{path} does not match the SHA-256 in its manifest: the file is corrupted; restore it or rebuild"
        )
