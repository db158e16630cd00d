"""Ingestion: documents → model-token chunks → TempScale vectors (document τ per chunk) → a committed FAISS store.

Streams: documents are read, chunked, embedded and added a batch at a time, so memory holds one batch of texts
and vectors however large the corpus (the FAISS index itself grows, as it must). Re-ingesting an unchanged
document is a no-op (SHA-256 of its text); a changed one replaces its old chunks; nothing is visible to readers
until the commit at the end (or every ``commit_every`` documents).
"""

from __future__ import annotations

import os
import time
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain, groupby
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.schema import BaseNode
from tqdm.auto import tqdm

from tempscale_index.chunking import chunk_nodes, chunk_token_budget, embed_chunk_nodes, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.index_config import IndexConfig
from tempscale_index.node_metadata import embedded_text
from tempscale_index.pipeline.readers import ReadReport, SkippedFile, iter_file_documents, list_files
from tempscale_index.serving.query_encoder import prepare_query_path
from tempscale_index.store import FaissStore, content_hash

DEFAULT_CHUNK_OVERLAP = 32
DEFAULT_BATCH_CHUNKS = 256
AUTO_SAMPLE_CHUNKS = 4096  # 'auto' decides a new index's document τ on the chunks of its first documents, this many


class EmptyCorpusError(ValueError):
    """Nothing with text was found to ingest."""


@dataclass
class IngestReport:
    """What one ingest run did, and what the index holds after it."""

    index_dir: str
    documents_seen: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    empty: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    skipped_files: list[SkippedFile] = field(default_factory=list)
    version: int = 0
    documents_total: int = 0
    chunks_total: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        skipped = f"; skipped {len(self.skipped_files)} unreadable file(s)" if self.skipped_files else ""
        return (
            f"{self.documents_seen} documents: {self.added} added, {self.replaced} replaced, {self.unchanged} "
            f"unchanged, {self.empty} empty; {self.chunks_added} chunks embedded, {self.chunks_removed} removed"
            f"{skipped}. {self.index_dir} holds {self.documents_total} documents, {self.chunks_total} chunks "
            f"(version {self.version}) [{self.seconds:.1f}s]"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending:
    doc_id: str
    content_hash: str
    metadata: dict[str, Any]
    nodes: list[BaseNode]
    replaces: bool


class FaissIngestor:
    """Chunk, embed and add documents to a writable :class:`FaissStore`, then commit (named apart from
    LlamaIndex's ``IngestionPipeline``, which chains transformations; this one feeds one store)."""

    def __init__(
        self,
        store: FaissStore,
        embedding: TempScaleEmbedding,
        *,
        chunk_size: int | None = None,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        batch_chunks: int = DEFAULT_BATCH_CHUNKS,
        commit_every: int | None = None,
        show_progress: bool = False,
    ) -> None:
        if not store.writable:
            raise ValueError("FaissIngestor needs a store opened with writable=True")
        embedding.match_index(store.config, where=f"the index at {store.path}")
        if batch_chunks <= 0:
            raise ValueError(f"batch_chunks must be positive, got {batch_chunks}")
        if commit_every is not None and commit_every <= 0:
            raise ValueError(f"commit_every must be positive, got {commit_every}")
        self.store = store
        self.embedding = embedding
        self.splitter = model_token_splitter(embedding, chunk_size, chunk_overlap)
        self.batch_chunks = batch_chunks
        self.commit_every = commit_every
        self.show_progress = show_progress

    def run(
        self, documents: Iterable[Document], total: int | None = None, report: IngestReport | None = None
    ) -> IngestReport:
        """Ingest ``documents`` (consecutive parts with the same ``doc_id`` form one document) and commit."""
        started = time.time()
        report = report or IngestReport(index_dir=str(self.store.path))
        batch: list[_Pending] = []
        batch_size = since_commit = 0
        progress = tqdm(total=total, desc="Ingesting", unit="doc", disable=not self.show_progress)
        try:
            for doc_id, parts in _group_parts(documents):
                progress.update(1)
                report.documents_seen += 1
                since_commit += 1
                pending = self._prepare(doc_id, parts, report)
                if pending is not None:
                    batch.append(pending)
                    batch_size += len(pending.nodes)
                if batch_size >= self.batch_chunks:
                    self._flush(batch, report)
                    batch, batch_size = [], 0
                    progress.set_postfix(chunks=report.chunks_added, refresh=False)
                if self.commit_every and since_commit >= self.commit_every:
                    self._flush(batch, report)
                    batch, batch_size, since_commit = [], 0, 0
                    self.store.commit()
            self._flush(batch, report)
            report.version = self.store.commit()
        finally:
            progress.close()
        report.documents_total = self.store.num_documents
        report.chunks_total = self.store.num_nodes
        report.seconds = time.time() - started
        return report

    def _prepare(self, doc_id: str, parts: list[Document], report: IngestReport) -> _Pending | None:
        digest = content_hash(doc_id, [part.text for part in parts])
        existing = self.store.documents.get(doc_id)
        if existing is not None and existing.content_hash == digest:
            report.unchanged += 1
            return None
        if not any(part.text.strip() for part in parts):
            report.empty += 1
            if existing is not None:  # the document lost its text: drop its old chunks
                report.chunks_removed += self.store.delete(doc_id)
            return None
        nodes = self._split(parts)
        metadata = {key: value for key, value in parts[0].metadata.items() if isinstance(value, (str, int, float))}
        return _Pending(doc_id, digest, metadata, list(nodes), existing is not None)

    def _split(self, parts: list[Document]) -> list[BaseNode]:
        """Chunks of each part in turn, numbered across the parts (so two equal pages get different ids)."""
        nodes: list[BaseNode] = []
        for part in parts:
            nodes.extend(chunk_nodes(self.splitter, part, first_position=len(nodes)))
        return nodes

    def _flush(self, batch: list[_Pending], report: IngestReport) -> None:
        if not batch:
            return
        vectors = embed_chunk_nodes(self.embedding, [node for pending in batch for node in pending.nodes])
        start = 0
        for pending in batch:
            stop = start + len(pending.nodes)
            if pending.replaces and pending.doc_id in self.store.documents:
                report.chunks_removed += len(self.store.documents[pending.doc_id].node_ids)
                report.replaced += 1
            else:
                report.added += 1
            self.store.add(pending.doc_id, pending.content_hash, pending.nodes, vectors[start:stop], pending.metadata)
            report.chunks_added += len(pending.nodes)
            start = stop


def calibrate_on_first_documents(
    embedding: TempScaleEmbedding, documents: Iterable[Document], splitter: Any
) -> Iterator[Document]:
    """Decide 'auto' on the chunks of the first documents (until ``AUTO_SAMPLE_CHUNKS``), before any batch is
    embedded; returns all the documents, the sampled ones included, still to be ingested. When even that
    sample is too little to decide (a small corpus), τ = 1 is settled for the index, saying why."""
    remaining = iter(documents)
    head: list[Document] = []
    sample: list[BaseNode] = []
    for document in remaining:
        head.append(document)
        sample.extend(chunk_nodes(splitter, document))
        if len(sample) >= AUTO_SAMPLE_CHUNKS:
            break
    texts = [embedded_text(node) for node in sample]  # as embed_chunk_nodes embeds them
    embedding.resolve_document_schedule(texts, [node.ref_doc_id or node.node_id for node in sample])
    if texts and embedding.auto_pending:
        embedding.settle_pending()
    return chain(head, remaining)


def _group_parts(documents: Iterable[Document]) -> Iterator[tuple[str, list[Document]]]:
    for doc_id, parts in groupby(documents, key=lambda document: document.doc_id):
        yield doc_id, list(parts)


def resolve_chunking(
    embedding: TempScaleEmbedding, stored: dict[str, Any], chunk_size: int | None, chunk_overlap: int | None
) -> dict[str, int]:
    """The chunking to use: the index's own when it has one (asking for another is an error), else the given
    values or the defaults (the model's whole window, 32 tokens of overlap)."""
    if stored:
        for name, asked in (("chunk_size", chunk_size), ("chunk_overlap", chunk_overlap)):
            if asked is not None and int(asked) != int(stored[name]):
                raise ValueError(
                    f"this index was chunked with {name}={stored[name]}; re-ingesting with {name}={asked} "
                    "would mix chunkings (leave it out, or ingest into a new directory)"
                )
        return {"chunk_size": int(stored["chunk_size"]), "chunk_overlap": int(stored["chunk_overlap"])}
    size = chunk_token_budget(embedding) if chunk_size is None else int(chunk_size)
    overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else int(chunk_overlap)
    return {"chunk_size": size, "chunk_overlap": min(overlap, size - 1) if chunk_overlap is None else overlap}


def ingest(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Iterable[Document],
    index_dir: str | os.PathLike[str],
    embedding: TempScaleEmbedding | None = None,
    *,
    index_factory: str | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    batch_chunks: int = DEFAULT_BATCH_CHUNKS,
    commit_every: int | None = None,
    train_size: int | None = None,
    recursive: bool = True,
    extensions: Iterable[str] | None = None,
    show_progress: bool = False,
    lock_timeout: float = 10.0,
    total: int | None = None,
    report: IngestReport | None = None,
) -> IngestReport:
    """Ingest files, folders or ``Document``s into the index at ``index_dir``, creating it if needed.

    ``embedding`` defaults to the index's own configuration (or, for a new index, ``TempScaleEmbedding()``);
    an embedding that differs from an existing index's raises ``IndexConfigMismatchError``. ``index_factory`` is
    a FAISS index_factory string (default ``Flat``: exact inner product); types that need training are trained on
    the first ``train_size`` chunks. Raises ``EmptyCorpusError`` when nothing with text was found, and
    ``FileNotFoundError`` for a missing path; unreadable files are skipped with a warning and counted.
    """
    report = report or IngestReport(index_dir=str(index_dir))
    if _is_paths(source):
        documents, total = documents_from_paths(_as_paths(source), recursive, extensions, report)
    else:
        documents = [source] if isinstance(source, Document) else source
        total = total if total is not None else (len(documents) if isinstance(documents, Sequence) else None)
    if embedding is None:
        embedding = (
            TempScaleEmbedding.from_index_config(IndexConfig.from_manifest(FaissStore.read_manifest(index_dir)))
            if FaissStore.exists(index_dir)
            else TempScaleEmbedding()
        )
    if FaissStore.exists(index_dir):  # an existing index keeps its recorded schedule
        embedding.match_index(
            IndexConfig.from_manifest(FaissStore.read_manifest(index_dir)), where=f"the index at {index_dir}"
        )
    elif embedding.auto_pending:
        splitter = model_token_splitter(embedding, **resolve_chunking(embedding, {}, chunk_size, chunk_overlap))
        documents = calibrate_on_first_documents(embedding, documents, splitter)
        if embedding.auto_pending:  # not one chunk of text anywhere: nothing to decide from, nothing to index
            raise EmptyCorpusError(_no_text_message(source, report))
    config = embedding.index_config()
    extra = {} if train_size is None else {"train_size": train_size}
    with FaissStore.open(
        index_dir,
        config,
        writable=True,
        create=True,
        index_factory=index_factory,
        lock_timeout=lock_timeout,
        **extra,
    ) as store:
        chunking = resolve_chunking(embedding, store.chunking, chunk_size, chunk_overlap)
        store.chunking = chunking
        pipeline = FaissIngestor(
            store,
            embedding,
            batch_chunks=batch_chunks,
            commit_every=commit_every,
            show_progress=show_progress,
            **chunking,
        )
        pipeline.run(documents, total=total, report=report)
    if report.documents_seen == report.empty:
        raise EmptyCorpusError(_no_text_message(source, report))
    prepare_query_path(embedding)  # the first query then starts as fast as every later one
    return report


def _no_text_message(source: Any, report: IngestReport) -> str:
    where = ", ".join(str(p) for p in _as_paths(source)) if _is_paths(source) else "the documents given"
    skipped = f" ({len(report.skipped_files)} unreadable file(s) skipped)" if report.skipped_files else ""
    return f"no text to ingest in {where}{skipped}"


def delete_documents(
    index_dir: str | os.PathLike[str], doc_ids: Iterable[str], lock_timeout: float = 10.0
) -> tuple[int, int]:
    """Delete documents by id and commit. A file's path counts as its id when it resolves to one, as at ingest
    (``docs/old.md`` from where it was ingested). Returns (chunks removed, committed version); raises KeyError,
    before changing anything, if an id is not in the index."""
    with FaissStore.open(index_dir, writable=True, lock_timeout=lock_timeout) as store:
        doc_ids = list(dict.fromkeys(_stored_id(doc_id, store.documents) for doc_id in doc_ids))
        missing = [doc_id for doc_id in doc_ids if doc_id not in store.documents]
        if missing:
            raise KeyError(
                f"no document with id {missing[0]!r} in the index at {index_dir}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; `tempscale-index info {index_dir} --documents` lists the ids"
            )
        removed = sum(store.delete(doc_id) for doc_id in doc_ids)
        return removed, store.commit()


def _stored_id(doc_id: str, documents: Container[str]) -> str:
    """``doc_id`` itself when stored, else the id ingest gave the file at that path (its resolved path)."""
    if doc_id in documents:
        return doc_id
    resolved = str(Path(doc_id).expanduser().resolve())
    return resolved if resolved in documents else doc_id


def _is_paths(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and all(isinstance(item, (str, os.PathLike)) for item in source)


def _as_paths(source: Any) -> list[Path]:
    return [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(item) for item in source]


def documents_from_paths(
    paths: Iterable[str | os.PathLike[str]],
    recursive: bool = True,
    extensions: Iterable[str] | None = None,
    report: IngestReport | None = None,
) -> tuple[Iterator[Document], int]:
    """The documents of the files under ``paths`` (read lazily) and how many files there are; unreadable files
    are skipped, warned about and listed in ``report.skipped_files``. Raises FileNotFoundError for a missing path."""
    files = list_files(paths, recursive=recursive, extensions=extensions)
    read = ReadReport(skipped=report.skipped_files if report is not None else [])
    return iter_file_documents(files, read), len(files)
