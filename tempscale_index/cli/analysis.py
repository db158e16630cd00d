"""``sweep``, ``diagnose`` and ``calibrate``: τ analysis on a user's own data, each writing a Markdown report, its
JSON and its plot into one output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tempscale_index.cli import app
from tempscale_index.cli.common import DatasetFormat, EvalLevel, QMSumQueries, command_line, parse_schedule
from tempscale_index.cli.output import show_progress
from tempscale_index.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from tempscale_index.evaluation.calibration import Calibration
    from tempscale_index.evaluation.datasets import RetrievalDataset
    from tempscale_index.schedules import Schedule

DatasetArg = Annotated[
    Path, typer.Argument(help="BEIR folder, LlamaIndex QA JSON, or QMSum meeting JSON (folder or file).")
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Folder for the report, its JSON and its plot.")]
FormatOpt = Annotated[DatasetFormat, typer.Option("--format", help="Dataset layout.")]
QueriesOpt = Annotated[
    QMSumQueries, typer.Option("--qmsum-queries", help="QMSum only: reference summaries or questions.")
]
ModelOpt = Annotated[str, typer.Option("--model", help="Hugging Face name or local path of the embedding model.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Reuse chunk/query vectors across runs.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars (on a terminal only).")]


def _schedules(values: list[str] | None, default: tuple[str, ...]) -> dict[str, Schedule]:
    from tempscale_index.evaluation.sweep import schedule_label

    schedules = [parse_schedule(value.strip(), "τ") for value in (values or default)]
    return {schedule_label(schedule): schedule for schedule in schedules}


def _load(dataset: Path, format: DatasetFormat, queries: QMSumQueries) -> RetrievalDataset:
    from tempscale_index.evaluation.datasets import load_dataset

    try:
        return load_dataset(dataset, format=format.value, queries=queries.value)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="DATASET") from None


def _write_report(output: Path, name: str, title: str, command: str, body: str) -> Path:
    path = output / f"{name}.md"
    path.write_text(f"# {title}\n\nReproduce with:\n\n```\n{command}\n```\n\n{body}\n")
    return path


@app.command()
def sweep(
    context: typer.Context,
    dataset: DatasetArg,
    output: OutputOpt = Path("tempscale-sweep"),
    document_tau: Annotated[
        list[str] | None,
        typer.Option("--document-tau", metavar="TAU", help="Document τ or schedule JSON; repeat for a grid."),
    ] = None,
    query_tau: Annotated[
        list[str] | None, typer.Option("--query-tau", metavar="TAU", help="Query τ or schedule JSON; repeatable.")
    ] = None,
    level: Annotated[
        list[EvalLevel] | None,
        typer.Option("--level", metavar="LEVEL", help="document and/or chunk (needs span qrels)."),
    ] = None,
    measure: Annotated[str, typer.Option(help="Measure for the heatmap and the paired tests.")] = "nDCG@10",
    format: FormatOpt = DatasetFormat.auto,
    qmsum_queries: QueriesOpt = QMSumQueries.summaries,
    model: ModelOpt = DEFAULT_MODEL,
    cache_dir: CacheOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Score a grid of query τ × document τ: table, heatmap and paired tests against τ = 1."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.evaluation.calibration import BASELINE_LABEL
    from tempscale_index.evaluation.embedded import EmbeddedEvaluator
    from tempscale_index.evaluation.sweep import plot_heatmap, run_sweep, sweep_markdown
    from tempscale_index.schedules import as_schedule

    levels = [item.value for item in level] if level else ["document"]
    bars = show_progress(progress)
    documents = _schedules(document_tau, ("1.0", "0.9", "0.8"))
    queries = _schedules(query_tau, ("1.0", "0.9", "0.8"))
    documents.setdefault(BASELINE_LABEL, as_schedule(1.0))
    queries.setdefault(BASELINE_LABEL, as_schedule(1.0))
    data = _load(dataset, format, qmsum_queries)
    output.mkdir(parents=True, exist_ok=True)
    evaluator = EmbeddedEvaluator(data, TempScaleEmbedding(model_name=model), cache_dir=cache_dir, show_progress=bars)
    results = run_sweep(evaluator, documents, queries, tuple(levels), show_progress=bars)  # type: ignore[arg-type]
    sections = []
    for name, result in results.items():
        result.save_json(output / f"sweep-{name}.json")
        plot_heatmap(result, output / f"sweep-{name}.png", measure)
        best = result.best(measure)
        sections.append(
            f"## {name} level\n\nBest cell: document τ {best[0]}, query τ {best[1]}.\n\n"
            f"![heatmap](sweep-{name}.png)\n\n{sweep_markdown(result, (BASELINE_LABEL, BASELINE_LABEL), measure)}"
        )
    report = _write_report(output, "sweep", f"τ sweep on {data.name}", command_line(context), "\n\n".join(sections))
    typer.echo(f"wrote {report}")


@app.command()
def diagnose(
    context: typer.Context,
    dataset: DatasetArg,
    output: OutputOpt = Path("tempscale-diagnose"),
    document_tau: Annotated[
        list[str] | None,
        typer.Option("--document-tau", metavar="TAU", help="τ or schedule JSON to compare with τ = 1; repeatable."),
    ] = None,
    windows: Annotated[int, typer.Option(min=1, help="Windows sampled per length.")] = 200,
    seed: int = 0,
    format: FormatOpt = DatasetFormat.auto,
    qmsum_queries: QueriesOpt = QMSumQueries.summaries,
    model: ModelOpt = DEFAULT_MODEL,
    progress: ProgressOpt = True,
) -> None:
    """Collapse diagnostics: mean pairwise cosine and distance to centroid per length, at τ = 1 and other τ."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.evaluation.calibration import BASELINE_LABEL
    from tempscale_index.evaluation.diagnostics import (
        DEFAULT_WINDOW_LENGTHS,
        collapse_markdown,
        measure_collapse,
        plot_collapse,
        sample_nested_windows,
    )
    from tempscale_index.schedules import as_schedule

    schedules = _schedules(document_tau, ("0.8",))
    schedules = {BASELINE_LABEL: as_schedule(1.0), **schedules}
    data = _load(dataset, format, qmsum_queries)
    output.mkdir(parents=True, exist_ok=True)
    embedding = TempScaleEmbedding(model_name=model)
    texts = sample_nested_windows(list(data.corpus.values()), embedding, DEFAULT_WINDOW_LENGTHS, windows, seed)
    report = measure_collapse(embedding, texts, schedules, show_progress=show_progress(progress))
    report.save_json(output / "collapse.json")
    plot_collapse(report, output / "collapse.png", f"{data.name}: collapse by length ({embedding.model_name})")
    body = f"![collapse](collapse.png)\n\n{collapse_markdown(report)}"
    path = _write_report(output, "collapse", f"Collapse diagnostics on {data.name}", command_line(context), body)
    typer.echo(f"wrote {path}")


@app.command()
def calibrate(
    context: typer.Context,
    dataset: DatasetArg,
    output: OutputOpt = Path("tempscale-calibration"),
    unsupervised: Annotated[
        bool, typer.Option("--unsupervised", help="Use no qrels: decide from the corpus alone.")
    ] = False,
    level: Annotated[EvalLevel, typer.Option(help="Supervised: document or chunk level.")] = EvalLevel.document,
    dev_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Supervised: share of queries used to choose.")
    ] = 0.5,
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Keep τ = 1 unless the best beats it at this p-value.")
    ] = 0.05,
    seed: int = 0,
    format: FormatOpt = DatasetFormat.auto,
    qmsum_queries: QueriesOpt = QMSumQueries.summaries,
    model: ModelOpt = DEFAULT_MODEL,
    cache_dir: CacheOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Choose document and query schedules and write them to tempscale-config.json (ingest/query read it)."""
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.evaluation.calibration import (
        BASELINE_LABEL,
        calibrate_supervised,
        calibrate_unsupervised,
        split_queries,
    )
    from tempscale_index.evaluation.embedded import EmbeddedEvaluator
    from tempscale_index.evaluation.sweep import plot_heatmap, sweep_markdown

    bars = show_progress(progress)
    data = _load(dataset, format, qmsum_queries)
    output.mkdir(parents=True, exist_ok=True)
    embedding = TempScaleEmbedding(model_name=model)
    if unsupervised:
        calibration = calibrate_unsupervised(embedding, data, seed=seed)
        body = "Chosen from the corpus's own chunks (no queries or qrels used)."
    else:
        dev, test = split_queries(data, dev_fraction, seed)
        evaluator = EmbeddedEvaluator(dev, embedding, cache_dir=cache_dir, show_progress=bars)
        calibration, result = calibrate_supervised(evaluator, level=level.value, alpha=alpha, show_progress=bars)  # type: ignore[arg-type]
        plot_heatmap(result, output / "sweep-dev.png")
        body = (
            f"Chosen on {len(dev.queries)} dev queries; {len(test.queries)} held out (score them with `sweep`).\n\n"
            f"![dev sweep](sweep-dev.png)\n\n{sweep_markdown(result, (BASELINE_LABEL, BASELINE_LABEL))}"
        )
    config = calibration.save_config(output / "tempscale-config.json")
    (output / "calibration.json").write_text(json.dumps(calibration.to_dict(), indent=2))
    summary = _calibration_summary(calibration)
    _write_report(output, "calibration", f"Calibration on {data.name}", command_line(context), f"{summary}\n\n{body}")
    typer.echo(f"{summary}\nwrote {config}")


def _calibration_summary(calibration: Calibration) -> str:
    config = calibration.to_config()
    return (
        f"Method: {calibration.method}. Document schedule: `{json.dumps(config['document_temperature'])}`; "
        f"query schedule: `{json.dumps(config['query_temperature'])}`. Why: {calibration.evidence['reason']}."
    )
