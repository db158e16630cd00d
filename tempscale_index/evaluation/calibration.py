"""Calibration: choose the document and query schedules for a corpus, and write them where ingest and query read.

Supervised mode searches constant and length-dependent schedules on a dev split of the user's queries and keeps
τ = 1 unless the best pair beats it by a paired test: with a few dozen dev queries, an untested maximum is
mostly noise. The unsupervised mode needs no queries: it asks ``tempscale_index.selection`` whether halves of the
corpus's own chunks stand out more from other chunks at τ < 1, and otherwise keeps τ = 1. (Cloze pseudo-queries,
its earlier signal, are windows cut from the document they must retrieve; sharper attention helps that on every
corpus, so they could not tell a corpus that wants τ < 1 from one that does not.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.chunk_tables import chunk_dataset
from tempscale_index.evaluation.datasets import RetrievalDataset
from tempscale_index.evaluation.embedded import EmbeddedEvaluator
from tempscale_index.evaluation.metrics import mean_scores
from tempscale_index.evaluation.results import Level
from tempscale_index.evaluation.sweep import SweepResult, run_sweep, schedule_label
from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule, Schedule
from tempscale_index.selection import select_document_schedule

BASELINE_LABEL = "1.0"


def document_candidates() -> dict[str, Schedule]:
    """Constant τ of 1, 0.9 and the paper's 0.8, and step schedules that keep τ = 1 up to 128 tokens.

    The steps reuse the constants' vectors (see ``EmbeddedEvaluator``), so testing length dependence is free.
    """
    schedules: list[Schedule] = [ConstantSchedule(tau) for tau in (1.0, 0.9, 0.8)]
    schedules += [PiecewiseSchedule([128], [1.0, long_tau]) for long_tau in (0.9, 0.8)]
    return {schedule_label(schedule): schedule for schedule in schedules}


def query_candidates() -> dict[str, Schedule]:
    return {schedule_label(schedule): schedule for schedule in map(ConstantSchedule, (1.0, 0.9, 0.8))}


@dataclass
class Calibration:
    """The chosen schedules and the measurements behind the choice."""

    document_temperature: Schedule
    query_temperature: Schedule
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The config ingest and query accept: exactly the two schedules, in their dict form."""
        return {
            "document_temperature": self.document_temperature.to_dict(),
            "query_temperature": self.query_temperature.to_dict(),
        }

    def save_config(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_config(), indent=2) + "\n")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "config": self.to_config(), "evidence": self.evidence}


def split_queries(
    dataset: RetrievalDataset, dev_fraction: float = 0.5, seed: int = 0
) -> tuple[RetrievalDataset, RetrievalDataset]:
    """A random (dev, test) split of the judged queries over the same corpus."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be strictly between 0 and 1, got {dev_fraction}")
    query_ids = sorted(dataset.judged_query_ids)
    if len(query_ids) < 2:
        raise ValueError(f"dataset {dataset.name!r} needs at least 2 judged queries to split, has {len(query_ids)}")
    random.Random(seed).shuffle(query_ids)
    cut = min(max(1, round(len(query_ids) * dev_fraction)), len(query_ids) - 1)
    return (
        dataset.subset(sorted(query_ids[:cut]), name=f"{dataset.name}-dev"),
        dataset.subset(sorted(query_ids[cut:]), name=f"{dataset.name}-test"),
    )


def calibrate_supervised(
    evaluator: EmbeddedEvaluator,
    document_schedules: Mapping[str, Schedule] | None = None,
    query_schedules: Mapping[str, Schedule] | None = None,
    level: Level = "document",
    measure: str = "nDCG@10",
    alpha: float = 0.05,
    show_progress: bool = False,
) -> tuple[Calibration, SweepResult]:
    """The best (document, query) pair on ``evaluator``'s queries, if it beats τ = 1 at significance ``alpha``.

    Both candidate sets must contain the label ``"1.0"`` (τ = 1), the baseline every choice is tested against.
    """
    documents = dict(document_schedules or document_candidates())
    queries = dict(query_schedules or query_candidates())
    for name, candidates in (("document_schedules", documents), ("query_schedules", queries)):
        if candidates.get(BASELINE_LABEL) != ConstantSchedule(1.0):
            raise ValueError(f"{name} must include the baseline {BASELINE_LABEL!r}: ConstantSchedule(1.0)")
    sweep = run_sweep(evaluator, documents, queries, (level,), (measure,), show_progress)[level]
    baseline = (BASELINE_LABEL, BASELINE_LABEL)
    best = sweep.best(measure)
    comparison = sweep.compare(baseline, measure)[best]
    chosen = best if best != baseline and comparison.mean_diff > 0 and comparison.p_value < alpha else baseline
    evidence = {
        "reason": _supervised_reason(best, chosen, comparison.mean_diff, comparison.p_value, measure, alpha),
        "dataset": sweep.dataset,
        "level": level,
        "measure": measure,
        "alpha": alpha,
        "n_queries": comparison.n_queries,
        "best_cell": {"document": best[0], "query": best[1]},
        "best_vs_baseline": comparison.to_dict(),
        "chosen_cell": {"document": chosen[0], "query": chosen[1]},
        "means": {f"{d} | {q}": mean_scores(per_query)[measure] for (d, q), per_query in sweep.cells.items()},
    }
    calibration = Calibration(documents[chosen[0]], queries[chosen[1]], "supervised", evidence)
    return calibration, sweep


def _supervised_reason(
    best: tuple[str, str], chosen: tuple[str, str], diff: float, p_value: float, measure: str, alpha: float
) -> str:
    """Why this cell: the one line a user reads next to the choice."""
    cell = f"document τ {best[0]}, query τ {best[1]}"
    if chosen != best:
        return (
            f"kept τ = 1: the best cell ({cell}) beats it on {measure} by {diff:+.4f}, but p = {p_value:.3g} ≥ {alpha}"
        )
    if best == (BASELINE_LABEL, BASELINE_LABEL):
        return f"kept τ = 1: no other cell scored higher on {measure}"
    return f"{cell} beats τ = 1 on {measure} by {diff:+.4f} (p = {p_value:.3g} < {alpha})"


def cloze_dataset(
    texts: Sequence[str],
    embedding: TempScaleEmbedding,
    n_queries: int = 400,
    query_tokens: int = 32,
    seed: int = 0,
) -> RetrievalDataset:
    """Labelled pseudo-queries from unlabelled text: a window of ``query_tokens`` tokens cut out of a chunk is
    the query, and that chunk with the window removed is its one relevant document.

    Chunks come from the ingestion splitter, so the pseudo-documents have the lengths the index will hold; only
    chunks of at least three query lengths are used, so that most of each document remains.
    """
    if n_queries < 2 or query_tokens < 1:
        raise ValueError(f"need n_queries >= 2 and query_tokens >= 1, got {n_queries} and {query_tokens}")
    source = RetrievalDataset(
        name="corpus", corpus={f"text-{i}": text for i, text in enumerate(texts)}, queries={}, qrels={}
    )
    tokenizer = embedding.tokenizer
    usable = []
    for chunk in chunk_dataset(source, embedding):
        offsets = tokenizer(chunk.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) >= 3 * query_tokens:
            usable.append((chunk, offsets))
    if len(usable) < 2:
        raise ValueError(f"the corpus has {len(usable)} chunk(s) of {3 * query_tokens}+ tokens; cloze needs at least 2")
    rng = random.Random(seed)
    corpus, queries, qrels = {}, {}, {}
    for chunk, offsets in rng.sample(usable, min(n_queries, len(usable))):
        first = rng.randrange(query_tokens, len(offsets) - 2 * query_tokens + 1)
        start, end = offsets[first][0], offsets[first + query_tokens - 1][1]
        corpus[chunk.chunk_id] = f"{chunk.text[:start].rstrip()} {chunk.text[end:].lstrip()}"
        queries[chunk.chunk_id] = chunk.text[start:end]
        qrels[chunk.chunk_id] = {chunk.chunk_id: 1}
    return RetrievalDataset(name="cloze", corpus=corpus, queries=queries, qrels=qrels)


def calibrate_unsupervised(embedding: TempScaleEmbedding, dataset: RetrievalDataset, seed: int = 0) -> Calibration:
    """Choose the document schedule from the corpus's own chunks with the selector; no queries or qrels read.

    The corpus is chunked as ingestion chunks it, so the selector sees the texts the index will hold. The query
    schedule is kept as the embedding has it: corpus text says little about how questions want to be embedded.
    """
    chunks = chunk_dataset(dataset, embedding)
    selection = select_document_schedule(
        embedding, [chunk.text for chunk in chunks], [chunk.doc_id for chunk in chunks], seed=seed
    )
    evidence = {"reason": selection.reason, **selection.evidence}
    method = "unsupervised (neighbour discrimination, tempscale_index.selection)"
    return Calibration(selection.schedule, embedding.query_temperature, method, evidence)
