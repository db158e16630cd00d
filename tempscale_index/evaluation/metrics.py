"""Per-query IR metrics through ir_measures (pytrec_eval underneath), plus the two mappings long-document
retrieval needs: span qrels to chunk qrels, and a chunk run to a document run (a document scores its best chunk,
LongEmbed's protocol).

Every query with a relevant document gets a value for every measure: a query the run says nothing about scores
0, not "missing", so that two configurations are always averaged over the same queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import ir_measures
import numpy as np

if TYPE_CHECKING:
    from tempscale_index.chunking import Chunk

DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@1", "nDCG@10", "R@10", "R@100", "RR@10", "AP")

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
PerQuery = dict[str, dict[str, float]]


def score_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Iterable[str] = DEFAULT_MEASURES,
) -> PerQuery:
    """``query_id -> measure -> value`` for every query of ``qrels`` with at least one relevant document.

    ``measures`` are ir_measures names (``"nDCG@10"``, ``"RR@10"``, ``"R@100"``, ``"AP"``, …); results are keyed
    by the names as given.
    """
    names = list(measures)
    parsed = {str(_parse_measure(name)): name for name in names}
    judged = {
        query_id: {doc_id: int(rel) for doc_id, rel in docs.items()}
        for query_id, docs in qrels.items()
        if any(rel > 0 for rel in docs.values())
    }
    per_query: PerQuery = {query_id: dict.fromkeys(names, 0.0) for query_id in judged}
    scored_run = {
        query_id: {doc_id: float(score) for doc_id, score in run[query_id].items()}
        for query_id in judged
        if run.get(query_id)
    }
    if not scored_run:
        return per_query
    for metric in ir_measures.iter_calc([_parse_measure(name) for name in names], judged, scored_run):
        per_query[metric.query_id][parsed[str(metric.measure)]] = float(metric.value)
    return per_query


def _parse_measure(name: str) -> ir_measures.Measure:
    try:
        return ir_measures.parse_measure(name)
    except (NameError, ValueError, SyntaxError) as exc:
        raise ValueError(f"unknown measure {name!r} ({exc}); use ir_measures names such as 'nDCG@10'") from None


def mean_scores(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each measure over the queries of ``per_query`` (the usual reported number)."""
    if not per_query:
        return {}
    measures = next(iter(per_query.values())).keys()
    return {measure: float(np.mean([values[measure] for values in per_query.values()])) for measure in measures}


def chunk_qrels(chunks: Sequence[Chunk], spans: Mapping[str, Mapping[str, Sequence[tuple[int, int]]]]) -> Qrels:
    """Chunk-level qrels: a chunk is relevant (1) to a query when its range ``[start, end)`` overlaps one of the
    query's relevant spans in its document.

    Queries none of whose spans is covered by a chunk are left out (no judged chunk, nothing to score).
    """
    chunks_by_doc: dict[str, list[tuple[str, int, int]]] = {}
    for chunk in chunks:
        chunks_by_doc.setdefault(chunk.doc_id, []).append((chunk.chunk_id, chunk.start, chunk.end))
    qrels: Qrels = {}
    for query_id, by_doc in spans.items():
        relevant = {
            chunk_id: 1
            for doc_id, ranges in by_doc.items()
            for chunk_id, start, end in chunks_by_doc.get(doc_id, ())
            if any(start < span_end and span_start < end for span_start, span_end in ranges)
        }
        if relevant:
            qrels[query_id] = relevant
    return qrels


def doc_run_from_chunks(chunk_run: Mapping[str, Mapping[str, float]], chunk_to_doc: Mapping[str, str]) -> Run:
    """A document run from a chunk run: each document scores its best-scoring retrieved chunk."""
    doc_run: Run = {}
    for query_id, scores in chunk_run.items():
        best: dict[str, float] = {}
        for chunk_id, score in scores.items():
            doc_id = chunk_to_doc[chunk_id]
            if doc_id not in best or score > best[doc_id]:
                best[doc_id] = float(score)
        doc_run[query_id] = best
    return doc_run
