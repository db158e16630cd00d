"""``tempscale-index eval``: score a TempScale configuration on a test collection, optionally against a baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tempscale_index.cli import app
from tempscale_index.cli.common import (
    SCHEDULE_KEYS,
    DatasetFormat,
    EvalLevel,
    PrecisionChoice,
    QMSumQueries,
    command_line,
    error_message,
    fail,
    load_config_file,
    parse_schedule,
    settings_for_embedding,
    stored_config,
)
from tempscale_index.cli.output import show_progress

if TYPE_CHECKING:
    from tempscale_index.evaluation.results import EvaluationResult
    from tempscale_index.schedules import Schedule


@app.command("eval")
def evaluate(
    context: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="BEIR folder, LlamaIndex QA JSON, or QMSum JSON folder/file.")],
    dataset_format: Annotated[DatasetFormat, typer.Option("--format", help="Dataset layout.")] = DatasetFormat.auto,
    split: Annotated[str, typer.Option(help="BEIR qrels split (qrels/<split>.tsv).")] = "test",
    queries: Annotated[
        QMSumQueries, typer.Option(help="QMSum queries: reference summaries (LongEmbed) or the questions (spans).")
    ] = QMSumQueries.summaries,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the Markdown and JSON report.")] = Path(
        "eval-report"
    ),
    name: Annotated[str, typer.Option(help="Report file name, without extension.")] = "eval",
    config: Annotated[
        Path | None, typer.Option(help="JSON with document_temperature/query_temperature (calibrate's output).")
    ] = None,
    document_tau: Annotated[
        str | None, typer.Option(help="Document τ: a number or a schedule as JSON (overrides --config).")
    ] = None,
    query_tau: Annotated[str | None, typer.Option(help="Query τ: a number or a schedule as JSON.")] = None,
    baseline_tau: Annotated[
        float | None, typer.Option(help="Also evaluate this constant τ (e.g. 1.0) and compare, paired per query.")
    ] = None,
    compare_to: Annotated[
        Path | None, typer.Option(help="A previous report JSON to compare with, paired per query.")
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", "-i", help="Evaluate this ingest index (created from the dataset if missing)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name or path (default: bundled all-MiniLM-L6-v2).")] = None,
    precision: Annotated[
        PrecisionChoice | None, typer.Option(help="float32 (default) or int8 (quantized weights on ONNX Runtime).")
    ] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in model tokens (default: the window).")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Chunk overlap in model tokens (default: 32, or the index's own).")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="Chunks retrieved per query.")] = 1000,
    level: Annotated[
        list[EvalLevel] | None,
        typer.Option(
            metavar="LEVEL", help="document or chunk, repeatable (default: document, and chunk with span qrels)."
        ),
    ] = None,
    measure: Annotated[
        list[str] | None, typer.Option(metavar="NAME", help="ir_measures names (default: the standard six).")
    ] = None,
    buckets: Annotated[int, typer.Option(min=1, help="Length buckets (equal numbers of queries).")] = 3,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 32,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Score retrieval at document level (best chunk per document) and chunk level (span overlap)."""
    if baseline_tau is not None and compare_to is not None:
        fail("give either --baseline-tau or --compare-to, not both", 2)
    # torch, transformers and LlamaIndex load only when this command runs, not for every `--help`
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.evaluation.datasets import DatasetFormatError, load_dataset
    from tempscale_index.evaluation.metrics import DEFAULT_MEASURES
    from tempscale_index.evaluation.report import load_result, write_report
    from tempscale_index.evaluation.results import compare_results
    from tempscale_index.evaluation.retrieval import evaluate_index, evaluate_tempscale
    from tempscale_index.pipeline.ingest import DEFAULT_CHUNK_OVERLAP
    from tempscale_index.schedules import ConstantSchedule

    progress = show_progress(progress)

    try:
        data = load_dataset(dataset, dataset_format.value, split=split, queries=queries.value)
        document_schedule, query_schedule = _schedules(config, document_tau, query_tau)
        previous = load_result(compare_to) if compare_to is not None else None
    except (DatasetFormatError, FileNotFoundError, TypeError, ValueError) as exc:
        fail(str(exc), 2)

    embedding_options: dict[str, Any] = {"embed_batch_size": batch_size, "show_progress_bar": progress}
    for key, value in (
        ("model_name", model),
        ("document_temperature", document_schedule),
        ("query_temperature", query_schedule),
        ("precision", precision.value if precision else None),
    ):
        if value is not None:
            embedding_options[key] = value
    customized = len(embedding_options) > 2
    options: dict[str, Any] = {
        "chunk_size": chunk_size,
        "top_k": top_k,
        "levels": [item.value for item in level] if level else None,
        "measures": measure or DEFAULT_MEASURES,
        "n_buckets": buckets,
        "show_progress": progress,
    }
    overlap = DEFAULT_CHUNK_OVERLAP if chunk_overlap is None else chunk_overlap
    try:
        if index is None:
            embedding = TempScaleEmbedding(**embedding_options)
            result = evaluate_tempscale(data, embedding, chunk_overlap=overlap, **options)
        else:  # an existing index keeps its own configuration unless the options ask for another (then: an error)
            embedding = TempScaleEmbedding(**embedding_options) if customized or not stored_config(index) else None
            result = evaluate_index(data, index, embedding, chunk_overlap=chunk_overlap, **options)
        if baseline_tau is not None:
            tau = ConstantSchedule(baseline_tau)
            base = embedding or TempScaleEmbedding.from_index_config(stored_config(index))
            baseline_embedding = base.model_copy(update={"document_temperature": tau, "query_temperature": tau})
            options["chunk_size"] = result.settings["chunk_size"]
            overlap = result.settings["chunk_overlap"]
            previous = evaluate_tempscale(data, baseline_embedding, chunk_overlap=overlap, **options)
        comparisons = compare_results(previous, result) if previous is not None else None
    except ValueError as exc:
        fail(error_message(exc), 2)
    command = command_line(context)
    markdown_path, json_path = write_report(result, output, name, previous, comparisons, command)
    _print_summary(result, previous)
    typer.echo(f"Report: {markdown_path}\nJSON:   {json_path}")


def _schedules(
    config: Path | None, document_tau: str | None, query_tau: str | None
) -> tuple[Schedule | None, Schedule | None]:
    """Schedules from the config file, each overridden by its own option; None keeps the embedding's default."""
    from tempscale_index.schedules import as_schedule

    settings = settings_for_embedding(load_config_file(config) if config is not None else {}, None, None)
    chosen: dict[str, Schedule | None] = {
        key: as_schedule(settings[key], f"{config}: {key}") if key in settings else None for key in SCHEDULE_KEYS
    }
    for key, option, text in (
        ("document_temperature", "--document-tau", document_tau),
        ("query_temperature", "--query-tau", query_tau),
    ):
        if text is not None:
            chosen[key] = parse_schedule(text, option)
    return chosen["document_temperature"], chosen["query_temperature"]


def _print_summary(result: EvaluationResult, baseline: EvaluationResult | None) -> None:
    for level, scores in result.levels.items():
        typer.echo(f"{level} level, {len(scores.per_query)} queries:")
        for measure, value in scores.means.items():
            line = f"  {measure:<8} {value:.4f}"
            if baseline is not None and level in baseline.levels and measure in baseline.levels[level].means:
                line += f"  (baseline {baseline.levels[level].means[measure]:.4f})"
            typer.echo(line)
