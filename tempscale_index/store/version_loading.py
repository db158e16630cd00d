"""Loading a committed version into a ``FaissStore``: the version ``CURRENT`` names (or a newer one, when a writer
commits and collects meanwhile), checked against the caller's embedding and index type, and a reader's refresh.

A mixin, so the facade keeps to opening, reading and writing: it sets the attributes ``FaissStore.__init__``
declares (``manifest``, ``config``, ``vectors``, ``nodes``, ``documents``, ``version``…).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tempscale_index.store import versions
from tempscale_index.store.errors import CorruptIndexError, StoreError
from tempscale_index.store.records import CHUNK_METADATA_FACT
from tempscale_index.store.version_files import read_version

if TYPE_CHECKING:
    from pathlib import Path

    from filelock import FileLock

    from tempscale_index.index_config import IndexConfig
    from tempscale_index.store.node_table import NodeTable
    from tempscale_index.store.records import DocumentRecord
    from tempscale_index.store.vector_index import VectorIndex

logger = logging.getLogger(__name__)


class VersionLoading:
    """``FaissStore``'s loading of committed versions."""

    path: Path
    manifest: dict[str, Any]
    config: IndexConfig
    vectors: VectorIndex
    nodes: NodeTable
    documents: dict[str, DocumentRecord]
    chunking: dict[str, Any]
    version: int
    version_name: str | None
    index_factory: str
    _lock: FileLock | None
    _created_root: bool | None
    _failed_pointer: str | None
    _chunk_metadata_read: bool
    _next_id: int

    def _open_existing(self, config: IndexConfig | None, index_factory: str | None, verify: bool) -> None:
        self._created_root = None
        self._load_current(verify)
        if config is not None:
            self.config.ensure_matches(config, where=f"the index at {self.path}")
        if index_factory is not None and index_factory.strip() != self.index_factory:
            raise ValueError(
                f"the index at {self.path} is a {self.index_factory!r} index; it cannot be extended "
                f"as {index_factory!r} (leave the index type out, or ingest into a new directory)"
            )

    def _load_current(self, verify: bool, attempts: int = 5) -> None:
        """Load the version ``CURRENT`` names; if a newer commit removed it meanwhile, load the newer one. A
        writer that had to recover a lost ``CURRENT`` writes it back."""
        for attempt in range(attempts):
            pointer = versions.read_pointer(self.path)
            try:
                self._load_version(pointer, verify)
                break
            except (FileNotFoundError, CorruptIndexError):
                if attempt + 1 < attempts and versions.read_pointer(self.path).name != pointer.name:
                    continue  # a writer committed (and cleaned up) while we were loading: take the new version
                raise
        if pointer.recovered and self._lock is not None:
            versions.write_pointer(self.path, pointer.name, pointer.manifest_sha256)
            logger.warning("rewrote %s to name %s", self.path / versions.CURRENT, pointer.name)

    def _load_version(self, pointer: versions.Pointer, verify: bool) -> None:
        loaded = read_version(self.path, self.path / versions.VERSIONS / pointer.name, pointer.manifest_sha256, verify)
        self.nodes.close()
        self.manifest, self.config, self.vectors = loaded.manifest, loaded.config, loaded.vectors
        self.nodes, self.documents = loaded.nodes, loaded.documents
        self.chunking = self.manifest.get("chunking", {})
        self.version, self.version_name = int(self.manifest["version"]), pointer.name
        self._chunk_metadata_read = bool(self.manifest.get(CHUNK_METADATA_FACT))
        self._next_id = int(self.manifest["next_id"])

    def refresh(self, verify: bool = True) -> bool:
        """Read-only stores: switch to the newest committed version if there is one. Returns whether it did. A
        version that fails to load raises once; it is not verified again (a full check per query or batch would
        halve a server's throughput) until ``CURRENT`` changes."""
        if self._lock is not None:
            raise StoreError("a writer sees its own changes; refresh() is for readers")
        pointer = versions.pointer_text(self.path)
        failed_before = pointer is not None and pointer == self._failed_pointer
        if failed_before or versions.latest_name(self.path) == self.version_name:
            return False  # cheap: refresh runs before every query
        tuning = (self.vectors.nprobe, self.vectors.ef_search)
        try:
            self._load_current(verify)
        except Exception:
            self._failed_pointer = pointer
            raise
        self.vectors.tune(*tuning)
        return True
