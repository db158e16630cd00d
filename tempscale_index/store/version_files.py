"""The files of one version folder: write them all for a commit, or read and cross-check them on load."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempscale_index.index_config import IndexConfig
from tempscale_index.store.errors import StoreError
from tempscale_index.store.files import crash_point, fsync_path, sha256_file
from tempscale_index.store.manifest import (
    MANIFEST_FILE,
    check_counts,
    check_dimension,
    check_files,
    manifest_config,
    new_manifest,
    read_manifest,
    write_manifest,
)
from tempscale_index.store.node_table import NodeTable
from tempscale_index.store.records import DocumentRecord, read_documents, write_documents
from tempscale_index.store.vector_index import DEFAULT_TRAIN_SIZE, VectorIndex

INDEX_FILE, DOCUMENTS_FILE = "index.faiss", "documents.jsonl"


@dataclass
class LoadedVersion:
    """A committed version read from disk, every file checked against the manifest and the others."""

    manifest: dict[str, Any]
    config: IndexConfig
    vectors: VectorIndex
    nodes: NodeTable
    documents: dict[str, DocumentRecord]


def read_version(root: Path, folder: Path, manifest_sha256: str | None, verify: bool) -> LoadedVersion:
    """Load ``folder``: its manifest (checked against ``manifest_sha256`` from ``CURRENT``), the files' sizes and
    (with ``verify``) hashes, the embedding dimension and the counts. Raises ``CorruptIndexError``."""
    manifest = read_manifest(folder / MANIFEST_FILE, manifest_sha256)
    check_files(folder, manifest, verify)
    config = manifest_config(manifest, folder / MANIFEST_FILE)
    train_size = int(manifest.get("train_size", DEFAULT_TRAIN_SIZE))
    vectors = VectorIndex.read(folder / INDEX_FILE, manifest["index_factory"], train_size)
    check_dimension(folder, config, vectors.dimension)
    nodes = NodeTable(root)
    nodes.load(folder)
    try:
        documents = read_documents(folder / DOCUMENTS_FILE)
        found = {
            "vectors in index.faiss": vectors.ntotal,
            "rows in offsets.npy": nodes.committed_count,
            "node ids of documents.jsonl": sum(len(record.node_ids) for record in documents.values()),
        }
        check_counts(folder, manifest, found, len(documents))
    except BaseException:
        nodes.close()
        raise
    return LoadedVersion(manifest, config, vectors, nodes, documents)


def write_version(
    folder: Path,
    version: int,
    vectors: VectorIndex,
    nodes: NodeTable,
    documents: Iterable[DocumentRecord],
    **facts: Any,
) -> tuple[dict[str, Any], str]:
    """Write every file of ``version`` into ``folder`` (fsynced); returns its manifest and the manifest's hash.
    ``facts``: what the manifest records besides files and counts (config, index factory, chunking…)."""
    files: dict[str, dict[str, Any]] = {}
    vectors.write(folder / INDEX_FILE)
    fsync_path(folder / INDEX_FILE)
    files[INDEX_FILE] = {"bytes": (folder / INDEX_FILE).stat().st_size, "sha256": sha256_file(folder / INDEX_FILE)}
    crash_point("commit:index-written")
    count = nodes.write(folder, files)
    records = list(documents)
    files[DOCUMENTS_FILE] = write_documents(folder / DOCUMENTS_FILE, records)
    if count != vectors.ntotal:
        raise StoreError(f"internal error: {count} nodes but {vectors.ntotal} vectors; nothing committed")
    counts = {"documents": len(records), "nodes": count}
    manifest = new_manifest(version, files, **facts, counts=counts)
    return manifest, write_manifest(folder / MANIFEST_FILE, manifest)
