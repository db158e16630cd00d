"""Where each node's text and metadata live: a line of the committed ``nodes.jsonl`` or of a writer's staging file.

``offsets.npy`` (int64 ``[n, 3]``: node id, byte offset, byte length, sorted by id) lets a reader fetch any node
with one ``pread`` without loading the file. A writer appends new nodes to ``staging-*.jsonl`` beside the
versions; a commit streams the live committed lines and the staged ones into the new version's files.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tempscale_index.store.errors import CorruptIndexError
from tempscale_index.store.files import HashingWriter, crash_point

NODES_FILE, OFFSETS_FILE = "nodes.jsonl", "offsets.npy"
STAGING_GLOB = "staging-*.jsonl"
Columns = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]  # ids, offsets, lengths


class NodeTable:
    """The node lines of one committed version, plus the lines a writer staged and the ones it deleted."""

    def __init__(self, root: Path) -> None:
        self.root = root  # the index directory: staging files live there
        self.ids = np.zeros(0, dtype=np.int64)
        self.offsets = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.int64)
        self._fd: int | None = None
        self._deleted: set[int] = set()
        self._staged: dict[int, tuple[int, int]] = {}
        self._staging_path: Path | None = None
        self._staging: BinaryIO | None = None
        self._staging_size = 0
        self._written: tuple[np.ndarray, ...] = ()  # the table write() produced, adopted by commit()

    def load(self, folder: Path) -> None:
        """Adopt a committed version's offsets table and keep its nodes file open (a later commit may remove
        the folder; the open file stays readable)."""
        try:
            table = np.load(folder / OFFSETS_FILE, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise CorruptIndexError(f"{folder / OFFSETS_FILE} is unreadable: {exc}") from None
        if table.ndim != 2 or table.shape[1] != 3 or table.dtype != np.int64:
            raise CorruptIndexError(f"{folder / OFFSETS_FILE} is not an int64 [n, 3] table (shape {table.shape})")
        self._adopt(folder, *(np.ascontiguousarray(table[:, column]) for column in range(3)))

    def _adopt(self, folder: Path, ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        self.close()
        self._fd = os.open(folder / NODES_FILE, os.O_RDONLY)
        self.ids, self.offsets, self.lengths = ids, offsets, lengths
        self._deleted.clear()

    @property
    def committed_count(self) -> int:
        return len(self.ids)

    # -- writer ------------------------------------------------------------------------------------------

    def stage(self, node_id: int, node: dict[str, Any]) -> None:
        """Append a node (its ``to_dict()``, vector left out) to this writer's staging file."""
        if self._staging is None:
            self._staging_path = self.root / f"staging-{uuid.uuid4().hex}.jsonl"
            self._staging = open(self._staging_path, "w+b")  # noqa: SIM115 - closed in discard_staging()
            self._staging_size = 0
        data = json.dumps({"id": node_id, "node": node}, ensure_ascii=False).encode("utf-8") + b"\n"
        self._staging.write(data)
        self._staged[node_id] = (self._staging_size, len(data))
        self._staging_size += len(data)

    def remove(self, node_ids: Sequence[int]) -> None:
        for node_id in node_ids:
            if self._staged.pop(int(node_id), None) is None:
                self._deleted.add(int(node_id))

    def remove_stale_staging(self) -> None:
        """Delete staging files a crashed writer left (the caller holds the writer lock)."""
        for staging in self.root.glob(STAGING_GLOB):
            if staging != self._staging_path:
                staging.unlink(missing_ok=True)

    def write(self, folder: Path, files: dict[str, dict[str, Any]]) -> int:
        """Write the live nodes and their offsets table into ``folder`` (fsynced); returns how many, and adds
        both files' manifest entries to ``files``. The table is kept for :meth:`commit`."""
        columns: Columns = ([], [], [])
        with HashingWriter(folder / NODES_FILE) as writer:
            written = self._copy_committed(writer, columns)
            self._copy_staged(writer, written, columns)
            files[NODES_FILE] = writer.close()
        self._written = tuple(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64) for parts in columns)
        with HashingWriter(folder / OFFSETS_FILE) as writer:
            np.save(writer, np.stack(self._written, axis=1), allow_pickle=False)
            files[OFFSETS_FILE] = writer.close()
        return len(self._written[0])

    def commit(self, folder: Path) -> None:
        """The version in ``folder`` (written by :meth:`write`) is committed: read from it, drop the staging."""
        self._adopt(folder, *self._written)
        self.discard_staging()

    def _copy_committed(self, writer: HashingWriter, columns: Columns) -> int:
        """Copy runs of live committed lines, appending (ids, new offsets, lengths); returns the bytes written."""
        written = 0
        if not len(self.ids):
            return written
        deleted = np.fromiter(self._deleted, dtype=np.int64, count=len(self._deleted))
        with os.fdopen(os.dup(self._fd), "rb") as source:
            for start, stop in _runs(~np.isin(self.ids, deleted)):
                begin = int(self.offsets[start])
                end = int(self.offsets[stop - 1] + self.lengths[stop - 1])
                source.seek(begin)
                _copy(source, writer, end - begin)
                for column, values in zip(columns, (self.ids, self.offsets - begin + written, self.lengths)):
                    column.append(values[start:stop])
                written += end - begin
        return written

    def _copy_staged(self, writer: HashingWriter, written: int, columns: Columns) -> None:
        """Copy the staged lines (by id) after the committed ones, which took ``written`` bytes."""
        if not self._staged:
            return
        self._staging.flush()
        ids = np.fromiter(sorted(self._staged), dtype=np.int64, count=len(self._staged))
        offsets = np.zeros(len(ids), dtype=np.int64)
        lengths = np.zeros(len(ids), dtype=np.int64)
        for position, node_id in enumerate(ids.tolist()):
            offset, length = self._staged[node_id]
            writer.write(os.pread(self._staging.fileno(), length, offset))
            offsets[position], lengths[position] = written, length
            written += length
            if position == len(ids) // 2:
                crash_point("commit:nodes-half-written")
        for column, values in zip(columns, (ids, offsets, lengths)):
            column.append(values)

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, ids: Sequence[int], where: Path) -> list[dict[str, Any]]:
        """The stored node dict of each id (committed, or staged by this writer); ``KeyError`` if absent."""
        out = []
        for node_id in (int(i) for i in ids):
            raw = self._raw_line(node_id, where)
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise CorruptIndexError(f"node {node_id} of {where} is unreadable: {exc}") from None
            if record.get("id") != node_id:
                raise CorruptIndexError(f"node {node_id} of {where}: offsets point at node {record.get('id')}")
            out.append(record["node"])
        return out

    def _raw_line(self, node_id: int, where: Path) -> bytes:
        if node_id in self._staged:
            offset, length = self._staged[node_id]
            self._staging.flush()
            return os.pread(self._staging.fileno(), length, offset)
        position = int(np.searchsorted(self.ids, node_id))
        if position >= len(self.ids) or self.ids[position] != node_id or node_id in self._deleted:
            raise KeyError(f"node id {node_id} is not in the index at {where}")
        return os.pread(self._fd, int(self.lengths[position]), int(self.offsets[position]))

    # -- closing -----------------------------------------------------------------------------------------

    def discard_staging(self) -> None:
        if self._staging is not None:
            self._staging.close()
            self._staging = None
        if self._staging_path is not None:
            self._staging_path.unlink(missing_ok=True)
            self._staging_path = None
        self._staged.clear()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges where ``mask`` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return zip(edges[::2].tolist(), edges[1::2].tolist())


def _copy(source: BinaryIO, writer: HashingWriter, size: int, block: int = 1 << 20) -> None:
    while size > 0:
        data = source.read(min(block, size))
        if not data:
            raise CorruptIndexError(f"{writer.path}: the previous version's nodes file ended early")
        writer.write(data)
        size -= len(data)


def node_dict(node: Any) -> dict[str, Any]:
    """What a node line stores of a LlamaIndex node: its JSON dump with its class name, vector left out (the
    FAISS index holds it)."""
    return {**node.model_dump(mode="json"), "class_name": node.class_name(), "embedding": None}


def node_from_dict(data: dict[str, Any]) -> Any:
    """The node a line stores, of its own class (``TextNode``, ``ImageNode``, ``IndexNode``), through LlamaIndex's
    ``metadata_dict_to_node``, the class dispatch its vector stores share."""
    from llama_index.core.vector_stores.utils import metadata_dict_to_node

    content = json.dumps(data, ensure_ascii=False)
    return metadata_dict_to_node({"_node_content": content, "_node_type": data.get("class_name")})
