"""τ sweeps: every (query schedule, document schedule) pair scored on one dataset, as a table and a heatmap.

This is the paper's Figures 13/15 for a user's own data. Cells are computed document schedule by document
schedule, so the corpus is embedded once per document schedule and the queries once per query schedule
(``EmbeddedEvaluator`` caches both). Every cell keeps its per-query scores, so any cell can be compared with
the τ = 1 cell by a paired test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tempscale_index.evaluation.embedded import EmbeddedEvaluator
from tempscale_index.evaluation.metrics import DEFAULT_MEASURES, PerQuery, mean_scores
from tempscale_index.evaluation.results import Level
from tempscale_index.evaluation.stats import PairedComparison, paired_comparison
from tempscale_index.schedules import Schedule


def schedule_label(schedule: Schedule) -> str:
    """A short name for tables and plots: ``0.9`` for a constant, ``loglinear 64→1.0, 256→0.9`` and so on."""
    data = schedule.to_dict()
    if data["type"] == "constant":
        return f"{data['value']:.2f}".rstrip("0").rstrip(".") if data["value"] != 1 else "1.0"
    if data["type"] == "loglinear":
        return f"loglinear {data['short_tokens']}→{data['short_tau']}, {data['long_tokens']}→{data['long_tau']}"
    if data["type"] == "piecewise":
        bounds = [f"≤{b}→{t}" for b, t in zip(data["boundaries"], data["taus_by_bucket"])]
        return "piecewise " + ", ".join([*bounds, f"else {data['taus_by_bucket'][-1]}"])
    return " ".join(f"{key}={value}" for key, value in data.items())


@dataclass
class SweepResult:
    """Per-query scores for each ``(document label, query label)`` cell of a grid at one level."""

    dataset: str
    level: Level
    document_schedules: dict[str, Schedule]
    query_schedules: dict[str, Schedule]
    cells: dict[tuple[str, str], PerQuery]

    def means(self, measure: str) -> np.ndarray:
        """Mean ``measure`` as a (query schedules × document schedules) matrix, in label order."""
        return np.array(
            [[mean_scores(self.cells[(d, q)])[measure] for d in self.document_schedules] for q in self.query_schedules]
        )

    def best(self, measure: str = "nDCG@10") -> tuple[str, str]:
        """The ``(document label, query label)`` cell with the highest mean ``measure`` (first one on ties)."""
        return max(self.cells, key=lambda cell: mean_scores(self.cells[cell])[measure])

    def compare(
        self, baseline: tuple[str, str], measure: str = "nDCG@10", **kwargs: Any
    ) -> dict[tuple[str, str], PairedComparison]:
        """Every cell against ``baseline`` (usually τ = 1 for both), paired over queries."""
        if baseline not in self.cells:
            raise KeyError(f"baseline cell {baseline} is not in the sweep; cells are {sorted(self.cells)}")
        return {
            cell: paired_comparison(self.cells[baseline], per_query, measure, **kwargs)
            for cell, per_query in self.cells.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "level": self.level,
            "document_schedules": {label: s.to_dict() for label, s in self.document_schedules.items()},
            "query_schedules": {label: s.to_dict() for label, s in self.query_schedules.items()},
            "cells": [
                {"document": d, "query": q, "means": mean_scores(per_query), "per_query": per_query}
                for (d, q), per_query in self.cells.items()
            ],
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


def run_sweep(
    evaluator: EmbeddedEvaluator,
    document_schedules: Mapping[str, Schedule],
    query_schedules: Mapping[str, Schedule],
    levels: tuple[Level, ...] = ("document",),
    measures: tuple[str, ...] = DEFAULT_MEASURES,
    show_progress: bool = False,
) -> dict[Level, SweepResult]:
    """Score every pair of schedules at every level; one corpus embedding per document schedule."""
    if not document_schedules or not query_schedules:
        raise ValueError("a sweep needs at least one document schedule and one query schedule")
    results = {
        level: SweepResult(evaluator.dataset.name, level, dict(document_schedules), dict(query_schedules), {})
        for level in levels
    }
    grid = [(d, q) for d in document_schedules for q in query_schedules]
    for d, q in tqdm(grid, desc="Sweep", unit="cell", disable=not show_progress):
        for level in levels:
            results[level].cells[(d, q)] = evaluator.evaluate(
                document_schedules[d], query_schedules[q], level, measures
            )
    return results


def plot_heatmap(result: SweepResult, path: str | Path, measure: str = "nDCG@10") -> Path:
    """Query schedules down, document schedules across, each cell annotated with its mean ``measure``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = result.means(measure)
    documents, queries = list(result.document_schedules), list(result.query_schedules)
    figure, axis = plt.subplots(figsize=(1.2 * len(documents) + 2.5, 0.7 * len(queries) + 2))
    image = axis.imshow(values, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(documents)), documents, rotation=30, ha="right")
    axis.set_yticks(range(len(queries)), queries)
    axis.set_xlabel("document τ")
    axis.set_ylabel("query τ")
    best = np.unravel_index(np.argmax(values), values.shape)
    for (row, column), value in np.ndenumerate(values):
        weight = "bold" if (row, column) == best else "normal"
        axis.text(column, row, f"{value:.4f}", ha="center", va="center", color="w", fontsize=8, weight=weight)
    figure.colorbar(image, ax=axis, label=measure)
    axis.set_title(f"{result.dataset}: {measure} ({result.level} level)")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def sweep_markdown(result: SweepResult, baseline: tuple[str, str], measure: str = "nDCG@10") -> str:
    """A Markdown table: every cell's means, and its paired difference from ``baseline`` on ``measure``."""
    comparisons = result.compare(baseline, measure)
    measures = list(mean_scores(result.cells[baseline]))
    header = ["document τ", "query τ", *measures, f"Δ{measure} vs {baseline[0]}/{baseline[1]} [95% CI]", "rel.", "p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (d, q), per_query in result.cells.items():
        means = mean_scores(per_query)
        c = comparisons[(d, q)]
        lines.append(
            "| "
            + " | ".join(
                [
                    d,
                    q,
                    *(f"{means[m]:.4f}" for m in measures),
                    f"{c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
                    f"{c.relative_change:+.2%}",
                    f"{c.p_value:.3f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)
