"""Document records: which chunks (node ids) belong to which ingested document, persisted as JSON lines.

A record also holds what metadata filters see, in memory so that a filtered query reads nothing from disk:
``metadata``, what every chunk of the document shares, and ``node_metadata``, each chunk's own values beyond that
(page numbers, section headers, extractor output). Most documents have no per-chunk entries, so filters decide
them once per document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempscale_index.node_metadata import METADATA_KEYS
from tempscale_index.store.errors import CorruptIndexError
from tempscale_index.store.files import HashingWriter

CHUNK_METADATA_FACT = "chunk_metadata"  # in a manifest: its documents.jsonl records each chunk's own metadata
_VALUE_TYPES = (str, int, float)
_MISSING = object()


def filterable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a filter can match: plain values and lists of them; the τ keys the embedding records
    differ per chunk and are left out (they would give every chunk its own entry)."""
    return {key: value for key, value in metadata.items() if key not in METADATA_KEYS and _plain(value)}


def values_signature(metadata: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    """A hashable stand-in for ``metadata``'s values of ``keys`` (absent ones included), telling types apart
    (``1`` and ``1.0`` may filter differently)."""
    return tuple(_signature(metadata.get(key, _MISSING)) for key in keys)


def _signature(value: Any) -> Any:
    if value is _MISSING:
        return ()
    if isinstance(value, list):
        return (list, tuple(_signature(item) for item in value))
    return (type(value), value)


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(item, _VALUE_TYPES) for item in value)
    return isinstance(value, _VALUE_TYPES)


@dataclass
class DocumentRecord:
    """One ingested document: its id, the hash of its text, its chunks' node ids and their metadata."""

    doc_id: str
    content_hash: str
    node_ids: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)
    node_metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    _own_keys: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _groups: dict[tuple[str, ...], dict[tuple[Any, ...], list[int]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def own_keys(self) -> frozenset[str]:
        """Keys some chunk has a value of its own for: a filter on other keys is decided once per document."""
        if self._own_keys is None:
            self._own_keys = frozenset(key for own in self.node_metadata.values() for key in own)
        return self._own_keys

    def groups(self, keys: tuple[str, ...]) -> dict[tuple[Any, ...], list[int]]:
        """The chunks grouped by their own values of ``keys`` (``values_signature``), cached until the next
        change: a filter on per-chunk keys is then decided once per distinct value, not once per chunk."""
        grouped = self._groups.get(keys)
        if grouped is None:
            grouped = {}
            for node_id in self.node_ids:
                own = self.node_metadata.get(node_id, {})
                grouped.setdefault(values_signature(own, keys), []).append(node_id)
            self._groups[keys] = grouped
        return grouped

    def chunk_metadata(self, node_id: int) -> dict[str, Any]:
        """What a filter sees of one chunk (besides the document id)."""
        return {**self.metadata, **self.node_metadata.get(node_id, {})}

    def add_nodes(self, ids: Sequence[int], metadatas: Sequence[Mapping[str, Any]]) -> None:
        """Append chunks with their filterable metadata. Shared keys a new chunk does not share move to the
        older chunks' own entries (once per key), so an append costs the new chunks, not the document."""
        if not self.node_ids and not self.metadata and metadatas:
            first, *rest = metadatas
            self.metadata = {k: v for k, v in first.items() if all(m.get(k, _MISSING) == v for m in rest)}
        elif self.node_ids:
            dropped = {k: v for k, v in self.metadata.items() if any(m.get(k, _MISSING) != v for m in metadatas)}
            if dropped:
                for node_id in self.node_ids:
                    self.node_metadata[node_id] = {**dropped, **self.node_metadata.get(node_id, {})}
                self.metadata = {k: v for k, v in self.metadata.items() if k not in dropped}
        for node_id, metadata in zip(ids, metadatas):
            own = {k: v for k, v in metadata.items() if self.metadata.get(k, _MISSING) != v}
            if own:
                self.node_metadata[int(node_id)] = own
        self.node_ids.extend(int(i) for i in ids)
        self._own_keys = None
        self._groups.clear()

    def remove_nodes(self, ids: set[int]) -> None:
        self.node_ids = [i for i in self.node_ids if i not in ids]
        for node_id in ids:
            self.node_metadata.pop(node_id, None)
        self._groups.clear()

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "doc_id": self.doc_id,
            "hash": self.content_hash,
            "ids": self.node_ids,
            "metadata": self.metadata,
        }
        if self.node_metadata:
            data["node_metadata"] = {str(node_id): values for node_id, values in self.node_metadata.items()}
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> DocumentRecord:
        data = json.loads(line)
        own = {int(node_id): dict(values) for node_id, values in (data.get("node_metadata") or {}).items()}
        return cls(data["doc_id"], data["hash"], [int(i) for i in data["ids"]], data.get("metadata") or {}, own)


def read_chunk_metadata(
    records: Iterable[DocumentRecord], node_dicts: Callable[[list[int]], list[dict[str, Any]]]
) -> None:
    """Give records of a version written before they kept each chunk's own metadata (no ``chunk_metadata`` in its
    manifest; they hold what a document's chunks share only) the chunks' own values, read from the node table, so
    that filters on per-chunk keys do not silently miss them."""
    for record in records:
        ids, record.node_ids, record.node_metadata = record.node_ids, [], {}
        record.add_nodes(ids, [filterable(data.get("metadata") or {}) for data in node_dicts(ids)])


def write_documents(path: Path, records: Iterable[DocumentRecord]) -> dict[str, int | str]:
    """Write one record a line (fsynced); returns the file's manifest entry."""
    with HashingWriter(path) as writer:
        for record in records:
            writer.write(record.to_json().encode("utf-8") + b"\n")
        return writer.close()


def read_documents(path: Path) -> dict[str, DocumentRecord]:
    """The records of ``path`` by document id; a line that is not a record raises ``CorruptIndexError``."""
    documents: dict[str, DocumentRecord] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = DocumentRecord.from_json(line)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise CorruptIndexError(f"{path} line {number} is not a document: {exc}") from None
            documents[record.doc_id] = record
    return documents
