"""Document records: which chunks (node ids) belong to which ingested document, persisted as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempscale_index.store.errors import CorruptIndexError
from tempscale_index.store.files import HashingWriter


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
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptIndexError(f"{path} line {number} is not a document: {exc}") from None
            documents[record.doc_id] = record
    return documents
