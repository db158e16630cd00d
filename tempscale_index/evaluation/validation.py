"""Validation of the unsupervised document-τ selector across corpora and models, against a τ grid.

For one corpus and one model, every chunk is embedded once per grid τ (cached on disk), so the τ = 1 baseline,
the paper's τ = 0.8, every grid cell, every step schedule built from grid values, and the schedule the selector
picks (a constant or a step over grid values) are all scored by lookup. The selector sees only its own sample of
the corpus's chunk texts and their document ids, never queries or qrels. Each cell is compared with τ = 1 for
documents and queries by a paired bootstrap interval and randomization test.

``python -m tempscale_index.evaluation.validation OUT --model NAME --corpus NAME=PATH:LEVELS ...`` writes one
JSON per corpus (``OUT/<model>/<corpus>.json``); ``validation_markdown`` turns a folder of them into the table
in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from tempscale_index.chunking import Chunk
from tempscale_index.embedding import TempScaleEmbedding
from tempscale_index.evaluation.datasets import RetrievalDataset, load_dataset
from tempscale_index.evaluation.embedded import EmbeddedEvaluator, Level
from tempscale_index.evaluation.presentations import (
    FRACTIONS,
    ORDERS,
    LookupEmbedding,
    Presentation,
    presentations,
    presented_chunks,
)
from tempscale_index.evaluation.public_corpora import capped, load_public
from tempscale_index.evaluation.stats import paired_comparison
from tempscale_index.evaluation.sweep import schedule_label
from tempscale_index.schedules import ConstantSchedule, PiecewiseSchedule, Schedule
from tempscale_index.selection import select_document_schedule

logger = logging.getLogger(__name__)

MEASURE = "nDCG@10"
MAX_LOSS = 0.002  # auto may lose at most 0.2% (relative) to τ = 1
MIN_RECOVERY = 2 / 3  # of a significant grid-best gain
GRID_TAUS = (1.0, 0.9, 0.8, 0.7)


def grid_schedules(taus: list[float]) -> dict[str, Schedule]:
    """Constants at every grid τ, and steps keeping τ = 1 up to 128 tokens with each lower τ above."""
    schedules: list[Schedule] = [ConstantSchedule(tau) for tau in taus]
    schedules += [PiecewiseSchedule([128], [1.0, tau]) for tau in taus if tau < 1]
    return {schedule_label(schedule): schedule for schedule in schedules}


def load_corpus(path: str, max_documents: int | None) -> RetrievalDataset:
    """QMSum questions (a folder of meeting JSON), a ``public_corpora`` folder, or any BEIR folder."""
    source = Path(path)
    if (source / "spans.jsonl").is_file():
        dataset = load_public(source)
    elif (source / "corpus.jsonl").is_file():
        dataset = load_dataset(source)
    else:
        dataset = load_dataset(source, queries="questions")
    return capped(dataset, max_documents, None) if max_documents else dataset


def validate_corpus(
    embedding: TempScaleEmbedding,
    dataset: RetrievalDataset,
    levels: list[Level],
    taus: list[float],
    cache_dir: Path,
    fractions: Sequence[float] = FRACTIONS,
    orders: int = ORDERS,
) -> dict[str, Any]:
    """The selector on every presentation (size × order) of the corpus; at each size and level, every grid cell
    and every schedule it chose, scored by lookup from the full corpus's cached vectors, compared with τ = 1."""
    evaluator = EmbeddedEvaluator(dataset, embedding, cache_dir=cache_dir)
    baseline, query_09 = ConstantSchedule(1.0), ConstantSchedule(0.9)
    lookup = LookupEmbedding(embedding)
    texts = [chunk.text for chunk in evaluator.chunks]
    for tau in taus:
        lookup.remember(texts, tau, evaluator.chunk_vectors(ConstantSchedule(tau)))
    lookup.remember(list(dataset.queries.values()), 1.0, evaluator.query_vectors(baseline), kind="query")
    schedules = grid_schedules(taus)
    runs: list[dict[str, Any]] = []
    sizes: dict[float, set[str]] = {}
    for shown in presentations(list(dataset.corpus), fractions, orders):
        run, schedule = _select(lookup, evaluator.chunks, shown)
        schedules.setdefault(run["label"], schedule)
        runs.append(run)
        sizes[shown.fraction] = set(shown.doc_ids)
    full = next(run for run in runs if run["fraction"] == max(fractions) and run["order"] == 0)
    auto_label = full["label"]
    result: dict[str, Any] = {
        "dataset": dataset.name,
        "model": embedding.model_name,
        "n_documents": len(dataset.corpus),
        "n_chunks": len(evaluator.chunks),
        "selection": full["selection"],
        "presentations": runs,
        "sizes": {},
        "levels": {},
    }
    for level in levels:
        reference, compared = _compare(evaluator, schedules, level)
        query_cell = evaluator.evaluate(baseline, query_09, level, (MEASURE,))
        auto_query = evaluator.evaluate(schedules[auto_label], query_09, level, (MEASURE,))
        result["levels"][level] = {
            "n_queries": len(reference),
            "auto": auto_label,
            "documents": compared,
            "query_0.9": paired_comparison(reference, query_cell, MEASURE).to_dict(),
            "auto_query_0.9": paired_comparison(reference, auto_query, MEASURE).to_dict(),
        }
    for fraction, doc_ids in sizes.items():
        sub = evaluator if len(doc_ids) == len(dataset.corpus) else _sub_evaluator(evaluator, lookup, doc_ids)
        result["sizes"][str(fraction)] = {}
        for level in levels:
            reference, compared = _compare(sub, schedules, level)
            result["sizes"][str(fraction)][level] = {"n_queries": len(reference), "documents": compared}
    result["lookup"] = {"served": lookup.served, "embedded": lookup.embedded}
    return result


def _compare(
    evaluator: EmbeddedEvaluator, schedules: dict[str, Schedule], level: Level
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Per-query τ = 1 scores, and every schedule compared with them (nothing when no query is judged)."""
    baseline = ConstantSchedule(1.0)
    cells = {label: evaluator.evaluate(schedule, baseline, level, (MEASURE,)) for label, schedule in schedules.items()}
    reference = cells[schedule_label(baseline)]
    if not reference:
        return reference, {}
    compared = {label: paired_comparison(reference, scores, MEASURE).to_dict() for label, scores in cells.items()}
    return reference, compared


def _sub_evaluator(evaluator: EmbeddedEvaluator, lookup: LookupEmbedding, doc_ids: set[str]) -> EmbeddedEvaluator:
    """The corpus cut to ``doc_ids`` (and the queries judged only on them), scored from the vectors already known."""
    dataset = evaluator.dataset
    query_ids = [query_id for query_id, judged in dataset.qrels.items() if set(judged) <= doc_ids]
    subset = RetrievalDataset(
        dataset.name,
        {doc_id: text for doc_id, text in dataset.corpus.items() if doc_id in doc_ids},
        {query_id: dataset.queries[query_id] for query_id in query_ids},
        {query_id: dataset.qrels[query_id] for query_id in query_ids},
        {query_id: dataset.spans[query_id] for query_id in query_ids if query_id in dataset.spans},
    )
    chunks = [chunk for chunk in evaluator.chunks if chunk.doc_id in doc_ids]
    return EmbeddedEvaluator(subset, cast("TempScaleEmbedding", lookup), chunks=chunks)


def _select(lookup: LookupEmbedding, chunks: list[Chunk], shown: Presentation) -> tuple[dict[str, Any], Schedule]:
    """One selector run on one presentation: its choice, whether it is pending, what it cost; and the schedule."""
    texts, groups = presented_chunks(chunks, shown)
    started = time.perf_counter()
    embedded_before = lookup.embedded
    selection = select_document_schedule(cast("TempScaleEmbedding", lookup), texts, groups)
    record = {
        "fraction": shown.fraction,
        "order": shown.order,
        "n_documents": len(shown.doc_ids),
        "n_chunks": len(texts),
        "label": schedule_label(selection.schedule),
        "pending": selection.pending,
        "selection": selection.to_dict(),
        "seconds": time.perf_counter() - started,
        "texts_embedded": lookup.embedded - embedded_before,
    }
    return record, selection.schedule


def grid_best(documents: dict[str, dict[str, Any]]) -> str:
    """The document schedule with the highest mean (τ = 1, listed first, wins ties)."""
    return max(documents, key=lambda label: documents[label]["mean_b"])


def verdict(auto: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """Whether auto meets both targets: no loss beyond ``MAX_LOSS``, and ``MIN_RECOVERY`` of a significant gain."""
    no_loss = auto["relative_change"] >= -MAX_LOSS
    significant = best["mean_diff"] > 0 and best["p_value"] < 0.05
    recovery = auto["mean_diff"] / best["mean_diff"] if best["mean_diff"] > 0 else None
    recovers = not significant or (recovery is not None and recovery >= MIN_RECOVERY)
    return {"no_loss": no_loss, "gain_significant": significant, "recovery": recovery, "recovers": recovers}


def validation_markdown(folder: Path) -> str:
    """One table row per model × corpus × level from the JSON files under ``folder`` (one sub-folder per model)."""
    header = [
        "model",
        "corpus",
        "level",
        "chunks",
        "queries",
        "τ = 1",
        "0.8 (paper)",
        "auto",
        "grid best",
        "query τ 0.9",
        "auto meets",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for file in sorted(folder.glob("*/*.json")):
        result = json.loads(file.read_text())
        for level, cell in result["levels"].items():
            documents = cell["documents"]
            best_label = grid_best(documents)
            auto, best = documents[cell["auto"]], documents[best_label]
            checks = verdict(auto, best)
            meets = checks["no_loss"] and checks["recovers"]
            lines.append(
                "| "
                + " | ".join(
                    [
                        file.parent.name,
                        result["dataset"],
                        level,
                        str(result["n_chunks"]),
                        str(cell["n_queries"]),
                        f"{documents['1.0']['mean_a']:.4f}",
                        _delta(documents["0.8"]),
                        f"{cell['auto']}: {_delta(auto)}",
                        f"{best_label}: {_delta(best)}",
                        _delta(cell["query_0.9"]),
                        "yes" if meets else "**no**",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def choice_markdown(folder: Path) -> str:
    """One row per model × corpus × level × size: how often each schedule was chosen over the orders, whether
    every order chose the same, and the truth at that size (grid best, and each choice's Δ, against τ = 1)."""
    header = ["model", "corpus", "level", "size", "documents", "queries", "choices (orders)", "same", "grid best"]
    header += ["choice Δ", "meets"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for file in sorted(folder.glob("*/*.json")):
        result = json.loads(file.read_text())
        for level in result["levels"]:
            for fraction, runs in _by_fraction(result["presentations"]).items():
                truth = result["sizes"][str(fraction)][level]
                counts = Counter(_choice(run) for run in runs)
                row = [file.parent.name, result["dataset"], level, f"{fraction:.0%}", str(runs[0]["n_documents"])]
                row += [str(truth["n_queries"]), "; ".join(f"{choice} ×{count}" for choice, count in counts.items())]
                row.append("yes" if len(counts) == 1 else "**no**")
                documents = truth["documents"]
                if not documents:
                    lines.append("| " + " | ".join([*row, "no judged query", "—", "—"]) + " |")
                    continue
                best_label = grid_best(documents)
                labels = sorted({run["label"] for run in runs})
                checks = [verdict(documents[label], documents[best_label]) for label in labels]
                meets = len(counts) == 1 and all(check["no_loss"] and check["recovers"] for check in checks)
                row.append(f"{best_label}: {_delta(documents[best_label])}")
                row.append("; ".join(f"{label}: {_delta(documents[label])}" for label in labels))
                lines.append("| " + " | ".join([*row, "yes" if meets else "**no**"]) + " |")
    return "\n".join(lines)


def _by_fraction(runs: list[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    grouped: dict[float, list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(run["fraction"], []).append(run)
    return dict(sorted(grouped.items()))


def _choice(run: dict[str, Any]) -> str:
    return f"{run['label']} (pending)" if run["pending"] else run["label"]


def _delta(comparison: dict[str, Any]) -> str:
    if comparison["mean_diff"] == 0 and comparison["ci_low"] == comparison["ci_high"]:
        return "±0"
    return (
        f"{comparison['relative_change']:+.2%} [{comparison['ci_low']:+.4f}, {comparison['ci_high']:+.4f}] "
        f"p={comparison['p_value']:.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate the document-τ selector on labelled corpora.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=None, help="model name or path (default: the bundled MiniLM)")
    parser.add_argument(
        "--corpus",
        action="append",
        required=True,
        help="NAME=PATH:LEVEL[,LEVEL][:MAX_DOCUMENTS], e.g. qmsum=/data/qmsum/test:document,chunk",
    )
    parser.add_argument("--tau", type=float, action="append", default=None, help="document τ grid")
    parser.add_argument("--orders", type=int, default=ORDERS, help="document orders per size (first: the corpus's own)")
    parser.add_argument(
        "--fraction", type=float, action="append", default=None, help="corpus sizes, as fractions of its documents"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    args = parser.parse_args(argv)
    try:
        specs = [_parse_spec(spec) for spec in args.corpus]
        fractions = sorted(set(args.fraction or FRACTIONS))
        next(presentations(["check"], fractions, args.orders))
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    embedding = TempScaleEmbedding(**({"model_name": args.model} if args.model else {}))
    taus = sorted(set(args.tau or GRID_TAUS) | {1.0, 0.8}, reverse=True)
    folder = args.out / Path(embedding.model_name).name
    folder.mkdir(parents=True, exist_ok=True)
    for name, path, levels, cap in specs:
        try:
            dataset = load_corpus(path, cap)
        except (OSError, ValueError) as error:
            parser.error(f"corpus {name!r}: cannot load {path}: {error}")
        result = validate_corpus(embedding, dataset, levels, taus, args.cache_dir, fractions, args.orders)
        result["dataset"] = name
        (folder / f"{name}.json").write_text(json.dumps(result, indent=1))
        for level, cell in result["levels"].items():
            documents = cell["documents"]
            best = grid_best(documents)
            logger.info(
                "%s %s: auto %s %+.2f%%, grid best %s %+.2f%%",
                name,
                level,
                cell["auto"],
                100 * documents[cell["auto"]]["relative_change"],
                best,
                100 * documents[best]["relative_change"],
            )


def _parse_spec(spec: str) -> tuple[str, str, list[Level], int | None]:
    """``NAME=PATH:LEVEL[,LEVEL][:MAX_DOCUMENTS]``."""
    name, _, rest = spec.partition("=")
    path, _, tail = rest.partition(":")
    levels, _, cap = tail.partition(":")
    chosen = levels.split(",") if levels else []
    if not name or not path or not chosen or any(level not in ("document", "chunk") for level in chosen):
        raise ValueError(f"--corpus {spec!r}: expected NAME=PATH:LEVEL[,LEVEL][:MAX_DOCUMENTS], levels document/chunk")
    if cap and not cap.isdigit():
        raise ValueError(f"--corpus {spec!r}: MAX_DOCUMENTS must be a whole number, got {cap!r}")
    return name, path, cast("list[Level]", chosen), int(cap) if cap else None


if __name__ == "__main__":
    main()
