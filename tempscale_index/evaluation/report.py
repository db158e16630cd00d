"""Evaluation reports: a Markdown summary for people and a JSON file (per-query scores included) for programs.

The JSON keeps every per-query value so that a later run can be compared with this one (``eval --compare-to``)
with a paired test, without re-running it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tempscale_index.evaluation.results import EvaluationResult, LengthBucket
from tempscale_index.evaluation.stats import PairedComparison, paired_comparison

Comparisons = Mapping[str, Sequence[PairedComparison]]
HEADLINE_MEASURE = "nDCG@10"


def write_report(
    result: EvaluationResult,
    output_dir: str | Path,
    name: str = "eval",
    baseline: EvaluationResult | None = None,
    comparisons: Comparisons | None = None,
    command: str | None = None,
) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.json`` into ``output_dir``; returns both paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command,
        "result": result.to_dict(),
        "baseline": baseline.to_dict() if baseline is not None else None,
        "comparisons": {level: [c.to_dict() for c in items] for level, items in (comparisons or {}).items()},
    }
    json_path, markdown_path = folder / f"{name}.json", folder / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(result, baseline, comparisons, command), encoding="utf-8")
    return markdown_path, json_path


def load_result(path: str | Path) -> EvaluationResult:
    """The evaluated configuration stored in a report JSON written by :func:`write_report`."""
    file = Path(path)
    try:
        payload = json.loads(file.read_text(encoding="utf-8"))
        return EvaluationResult.from_dict(payload["result"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{file} is not an evaluation report written by tempscale-index eval: {exc}") from None


def render_markdown(
    result: EvaluationResult,
    baseline: EvaluationResult | None = None,
    comparisons: Comparisons | None = None,
    command: str | None = None,
) -> str:
    lines = [f"# Retrieval evaluation: {result.dataset}", ""]
    if command:
        lines += ["Reproduce with:", "", "```bash", command, "```", ""]
    chunks = f", {result.n_chunks} chunks" if result.n_chunks is not None else ""
    lines += [f"{result.n_documents} documents{chunks}, {result.n_queries} judged queries.", ""]
    if result.settings:
        lines += ["Settings: " + ", ".join(f"`{key}` = `{_compact(value)}`" for key, value in result.settings.items())]
        lines.append("")
    for level, scores in result.levels.items():
        lines += [f"## {level.capitalize()} level ({len(scores.per_query)} queries)", ""]
        lines += _means_table({"this run": scores.means, **_baseline_row(baseline, level)})
        if comparisons and comparisons.get(level):
            lines += ["", "Paired comparison with the baseline (difference = this run − baseline):", ""]
            lines += _comparison_table(comparisons[level])
        unit = result.length_unit
        base = baseline.levels[level].per_query if baseline is not None and level in baseline.levels else None
        lines += ["", f"By length of the relevant document ({unit}):", ""]
        lines += _bucket_table(scores.by_document_length, unit, scores.per_query, base)
        lines += ["", f"By query length ({unit}):", ""]
        lines += _bucket_table(scores.by_query_length, unit, scores.per_query, base)
        lines.append("")
    return "\n".join(lines)


def _baseline_row(baseline: EvaluationResult | None, level: str) -> dict[str, dict[str, float]]:
    if baseline is None or level not in baseline.levels:
        return {}
    return {"baseline": baseline.levels[level].means}


def _means_table(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
    measures = list(next(iter(rows.values())))
    table = ["| run | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    for label, means in rows.items():
        table.append(f"| {label} | " + " | ".join(f"{means.get(m, math.nan):.4f}" for m in measures) + " |")
    return table


def _comparison_table(items: Sequence[PairedComparison]) -> list[str]:
    table = [
        "| measure | baseline | this run | difference [95% CI] | relative | p (paired randomization) |",
        "|---|---|---|---|---|---|",
    ]
    for c in items:
        interval = f"{c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        cells = [c.measure, f"{c.mean_a:.4f}", f"{c.mean_b:.4f}", interval]
        cells += [f"{c.relative_change:+.2%}", f"{c.p_value:.3f}"]
        table.append("| " + " | ".join(cells) + " |")
    return table


def _bucket_table(
    buckets: Sequence[LengthBucket],
    unit: str,
    per_query: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]] | None,
) -> list[str]:
    """Means per bucket; with a baseline, the headline measure's paired difference per bucket too, since
    TempScale is expected to help long inputs and not short ones."""
    if not buckets:
        return ["(no queries)"]
    measures = list(buckets[0].means)
    headline = HEADLINE_MEASURE if HEADLINE_MEASURE in measures else measures[0]
    header = [unit, "queries", *measures]
    if baseline is not None:
        header += [f"Δ {headline} vs baseline [95% CI]", "p"]
    table = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for bucket in buckets:
        cells = [bucket.label, str(bucket.n_queries), *(f"{bucket.means[m]:.4f}" for m in measures)]
        members = [query_id for query_id in bucket.query_ids if baseline is not None and query_id in baseline]
        if members:
            c = paired_comparison({q: baseline[q] for q in members}, {q: per_query[q] for q in members}, headline)
            cells += [f"{c.mean_diff:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}]", f"{c.p_value:.3f}"]
        elif baseline is not None:  # a report written before buckets kept their queries
            cells += ["n/a", "n/a"]
        table.append("| " + " | ".join(cells) + " |")
    return table


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)
