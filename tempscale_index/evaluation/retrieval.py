"""Scoring any LlamaIndex retriever on a :class:`RetrievalDataset`, at document and chunk level.

Document level follows LongEmbed: a document's score is the score of its best retrieved chunk. Chunk level is
what RAG sees: a retrieved chunk is relevant when its character range overlaps a relevant span. Chunks are
identified by ``(document, start, end)`` rather than node ids (:func:`chunk_key`), so runs and qrels agree
whichever store or retriever produced the nodes. Both levels are broken down by the length (in tokens) of the
query's relevant document and of the query itself, where TempScale's effect is expected to differ.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import BaseNode, QueryBundle
from tqdm.auto import tqdm

from tempscale_index.chunking import Chunk, chunk_nodes, chunk_token_budget, embed_chunk_nodes, model_token_splitter
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.chunk_tables import chunk_table, dataset_documents, node_chunk, node_document_id
from tempscale_index.evaluation.datasets import RetrievalDataset
from tempscale_index.evaluation.length_buckets import TokenCounter, bucket_means, tokenizer_counter, word_counts
from tempscale_index.evaluation.metrics import (
    DEFAULT_MEASURES,
    Run,
    chunk_qrels,
    doc_run_from_chunks,
    mean_scores,
    score_run,
)
from tempscale_index.evaluation.results import EvaluationResult, Level, LevelResult, check_level


def build_vector_index(
    dataset: RetrievalDataset,
    embedding: TempScaleEmbedding,
    chunk_size: int | None = None,
    chunk_overlap: int = 32,
    show_progress: bool = False,
) -> tuple[VectorStoreIndex, list[BaseNode]]:
    """Chunk the corpus as ingestion does, embed the chunks with TempScale and index them in memory."""
    splitter = model_token_splitter(embedding, chunk_size, chunk_overlap)
    documents = tqdm(dataset_documents(dataset), desc="Chunking", unit="doc", disable=not show_progress)
    nodes = [node for document in documents for node in chunk_nodes(splitter, document)]
    for node, vector in zip(nodes, embed_chunk_nodes(embedding, nodes)):
        node.embedding = vector.tolist()
    return VectorStoreIndex(nodes, embed_model=embedding), nodes


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
                chunk = node_chunk(hit.node)
                key, doc_id = chunk.chunk_id, chunk.doc_id
                seen[key] = chunk
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
        check_level(level)
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
    counter = count_tokens or word_counts
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
    payload = embedding.to_payload()  # an "auto" document τ not yet resolved is recorded as "auto"
    return {
        "model": embedding.model_name,
        "document_temperature": payload["document_temperature"],
        "query_temperature": payload["query_temperature"],
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
        ingest(
            dataset_documents(dataset),
            index_dir,
            embedding,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            show_progress=show_progress,
        )
    retriever = TempScaleRetriever.from_dir(index_dir, embedding, similarity_top_k=top_k)
    store = retriever.store
    missing = [doc_id for doc_id in dataset.corpus if doc_id not in store.documents]
    if len(missing) == len(dataset.corpus):
        raise ValueError(
            f"the index at {index_dir} holds none of {dataset.name}'s documents (e.g. {missing[0]!r}); ingest "
            "them with their dataset ids, or give a new directory to ingest into"
        )
    if missing:
        warnings.warn(
            f"{len(missing)} of {dataset.name}'s documents are not in the index at {index_dir}: {missing[:3]}",
            UserWarning,
            stacklevel=2,
        )
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
