"""``tempscale-index ingest | query | info | delete``: build, search and update a persisted FAISS index."""

from __future__ import annotations

import itertools
import json
import logging
import textwrap
import warnings
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tempscale_index.cli import app
from tempscale_index.cli.common import (
    DocTemperatureOption,
    PrecisionChoice,
    TrustCodeOption,
    check_settings,
    embedding_for,
    error_message,
    fail,
    load_config_file,
    read_build_settings,
    settings_for_embedding,
)
from tempscale_index.cli.output import show_progress

if TYPE_CHECKING:
    from tempscale_index.pipeline import IngestReport

logger = logging.getLogger(__name__)


class QueryBackend(str, Enum):
    onnx = "onnx"
    torch = "torch"


@app.command("ingest")
def ingest_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(metavar="PATHS", help="Files or folders to ingest (recursively).")
    ] = None,
    index: Annotated[Path, typer.Option("--index", "-i", help="Index directory (created if needed).")] = ...,
    installed_docs: Annotated[
        bool, typer.Option("--installed-docs", help="Ingest the long descriptions of the installed Python packages.")
    ] = False,
    chunk_size: Annotated[
        int | None, typer.Option(help="Chunk size in model tokens (default: the model's window).")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(help="Overlap between chunks in model tokens (default 32).")
    ] = None,
    index_type: Annotated[
        str | None, typer.Option("--index-type", help="FAISS index_factory string: Flat, HNSW32, IVF256,Flat…")
    ] = None,
    doc_temperature: DocTemperatureOption = None,
    query_temperature: Annotated[float | None, typer.Option("--query-temperature", help="Query τ (constant).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON/YAML file: model, schedules, chunking, index_type.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the bundled all-MiniLM-L6-v2).")] = None,
    precision: Annotated[
        PrecisionChoice | None,
        typer.Option(
            help="float32 (default) or int8: quantized weights on ONNX Runtime, "
            "~1.2x faster on CPU, slightly different vectors (docs/pipeline.md)."
        ),
    ] = None,
    extensions: Annotated[
        list[str] | None,
        typer.Option("--ext", metavar="EXT", help="Only files with this extension (repeatable), e.g. --ext .md"),
    ] = None,
    batch_chunks: Annotated[int, typer.Option(min=1, help="Chunks embedded and added per batch.")] = 256,
    commit_every: Annotated[
        int | None,
        typer.Option(min=1, help="Also commit every N documents (a crash keeps the work committed so far)."),
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    trust_code: TrustCodeOption = False,
) -> None:
    """Chunk, embed (document τ per chunk) and index documents; re-ingesting skips unchanged ones."""
    from tempscale_index.pipeline import IngestReport, documents_from_paths, ingest, iter_installed_docs

    if not paths and not installed_docs:
        fail("give at least one PATH to ingest, or --installed-docs", 2)
    missing = [str(path) for path in paths or [] if not path.exists()]
    if missing:
        fail(f"path not found: {missing[0]}", 2)
    asked = read_build_settings(
        config,
        doc_tau=doc_temperature,
        query_tau=query_temperature,
        model=model,
        precision=precision.value if precision else None,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        index_type=index_type,
    )
    report = IngestReport(index_dir=str(index))
    try:
        from_paths, total = documents_from_paths(paths, extensions=extensions, report=report) if paths else ([], 0)
        documents = itertools.chain(from_paths, iter_installed_docs() if installed_docs else [])
        embedding = embedding_for(index, asked.embedding, trust_code)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="skipped unreadable file")  # reported below, one line each
            ingest(
                documents,
                index,
                embedding,
                index_factory=asked.index_type,
                chunk_size=asked.chunk_size,
                chunk_overlap=asked.chunk_overlap,
                batch_chunks=batch_chunks,
                commit_every=commit_every,
                show_progress=show_progress(progress),
                total=None if installed_docs else total,
                report=report,
            )
    except Exception as exc:
        _warn_skipped(report)  # before the error: with only unreadable files they are its reason
        fail(error_message(exc))
    _warn_skipped(report)
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        typer.echo(report.summary())


def _warn_skipped(report: IngestReport) -> None:
    for skipped in report.skipped_files:
        logger.warning("skipped unreadable file %s (%s)", skipped.path, skipped.reason)


@app.command("query")
def query_command(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    text: Annotated[str, typer.Argument(help="The query.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="How many chunks to return.")] = 5,
    doc_id: Annotated[
        list[str] | None, typer.Option("--doc-id", metavar="ID", help="Only these documents (repeatable).")
    ] = None,
    file_name: Annotated[
        list[str] | None, typer.Option("--file-name", metavar="NAME", help="Only these file names (repeatable).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    snippet_chars: Annotated[int, typer.Option(help="Snippet length in the table.")] = 160,
    backend: Annotated[
        QueryBackend | None,
        typer.Option(help="Query forward pass on 'onnx' or 'torch' (default: onnx when onnxruntime is installed)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="calibrate's config file (JSON/YAML): the index must have been built with its model and schedules.",
        ),
    ] = None,
    trust_code: TrustCodeOption = False,
) -> None:
    """Search the index with the query τ; prints score, τ, source and a snippet for each chunk."""
    from tempscale_index.serving.searcher import IndexSearcher, allowed_node_ids

    if not text.strip():
        fail("the query text is empty", 2)
    settings = settings_for_embedding(load_config_file(config), None, None) if config is not None else {}
    try:
        check_settings(index, settings)
        searcher = IndexSearcher.open(
            index, backend=backend.value if backend else None, trust_callable_schedules=trust_code
        )
        filters = None
        if file_name:  # LlamaIndex is imported only when filtering
            from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

            filters = MetadataFilters(
                filters=[MetadataFilter(key="file_name", value=list(file_name), operator=FilterOperator.IN)]
            )
        answer = searcher.query(text, k, allowed_node_ids(searcher.store, filters, doc_id))
    except Exception as exc:
        fail(error_message(exc))
    if json_output:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    rows = answer["results"]
    if not rows:
        typer.echo("no results")
        return
    typer.echo(f"query τ = {answer['query_tau']:.3f}; {len(rows)} of {searcher.store.num_nodes} chunks")
    typer.echo(f"{'#':>2}  {'score':>6}  {'τ':>5}  {'source':<28}  snippet")
    width = max(40, int(snippet_chars))
    for row in rows:
        snippet = " ".join(row["text"].split())
        snippet = textwrap.shorten(snippet, width=width, placeholder="…")
        source = str(row["source"])
        source = source if len(source) <= 28 else "…" + source[-27:]
        tau = "-" if row["tau"] is None else f"{row['tau']:.3f}"
        typer.echo(f"{row['rank']:>2}  {row['score']:>6.3f}  {tau:>5}  {source:<28}  {snippet}")


@app.command("info")
def info_command(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    documents: Annotated[bool, typer.Option("--documents", help="Also list the document ids.")] = False,
) -> None:
    """What an index holds and how it was built (model, schedules, chunking, index type, counts)."""
    from tempscale_index.store import FaissStore

    try:
        with FaissStore.open(index) as store:
            info = store.info()
            doc_ids = sorted(store.documents) if documents else None
    except Exception as exc:
        fail(error_message(exc))
    if doc_ids is not None:
        info["document_ids"] = doc_ids
    if json_output:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    config = info["config"]
    lines = [
        f"index:        {info['path']} (version {info['version']}, {info['bytes'] / 1e6:.1f} MB)",
        f"documents:    {info['documents']}",
        f"chunks:       {info['nodes']}",
        f"index type:   {info['index_factory']}",
        f"model:        {config['model_name']} (dim {config['dimension']}, max {config['max_length']} tokens, "
        f"weights sha256 {config['weights_sha256'][:12]}…)",
        f"document τ:   {json.dumps(config['document_temperature'])}",
        *_auto_lines(config.get("document_temperature_selection")),
        f"query τ:      {json.dumps(config['query_temperature'])}",
        f"chunking:     {json.dumps(info['chunking'])}",
        f"created:      {info['created_at']}",
    ]
    typer.echo("\n".join(lines))
    for doc_id in doc_ids or []:
        typer.echo(f"  {doc_id}")


def _auto_lines(selection: dict[str, Any] | None) -> list[str]:
    """How 'auto' chose the document τ (nothing for an explicit τ)."""
    if not selection:
        return []
    evidence = selection["evidence"]
    sampled = (
        f"  sampled:      {evidence.get('n_sampled', 0)} texts from {evidence.get('n_documents', 0)} documents "
        f"(cap {evidence.get('cap_texts', '?')}, of {evidence.get('n_texts', '?')} chunks seen)"
    )
    return [f"  chosen by auto: {selection['reason']}", sampled, f"  evidence:     {json.dumps(evidence)}"]


@app.command("delete")
def delete_command(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    doc_id: Annotated[
        list[str],
        typer.Option("--doc-id", metavar="ID", help="Document id, or a file's path as given at ingest (repeatable)."),
    ],
) -> None:
    """Delete documents (all their chunks) by document id or file path; `info INDEX --documents` lists the ids."""
    from tempscale_index.pipeline import delete_documents

    try:
        removed, version = delete_documents(index, doc_id)
    except Exception as exc:
        fail(error_message(exc))
    typer.echo(f"deleted {len(set(doc_id))} document(s), {removed} chunks; {index} is now at version {version}")
