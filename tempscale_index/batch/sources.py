"""Inputs of a batch job as one Ray Dataset of documents: text files, JSON Lines and Parquet.

Every document row has the same columns — ``doc_id``, ``text``, ``metadata`` (JSON), ``content_hash`` and
``error`` (empty unless the row could not be read) — so that the job can resume by content hash and count
unreadable inputs instead of dying on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray.data

from tempscale_index.store import content_hash

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
DOCUMENT_COLUMNS = ("doc_id", "text", "metadata", "content_hash", "error")


def expand_paths(paths: Iterable[str | Path]) -> dict[str, list[str]]:
    """Input files grouped by reader (``text``, ``jsonl``, ``parquet``); directories are walked recursively."""
    groups: dict[str, list[str]] = {"text": [], "jsonl": [], "parquet": []}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"input path {str(raw)!r} does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            suffix = file.suffix.lower()
            if suffix in JSONL_SUFFIXES:
                groups["jsonl"].append(str(file.resolve()))
            elif suffix in PARQUET_SUFFIXES:
                groups["parquet"].append(str(file.resolve()))
            elif suffix in TEXT_SUFFIXES or file == path:  # a file named explicitly is read as text
                groups["text"].append(str(file.resolve()))
    if not any(groups.values()):
        raise ValueError(
            f"no input files found in {[str(p) for p in paths]}: expected {', '.join(TEXT_SUFFIXES)} text files, "
            f"{', '.join(JSONL_SUFFIXES)} JSON Lines or {', '.join(PARQUET_SUFFIXES)} Parquet"
        )
    return groups


def read_documents(paths: Sequence[str | Path], text_field: str = "text", id_field: str = "id") -> ray.data.Dataset:
    """All documents under ``paths``; JSONL/Parquet records take their text from ``text_field`` and their id
    from ``id_field`` (else the hash of their text), other scalar fields become metadata."""
    groups = expand_paths(paths)
    datasets = []
    if groups["text"]:
        files = ray.data.read_binary_files(groups["text"], include_paths=True)
        datasets.append(files.map(_text_file_document))
    record_fields = {"text_field": text_field, "id_field": id_field}
    if groups["jsonl"]:
        records = ray.data.read_json(groups["jsonl"], lines=True, include_paths=True, file_extensions=None)
        datasets.append(records.map(_record_document, fn_kwargs=record_fields))
    if groups["parquet"]:
        records = ray.data.read_parquet(groups["parquet"], include_paths=True, file_extensions=None)
        datasets.append(records.map(_record_document, fn_kwargs=record_fields))
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]


def _document(doc_id: str, text: str, metadata: dict[str, Any], error: str = "") -> dict[str, str]:
    metadata_json = json.dumps(metadata, sort_keys=True)
    return {
        "doc_id": doc_id,
        "text": text,
        "metadata": metadata_json,
        "content_hash": content_hash(doc_id, [text]),
        "error": error,
    }


def _text_file_document(row: dict[str, Any]) -> dict[str, str]:
    path = row["path"]
    metadata = {"file_path": path, "file_name": Path(path).name}
    try:
        text = bytes(row["bytes"]).decode("utf-8")
    except UnicodeDecodeError as exc:
        return _document(path, "", metadata, error=f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    return _document(path, text, metadata)


def _record_document(row: dict[str, Any], text_field: str, id_field: str) -> dict[str, str]:
    path = row.pop("path", "")
    text = row.pop(text_field, None)
    doc_id = row.pop(id_field, None)
    scalars = {key: value.item() if isinstance(value, np.generic) else value for key, value in row.items()}
    metadata = {key: value for key, value in scalars.items() if isinstance(value, (str, int, float, bool))}
    metadata["file_path"], metadata["file_name"] = path, Path(path).name
    if not isinstance(text, str):
        found = type(text).__name__ if text is not None else "no such field"
        error = f"{path}: record has no string {text_field!r} ({found})"
        return _document(str(doc_id or ""), "", metadata, error=error)
    doc_id = str(doc_id) if doc_id is not None else hashlib.sha256(text.encode()).hexdigest()[:32]
    return _document(doc_id, text, metadata)
