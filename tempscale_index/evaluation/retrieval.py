"""Scoring any LlamaIndex retriever on a :class:`RetrievalDataset`, at document and chunk level.

Document level follows LongEmbed: a document's score is the score of its best retrieved chunk. Chunk level is
what RAG sees: a retrieved chunk is relevant when its character range overlaps a relevant span. Chunks are
identified by ``(document, start, end)`` rather than node ids, so runs and qrels agree whichever store or
retriever produced the nodes. Both levels are broken down by the length (in tokens) of the query's relevant
document and of the query itself, where TempScale's effect is expected to differ.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.schema import BaseNode, QueryBundle
from tqdm.auto import tqdm

from tempscale_index.chunking import chunk_token_budget, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.datasets import RetrievalDataset
from tempscale_index.evaluation.metrics import (
    DEFAULT_MEASURES,
    PerQuery,
    Run,
    chunk_qrels,
    doc_run_from_chunks,
    mean_scores,
    score_run,
)
from tempscale_index.evaluation.stats import PairedComparison, paired_comparison

Level = Literal["document", "chunk"]
LEVELS: tuple[Level, ...] = ("document", "chunk")
DOC_ID_KEY = "doc_id"
TokenCounter = Callable[[Sequence[str]], list[int]]
Chunk = tuple[str, str, int, int]


@dataclass
class LengthBucket:
    """Queries whose length (of their relevant document, or their own) falls in ``[low, high]`` tokens."""

    low: int
    high: int
    n_queries: int
    means: dict[str, float]
    query_ids: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high}"


@dataclass
class LevelResult:
    """Metrics at one level: per query, averaged, and averaged per length bucket."""

    level: Level
    per_query: PerQuery
    means: dict[str, float]
    by_document_length: list[LengthBucket]
    by_query_length: list[LengthBucket]


@dataclass
class EvaluationResult:
    """Everything one evaluation measured; ``settings`` describes the configuration (τ schedules, chunking…)."""

    dataset: str
    n_documents: int
    n_queries: int
    n_chunks: int | None
    length_unit: str
    levels: dict[str, LevelResult]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        levels = {
            name: LevelResult(
                level=level["level"],
                per_query=level["per_query"],
                means=level["means"],
                by_document_length=[LengthBucket(**bucket) for bucket in level["by_document_length"]],
                by_query_length=[LengthBucket(**bucket) for bucket in level["by_query_length"]],
            )
            for name, level in data["levels"].items()
        }
        return cls(**{**data, "levels": levels})


# -- building a TempScale retriever for a dataset ----------------------------------------------------------------


def dataset_documents(dataset: RetrievalDataset) -> list[Document]:
    """One LlamaIndex ``Document`` per corpus entry, with the dataset's document id as its id (and so as its
    chunks' ``ref_doc_id``) and no metadata, so that chunks hold exactly the document's text."""
    return [Document(id_=doc_id, text=text) for doc_id, text in dataset.corpus.items()]


def build_vector_index(
    dataset: RetrievalDataset,
    embedding: TempScaleEmbedding,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    show_progress: bool = False,
) -> tuple[VectorStoreIndex, list[BaseNode]]:
    """Chunk the corpus in model tokens, embed the chunks with TempScale and index them in memory."""
    splitter = model_token_splitter(embedding, chunk_size, chunk_overlap)
    pipeline = IngestionPipeline(transformations=[splitter, embedding])
    nodes = pipeline.run(documents=dataset_documents(dataset), show_progress=show_progress)
    return VectorStoreIndex(nodes, embed_model=embedding), nodes


def node_document_id(node: BaseNode) -> str:
    """The dataset document a node came from: its ``doc_id`` metadata, else its source document's id."""
    doc_id = node.metadata.get(DOC_ID_KEY) or node.ref_doc_id
    if doc_id is None:
        raise ValueError(
            f"node {node.node_id} names no document: give nodes a {DOC_ID_KEY!r} metadata key or a source "
            "relationship (ref_doc_id) matching the dataset's document ids"
        )
    return str(doc_id)


def chunk_key(doc_id: str, start: int, end: int) -> str:
    return f"{doc_id}@{start}:{end}"


def node_chunk(node: BaseNode) -> Chunk:
    """``(chunk_key, doc_id, start_char, end_char)`` of a node that carries character offsets."""
    start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
    if start is None or end is None:
        raise ValueError(
            f"node {node.node_id} has no start/end character offsets; chunk-level scoring needs them "
            "(LlamaIndex node parsers set them when the chunk text occurs verbatim in its document)"
        )
    doc_id = node_document_id(node)
    return chunk_key(doc_id, start, end), doc_id, int(start), int(end)


def chunk_table(nodes: Iterable[BaseNode]) -> list[Chunk]:
    """Every chunk of an index, as chunk-level qrels need them (also the chunks never retrieved)."""
    return list(dict.fromkeys(node_chunk(node) for node in nodes))


# -- running and scoring ---------------------------------------------------------------------------------------


def retrieve_chunks(
    retriever: BaseRetriever,
    queries: Mapping[str, str],
    query_embeddings: Mapping[str, Sequence[float]] | None = None,
    require_offsets: bool = False,
    show_progress: bool = False,
) -> tuple[Run, dict[str, str], list[Chunk]]:
    """Run every query; returns the chunk run, chunk → document, and the retrieved chunks that carry offsets.

    Chunks are keyed by :func:`chunk_key` when they carry character offsets, by node id otherwise (an error when
    ``require_offsets``). ``query_embeddings`` (embedded in one batch by the caller) spare vector retrievers one
    forward pass per query.
    """
    run: Run = {}
    chunk_to_doc: dict[str, str] = {}
    seen: dict[str, Chunk] = {}
    for query_id, text in tqdm(queries.items(), desc="Retrieving", unit="query", disable=not show_progress):
        embedding = None if query_embeddings is None else list(query_embeddings[query_id])
        scores: dict[str, float] = {}
        for hit in retriever.retrieve(QueryBundle(query_str=text, embedding=embedding)):
            if require_offsets or (hit.node.start_char_idx is not None and hit.node.end_char_idx is not None):
                key, doc_id, start, end = node_chunk(hit.node)
                seen[key] = (key, doc_id, start, end)
            else:
                key, doc_id = hit.node.node_id, node_document_id(hit.node)
            chunk_to_doc[key] = doc_id
            score = float(hit.score if hit.score is not None else 0.0)
            scores[key] = max(score, scores.get(key, score))
        run[query_id] = scores
    return run, chunk_to_doc, list(seen.values())


def evaluate_retriever(
    retriever: BaseRetriever,
    dataset: RetrievalDataset,
    chunks: Sequence[Chunk] | None = None,
    levels: Iterable[Level] | None = None,
    measures: Iterable[str] = DEFAULT_MEASURES,
    count_tokens: TokenCounter | None = None,
    n_buckets: int = 3,
    query_embeddings: Mapping[str, Sequence[float]] | None = None,
    settings: Mapping[str, Any] | None = None,
    show_progress: bool = False,
) -> EvaluationResult:
    """Score ``retriever`` on ``dataset`` at document level and, when the dataset has span qrels, chunk level.

    ``chunks`` is the index's chunk table (:func:`chunk_table`); chunk-level recall needs every relevant chunk,
    not only the retrieved ones, so without it the table is built from what was retrieved. ``count_tokens``
    measures lengths for the buckets (e.g. :func:`tokenizer_counter`); whitespace words when not given.
    """
    wanted = tuple(levels) if levels is not None else (("document", "chunk") if dataset.spans else ("document",))
    for level in wanted:
        if level not in LEVELS:
            raise ValueError(f"levels must be among {LEVELS}, got {level!r}")
    if "chunk" in wanted and not dataset.spans:
        raise ValueError(f"{dataset.name} has no span qrels, so it cannot be scored at chunk level")
    measure_names = list(measures)
    query_ids = dataset.judged_query_ids
    chunk_run, chunk_to_doc, retrieved = retrieve_chunks(
        retriever,
        {query_id: dataset.queries[query_id] for query_id in query_ids},
        query_embeddings,
        require_offsets="chunk" in wanted,
        show_progress=show_progress,
    )
    counter = count_tokens or _word_counts
    doc_lengths = dict(zip(dataset.corpus, counter(list(dataset.corpus.values()))))
    query_lengths = dict(zip(query_ids, counter([dataset.queries[query_id] for query_id in query_ids])))

    results: dict[str, LevelResult] = {}
    for level in wanted:
        if level == "document":
            per_query = score_run(doc_run_from_chunks(chunk_run, chunk_to_doc), dataset.qrels, measure_names)
        else:
            qrels = chunk_qrels(chunks if chunks is not None else retrieved, dataset.spans)
            per_query = score_run(chunk_run, qrels, measure_names)
        relevant_doc_length = {
            query_id: max(doc_lengths[doc_id] for doc_id, rel in dataset.qrels[query_id].items() if rel > 0)
            for query_id in per_query
        }
        results[level] = LevelResult(
            level=level,
            per_query=per_query,
            means=mean_scores(per_query),
            by_document_length=bucket_means(per_query, relevant_doc_length, n_buckets),
            by_query_length=bucket_means(per_query, {q: query_lengths[q] for q in per_query}, n_buckets),
        )
    return EvaluationResult(
        dataset=dataset.name,
        n_documents=len(dataset.corpus),
        n_queries=len(query_ids),
        n_chunks=len(chunks) if chunks is not None else None,
        length_unit="tokens" if count_tokens is not None else "words",
        levels=results,
        settings=dict(settings or {}),
    )


def embedding_settings(embedding: TempScaleEmbedding) -> dict[str, Any]:
    """What a report records of the embedding: enough to rerun it."""
    return {
        "model": embedding.model_name,
        "document_temperature": embedding.document_temperature.to_dict(),
        "query_temperature": embedding.query_temperature.to_dict(),
        "precision": embedding.precision,
    }


def evaluate_tempscale(
    dataset: RetrievalDataset,
    embedding: TempScaleEmbedding,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    top_k: int = 1000,
    levels: Iterable[Level] | None = None,
    measures: Iterable[str] = DEFAULT_MEASURES,
    n_buckets: int = 3,
    show_progress: bool = False,
) -> EvaluationResult:
    """Index ``dataset`` in memory with ``embedding`` (model-token chunks) and score its ``top_k`` retriever.

    Queries are embedded in one batch; lengths are counted in the model's tokens.
    """
    index, nodes = build_vector_index(dataset, embedding, chunk_size, chunk_overlap, show_progress)
    query_ids = dataset.judged_query_ids
    vectors = embedding.encode([dataset.queries[query_id] for query_id in query_ids], "query").embeddings
    settings = {
        **embedding_settings(embedding),
        "chunk_size": chunk_size if chunk_size is not None else chunk_token_budget(embedding),
        "chunk_overlap": chunk_overlap,
        "top_k": top_k,
    }
    return evaluate_retriever(
        index.as_retriever(similarity_top_k=top_k),
        dataset,
        chunks=chunk_table(nodes),
        levels=levels,
        measures=measures,
        count_tokens=tokenizer_counter(embedding.tokenizer),
        n_buckets=n_buckets,
        query_embeddings=dict(zip(query_ids, vectors)),
        settings=settings,
        show_progress=show_progress,
    )


def evaluate_index(
    dataset: RetrievalDataset,
    index_dir: str | os.PathLike[str],
    embedding: TempScaleEmbedding | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    top_k: int = 1000,
    levels: Iterable[Level] | None = None,
    measures: Iterable[str] = DEFAULT_MEASURES,
    n_buckets: int = 3,
    show_progress: bool = False,
) -> EvaluationResult:
    """Score a persisted TempScale index (``tempscale-index ingest``) through its retriever.

    A directory that holds no index yet gets the dataset's documents ingested first (with ``embedding``, or the
    default one), so later runs reuse it. The index's documents must carry the dataset's document ids.
    """
    from tempscale_index.pipeline.ingest import ingest
    from tempscale_index.pipeline.retriever import TempScaleRetriever
    from tempscale_index.store import FaissStore

    if not FaissStore.exists(index_dir):
        ingest(dataset_documents(dataset), index_dir, embedding, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
               show_progress=show_progress)
    retriever = TempScaleRetriever.from_dir(index_dir, embedding, similarity_top_k=top_k)
    store = retriever.store
    missing = [doc_id for doc_id in dataset.corpus if doc_id not in store.documents]
    if len(missing) == len(dataset.corpus):
        raise ValueError(
            f"the index at {index_dir} holds none of {dataset.name}'s documents (e.g. {missing[0]!r}); ingest "
            "them with their dataset ids, or give a new directory to ingest into"
        )
    if missing:
        warnings.warn(f"{len(missing)} of {dataset.name}'s documents are not in the index at {index_dir}: "
                      f"{missing[:3]}", UserWarning, stacklevel=2)
    nodes = store.get_nodes([node_id for record in store.documents.values() for node_id in record.node_ids])
    settings = {
        "index": str(index_dir),
        **embedding_settings(retriever.embedding),
        **store.chunking,
        "top_k": top_k,
    }
    return evaluate_retriever(
        retriever,
        dataset,
        chunks=chunk_table(nodes),
        levels=levels,
        measures=measures,
        count_tokens=tokenizer_counter(retriever.embedding.tokenizer),
        n_buckets=n_buckets,
        settings=settings,
        show_progress=show_progress,
    )


def bucket_means(per_query: PerQuery, lengths: Mapping[str, int], n_buckets: int = 3) -> list[LengthBucket]:
    """Mean metrics over ``n_buckets`` length quantiles of the queries (about equal counts, so each mean rests
    on a similar number of queries); queries of equal length always share a bucket."""
    if not per_query:
        return []
    query_ids = list(per_query)
    values = np.array([lengths[query_id] for query_id in query_ids])
    shorter = np.searchsorted(np.sort(values), values, side="left")  # queries strictly shorter than each one
    positions = np.minimum(shorter * n_buckets // len(values), n_buckets - 1)
    buckets = []
    for position in np.unique(positions):
        members = [query_id for query_id, at in zip(query_ids, positions) if at == position]
        member_lengths = [lengths[query_id] for query_id in members]
        buckets.append(
            LengthBucket(
                low=int(min(member_lengths)),
                high=int(max(member_lengths)),
                n_queries=len(members),
                means=mean_scores({query_id: per_query[query_id] for query_id in members}),
                query_ids=members,
            )
        )
    return buckets


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Token counts with a Hugging Face tokenizer, untruncated and without special tokens (a document's length,
    not what fits in the model's window)."""

    def count(texts: Sequence[str]) -> list[int]:
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    return count


def _word_counts(texts: Sequence[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def compare_results(
    baseline: EvaluationResult, candidate: EvaluationResult, n_resamples: int = 10000, seed: int = 0
) -> dict[str, list[PairedComparison]]:
    """Per level and measure, the candidate against the baseline (differences are candidate − baseline)."""
    return {
        level: [
            paired_comparison(baseline.levels[level].per_query, result.per_query, measure, n_resamples, seed)
            for measure in result.means
            if measure in baseline.levels[level].means
        ]
        for level, result in candidate.levels.items()
        if level in baseline.levels
    }
