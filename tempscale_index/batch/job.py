"""The batch indexing job: Ray Data reads and embeds on an actor pool; the driver commits whole documents.

Reading, chunking and embedding scale out over ``workers`` actors (each holding one ``TempScaleEmbedding``);
writing stays on the driver, one commit per group of complete documents, so that the sink's commit record is
the single source of truth for resuming. Actors that die are restarted and their batches retried by Ray Data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
from llama_index.core import Document
from llama_index.core.schema import TextNode
from tqdm.auto import tqdm

from tempscale_index.batch.sinks import BatchSink, EmbeddedDocument
from tempscale_index.batch.sources import read_documents
from tempscale_index.batch.worker import ChunkEmbedWorker
from tempscale_index.chunking import model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.pipeline.ingest import calibrate_on_first_documents

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What one run did: documents and chunks committed, documents skipped as already committed or unreadable."""

    committed_documents: int = 0
    committed_chunks: int = 0
    already_committed: int = 0
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""

    @property
    def chunks_per_second(self) -> float:
        return self.committed_chunks / self.seconds if self.seconds else 0.0


@dataclass
class _PendingDocuments:
    """Chunks arrive in any order and any batch; a document is ready once all its chunks are here."""

    chunks: dict[str, dict[str, tuple[TextNode, np.ndarray]]] = field(default_factory=dict)
    ready: list[EmbeddedDocument] = field(default_factory=list)
    ready_chunks: int = 0

    def add(self, row: dict[str, Any], dimension: int) -> None:
        content_hash, chunk_count = str(row["content_hash"]), int(row["chunk_count"])
        chunks = self.chunks.setdefault(content_hash, {})
        if chunk_count:
            node = TextNode.from_json(str(row["node"]))
            chunks[node.node_id] = (node, row["embedding"])  # keyed by id: a retried batch cannot add a chunk twice
        if len(chunks) < chunk_count:
            return
        del self.chunks[content_hash]
        nodes = [node for node, _ in chunks.values()]
        vectors = np.stack([vector for _, vector in chunks.values()]) if nodes else np.zeros((0, dimension), np.float32)
        metadata = json.loads(str(row["metadata"]))
        self.ready.append(EmbeddedDocument(str(row["doc_id"]), content_hash, metadata, nodes, vectors))
        self.ready_chunks += len(nodes)

    def take(self) -> list[EmbeddedDocument]:
        ready, self.ready, self.ready_chunks = self.ready, [], 0
        return ready


def run_batch_job(
    paths: Sequence[str | Path],
    sink: BatchSink,
    *,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    documents_per_batch: int = 8,
    commit_every: int = 512,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    text_field: str = "text",
    id_field: str = "id",
    address: str | None = None,
    show_progress: bool = True,
) -> BatchReport:
    """Index the documents under ``paths`` into ``sink``, skipping those it already committed.

    ``address`` is a Ray cluster (``"auto"``, ``"ray://head:10001"``); None starts or reuses a local Ray.
    ``commit_every`` is the number of chunks per commit (a crash loses at most that much work).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if commit_every < 1:
        raise ValueError(f"commit_every must be at least 1, got {commit_every}")
    _init_ray(address, workers, cpus_per_worker)
    started = time.perf_counter()
    report = BatchReport()

    committed = sink.committed()
    documents = read_documents(paths, text_field=text_field, id_field=id_field)
    if committed:
        documents = documents.filter(lambda row: row["content_hash"] not in committed)
    chunks = documents.map_batches(
        ChunkEmbedWorker,
        fn_constructor_kwargs={
            "config_json": sink.config.model_dump_json(),
            "chunk_size": chunk_size,
            "chunk_overlap": chunk_overlap,
        },
        batch_size=documents_per_batch,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )  # Ray Data's actor pool restarts a killed worker and retries its batch (max_restarts=-1 by default)

    pending = _PendingDocuments()
    progress = tqdm(desc="Indexing", unit="chunk", disable=not show_progress)
    for batch in chunks.iter_batches(batch_size=None, batch_format="numpy"):
        for position in range(len(batch["content_hash"])):
            row = {column: values[position] for column, values in batch.items()}
            if row["error"]:
                report.unreadable.append(str(row["error"]))
            else:
                pending.add(row, sink.config.dimension)
        if pending.ready_chunks >= commit_every:
            _commit(sink, pending, report, progress)
    _commit(sink, pending, report, progress)
    progress.close()
    if pending.chunks:  # Ray delivered every batch, so this means a worker returned partial documents
        raise RuntimeError(f"{len(pending.chunks)} documents were left incomplete; nothing of them was committed")
    report.already_committed = len(committed)
    report.output = sink.finalize()
    report.seconds = time.perf_counter() - started
    return report


def calibrate_on_driver(
    embedding: TempScaleEmbedding,
    paths: Sequence[str | Path],
    *,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    text_field: str = "text",
    id_field: str = "id",
    address: str | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
) -> None:
    """Decide an 'auto' document τ once, on the driver, before any worker starts: on the chunks of the first
    documents (chunked as the workers will, up to ``AUTO_SAMPLE_CHUNKS``, read lazily); the sink's config then
    carries the choice to every worker."""
    if not embedding.auto_pending:
        return
    _init_ray(address, workers, cpus_per_worker)
    rows = read_documents(paths, text_field=text_field, id_field=id_field).iter_rows()
    documents = (
        Document(id_=row["doc_id"], text=row["text"], metadata=json.loads(row["metadata"]))
        for row in rows
        if not row["error"]
    )
    splitter = model_token_splitter(embedding, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    calibrate_on_first_documents(embedding, documents, splitter)
    logger.info("document τ decided before the workers start: %s", embedding.selection and embedding.selection.reason)


def _init_ray(address: str | None, workers: int, cpus_per_worker: float) -> None:
    if not ray.is_initialized():
        ray.init(address=address, **_local_resources(address, workers, cpus_per_worker))
    ray.data.DataContext.get_current().enable_progress_bars = False


def _local_resources(address: str | None, workers: int, cpus_per_worker: float) -> dict[str, object]:
    """A local Ray gets one logical CPU beyond the workers' for reading and decoding: with every CPU held by an
    embedding actor, Ray Data could not schedule the read tasks that feed them, and the job would stall."""
    options: dict[str, object] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        options["num_cpus"] = int(max(os.cpu_count() or 1, math.ceil(workers * cpus_per_worker))) + 1
    return options


def _commit(sink: BatchSink, pending: _PendingDocuments, report: BatchReport, progress: tqdm) -> None:
    documents = pending.take()
    if not documents:
        return
    sink.commit(documents)
    chunks = sum(len(document.nodes) for document in documents)
    report.committed_documents += len(documents)
    report.committed_chunks += chunks
    progress.update(chunks)
