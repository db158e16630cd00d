"""Dense retrieval evaluation with the embedding itself, built for τ grids.

A corpus is chunked once with the model's own token splitter. Chunk vectors depend only on the document schedule
and query vectors only on the query schedule, so both are cached per schedule (in memory, and on disk when a
cache folder is given): a grid of Q query schedules by D document schedules embeds the corpus D times and the
queries Q times, not Q·D times. A length-dependent schedule reuses the rows of any constant schedule that gave
a text the same τ, so piecewise schedules over already-swept constants cost no forward pass at all.
Search is exact (a FAISS flat inner-product index over unit vectors).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import faiss
import numpy as np

from tempscale_index.chunking import Chunk
from tempscale_index.embedding import Kind, TempScaleEmbedding
from tempscale_index.evaluation.chunk_tables import chunk_dataset
from tempscale_index.evaluation.datasets import RetrievalDataset
from tempscale_index.evaluation.metrics import (
    DEFAULT_MEASURES,
    PerQuery,
    Qrels,
    Run,
    chunk_qrels,
    doc_run_from_chunks,
    score_run,
)
from tempscale_index.evaluation.results import Level, check_level
from tempscale_index.schedules import ConstantSchedule, Schedule, ScheduleLike, as_schedule


class EmbeddedEvaluator:
    """Scores (document schedule, query schedule) pairs on one dataset, reusing every embedding it can."""

    def __init__(
        self,
        dataset: RetrievalDataset,
        embedding: TempScaleEmbedding,
        chunks: list[Chunk] | None = None,
        cache_dir: str | Path | None = None,
        depth: int = 1000,
        show_progress: bool = False,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1 chunk, got {depth}")
        self.dataset = dataset
        self.embedding = embedding
        self.chunks = chunks if chunks is not None else chunk_dataset(dataset, embedding, show_progress=show_progress)
        self.depth = depth
        self.show_progress = show_progress
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._query_ids = list(dataset.queries)
        self._vectors: dict[str, np.ndarray] = {}
        self._counts: dict[str, list[int]] = {}
        self._chunk_to_doc = {chunk.chunk_id: chunk.doc_id for chunk in self.chunks}

    # -- embeddings, cached per schedule -----------------------------------------------------------------

    def chunk_vectors(self, schedule: ScheduleLike) -> np.ndarray:
        return self._cached_vectors([chunk.text for chunk in self.chunks], "document", as_schedule(schedule))

    def query_vectors(self, schedule: ScheduleLike) -> np.ndarray:
        texts = [self.dataset.queries[query_id] for query_id in self._query_ids]
        return self._cached_vectors(texts, "query", as_schedule(schedule))

    def chunk_token_counts(self) -> list[int]:
        return self._token_counts([chunk.text for chunk in self.chunks], "document")

    def _cached_vectors(self, texts: list[str], kind: Kind, schedule: Schedule) -> np.ndarray:
        key = self._cache_key(texts, kind, schedule)
        vectors = self._stored(key)
        if vectors is None:
            vectors = self._assemble(texts, kind, schedule)
            if self.cache_dir is not None:
                np.save(self.cache_dir / f"{key}.npy", vectors)
        self._vectors[key] = vectors
        return vectors

    def _stored(self, key: str) -> np.ndarray | None:
        if key in self._vectors:
            return self._vectors[key]
        path = self.cache_dir / f"{key}.npy" if self.cache_dir is not None else None
        return np.load(path) if path is not None and path.exists() else None

    def _assemble(self, texts: list[str], kind: Kind, schedule: Schedule) -> np.ndarray:
        """Vectors at ``schedule``: a text whose τ some cached constant schedule already embedded it at is copied
        from there (a piecewise schedule over cached constants costs no forward pass); the rest are embedded."""
        taus = np.asarray(schedule.taus(self._token_counts(texts, kind)))
        vectors = np.zeros((len(texts), self.embedding.dimension), dtype=np.float32)
        missing = np.ones(len(texts), dtype=bool)
        for tau in np.unique(taus):
            constant = self._stored(self._cache_key(texts, kind, ConstantSchedule(float(tau))))
            if constant is not None:
                rows = np.isclose(taus, tau, rtol=0, atol=1e-12)
                vectors[rows], missing[rows] = constant[rows], False
        if missing.any():
            positions = np.flatnonzero(missing)
            vectors[positions] = self.embedding.encode(
                [texts[i] for i in positions], kind, temperature_override=schedule, show_progress=self.show_progress
            ).embeddings
        return vectors

    def _token_counts(self, texts: list[str], kind: Kind) -> list[int]:
        """Token counts of the evaluator's one text list per kind (the chunks, or the queries)."""
        if kind not in self._counts:
            self._counts[kind] = self.embedding.token_counts(texts, kind)
        return self._counts[kind]

    def _cache_key(self, texts: list[str], kind: Kind, schedule: Schedule) -> str:
        """Everything the vectors depend on: weights, how they run (backend, precision), window, normalization,
        instruction, τ, and the texts."""
        digest = hashlib.sha256()
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        identity = {
            "weights": self.embedding.weights_sha256,
            "backend": self.embedding.backend,
            "precision": self.embedding.precision,
            "max_length": self.embedding.max_length,
            "normalize": self.embedding.normalize,
            "instruction": self.embedding.instruction_for(kind),
            "kind": kind,
            "schedule": schedule.to_dict(),
            "texts": digest.hexdigest(),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]

    # -- search and scoring ------------------------------------------------------------------------------

    def chunk_run(self, document_schedule: ScheduleLike, query_schedule: ScheduleLike) -> Run:
        """The ``depth`` best chunks per query, by exact inner product."""
        chunk_vectors = self.chunk_vectors(document_schedule)
        query_vectors = self.query_vectors(query_schedule)
        index = faiss.index_factory(chunk_vectors.shape[1], "Flat", faiss.METRIC_INNER_PRODUCT)
        index.add(np.ascontiguousarray(chunk_vectors, dtype=np.float32))
        scores, positions = index.search(
            np.ascontiguousarray(query_vectors, dtype=np.float32), min(self.depth, len(self.chunks))
        )
        return {
            query_id: {self.chunks[p].chunk_id: float(s) for s, p in zip(row_scores, row_positions) if p >= 0}
            for query_id, row_scores, row_positions in zip(self._query_ids, scores, positions)
        }

    def run(self, document_schedule: ScheduleLike, query_schedule: ScheduleLike, level: Level = "document") -> Run:
        """A run at ``level``: chunks as retrieved, or documents scored by their best chunk."""
        chunk_run = self.chunk_run(document_schedule, query_schedule)
        return chunk_run if check_level(level) == "chunk" else doc_run_from_chunks(chunk_run, self._chunk_to_doc)

    def qrels(self, level: Level = "document") -> Qrels:
        """Document qrels as given, or chunk qrels derived from the dataset's relevant spans."""
        if check_level(level) == "document":
            return self.dataset.qrels
        if not self.dataset.spans:
            raise ValueError(
                f"dataset {self.dataset.name!r} has no span qrels, so chunk-level relevance is undefined; "
                "use level='document'"
            )
        return chunk_qrels(self.chunks, self.dataset.spans)

    def evaluate(
        self,
        document_schedule: ScheduleLike,
        query_schedule: ScheduleLike,
        level: Level = "document",
        measures: tuple[str, ...] = DEFAULT_MEASURES,
    ) -> PerQuery:
        """Per-query metrics (``query_id -> measure -> value``) for one pair of schedules."""
        return score_run(self.run(document_schedule, query_schedule, level), self.qrels(level), measures)
