"""Where a batch job commits embedded documents, and how it remembers what it committed.

A commit is whole documents. A document counts as committed only once its chunks are durably written, and
writes are idempotent (chunk ids derive from the content; a document's earlier chunks are replaced), so a rerun
after any crash skips exactly the committed documents, redoes the rest, and duplicates nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from llama_index.core.schema import TextNode

from tempscale_index.connectors.base import VectorStoreConnector
from tempscale_index.index_config import IndexConfig
from tempscale_index.store import DEFAULT_INDEX_FACTORY, FaissStore
from tempscale_index.store.files import fsync_path, write_atomic_text

SHARDS_SUFFIX = ".batch-shards"


def shard_dir_for(index_dir: Path) -> Path:
    """Shards live beside the index (``<index>.batch-shards``): the store only creates an index in an empty or
    new directory, and a half-merged shard must never look like part of the index."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}{SHARDS_SUFFIX}"


SHARD_CONFIG_FILE = "index_config.json"


@dataclass
class EmbeddedDocument:
    """One document's chunks, ready to write: ``vectors`` row i belongs to ``nodes[i]``."""

    doc_id: str
    content_hash: str
    metadata: dict[str, Any]
    nodes: list[TextNode]
    vectors: np.ndarray


class BatchSink(Protocol):
    config: IndexConfig

    def committed(self) -> set[str]:
        """Content hashes of the documents already committed."""

    def commit(self, documents: Sequence[EmbeddedDocument]) -> None:
        """Durably write ``documents`` (replacing earlier versions with the same ids)."""

    def finalize(self) -> str:
        """Finish the job's output; returns a one-line description of it."""


class CommitLedger:
    """An append-only file of committed content hashes, fsynced per commit.

    A crash can tear only the last line; a torn line is ignored, so its documents are redone (idempotently).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> set[str]:
        if not self.path.exists():
            return set()
        hashes: set[str] = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                hashes.update(json.loads(line))
            except json.JSONDecodeError:
                continue
        return hashes

    def append(self, content_hashes: Sequence[str]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(list(content_hashes)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class ConnectorSink:
    """Commits into a vector database: replace the documents' chunks, then log their hashes in a ledger file."""

    def __init__(self, connector: VectorStoreConnector, ledger_path: Path) -> None:
        self.connector = connector
        self.config = connector.embedding.index_config()
        self.ledger = CommitLedger(ledger_path)

    def committed(self) -> set[str]:
        return self.ledger.read()

    def commit(self, documents: Sequence[EmbeddedDocument]) -> None:
        nodes = []
        for document in documents:
            self.connector.delete_document(document.doc_id)  # an earlier version of a changed document
            for node, vector in zip(document.nodes, document.vectors):
                node.embedding = vector.tolist()
                nodes.append(node)
        self.connector.add_nodes(nodes)
        self.ledger.append([document.content_hash for document in documents])

    def finalize(self) -> str:
        return self.connector.describe()


class FaissShardSink:
    """Commits each group of documents as one shard directory; ``finalize`` merges the shards into the
    :class:`FaissStore` at ``out_dir`` in a single atomic commit.

    Writing the store on every commit would rewrite the whole index each time; a shard is written once, under a
    temporary name renamed into place, so it exists whole or not at all and is its own commit record.
    """

    def __init__(self, out_dir: Path, config: IndexConfig, index_factory: str = DEFAULT_INDEX_FACTORY) -> None:
        self.out_dir = Path(out_dir)
        self.shard_dir = shard_dir_for(self.out_dir)
        self.index_factory = index_factory
        if FaissStore.exists(self.out_dir):
            stored = IndexConfig.from_manifest(FaissStore.read_manifest(self.out_dir))
            stored.ensure_matches(config, where=f"the index at {self.out_dir}")
        config_file = self.shard_dir / SHARD_CONFIG_FILE
        if config_file.exists():
            IndexConfig.model_validate_json(config_file.read_text()).ensure_matches(config, where=str(self.shard_dir))
        self.config = config

    def _shards(self) -> list[Path]:
        if not self.shard_dir.is_dir():
            return []
        return sorted(path for path in self.shard_dir.glob("shard-*") if path.is_dir())

    def committed(self) -> set[str]:
        hashes = {document["content_hash"] for shard in self._shards() for document in _shard_documents(shard)}
        if FaissStore.exists(self.out_dir):
            store = FaissStore.open(self.out_dir, self.config, verify=False)
            try:
                hashes.update(record.content_hash for record in store.documents.values())
            finally:
                store.close()
        return hashes

    def commit(self, documents: Sequence[EmbeddedDocument]) -> None:
        if not self.shard_dir.is_dir():  # the first commit since the last merge
            self.shard_dir.mkdir(parents=True)
            write_atomic_text(self.shard_dir / SHARD_CONFIG_FILE, self.config.model_dump_json(indent=2))
        shards = self._shards()
        number = int(shards[-1].name.removeprefix("shard-")) + 1 if shards else 0
        staging = self.shard_dir / f".staging-{number:06d}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        vectors = [document.vectors for document in documents if len(document.nodes)]
        dimension = self.config.dimension
        np.save(staging / "vectors.npy", np.concatenate(vectors) if vectors else np.zeros((0, dimension), np.float32))
        with open(staging / "documents.jsonl", "w", encoding="utf-8") as handle:
            for document in documents:
                record = {
                    "doc_id": document.doc_id,
                    "content_hash": document.content_hash,
                    "metadata": document.metadata,
                    "nodes": [node.to_dict() for node in document.nodes],
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        for file in staging.iterdir():
            fsync_path(file)
        os.rename(staging, self.shard_dir / f"shard-{number:06d}")
        fsync_path(self.shard_dir)

    def _read_shards(self) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
        for shard in self._shards():
            yield _shard_documents(shard), np.load(shard / "vectors.npy", allow_pickle=False)

    def finalize(self) -> str:
        """Add every shard's documents to the store (skipping those it already holds), commit, drop the shards."""
        store = FaissStore.open(self.out_dir, self.config, writable=True, create=True, index_factory=self.index_factory)
        try:
            for documents, vectors in self._read_shards():
                row = 0
                for document in documents:
                    count = len(document["nodes"])
                    existing = store.documents.get(document["doc_id"])
                    if existing is None or existing.content_hash != document["content_hash"]:
                        nodes = [TextNode.from_dict(data) for data in document["nodes"]]
                        store.add(
                            document["doc_id"],
                            document["content_hash"],
                            nodes,
                            vectors[row : row + count],
                            document["metadata"],
                        )
                    row += count
            version = store.commit()
            summary = (
                f"FAISS index {self.out_dir}: {store.num_documents} documents, {store.num_nodes} chunks "
                f"(version {version})"
            )
        finally:
            store.close()
        shutil.rmtree(self.shard_dir, ignore_errors=True)  # everything in them is committed in the store now
        return summary


def _shard_documents(shard: Path) -> list[dict[str, Any]]:
    lines = (shard / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]
