"""``tempscale-index batch``: the resumable Ray Data indexing job, into a FAISS index or a vector database."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from tempscale_index.cli import app
from tempscale_index.cli.common import (
    DocTemperatureOption,
    embedding_for,
    error_message,
    fail,
    read_build_settings,
)
from tempscale_index.cli.output import show_progress

logger = logging.getLogger(__name__)

DEFAULT_LEDGER_DIR = Path(".tempscale-batch")


def _connector(qdrant: str | None, milvus: str | None, lancedb: str | None, collection: str) -> Any:
    """The vector-database connector named on the command line (its client imported only when asked for)."""
    if qdrant is not None:
        from tempscale_index.connectors.qdrant import QdrantConnector

        is_url = qdrant.startswith(("http://", "https://"))
        return QdrantConnector(collection, url=qdrant) if is_url else QdrantConnector(collection, path=qdrant)
    if milvus is not None:
        from tempscale_index.connectors.milvus import MilvusConnector

        return MilvusConnector(collection, uri=milvus)
    from tempscale_index.connectors.lancedb import LanceDBConnector

    return LanceDBConnector(collection, uri=str(lancedb))


@app.command("batch")
def batch_command(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATHS", help="Text files, .jsonl or .parquet files, or folders of them.")
    ],
    index: Annotated[Path | None, typer.Option("--index", "-i", help="FAISS index directory to build.")] = None,
    qdrant: Annotated[str | None, typer.Option(help="Qdrant: a local-mode directory or a server URL.")] = None,
    milvus: Annotated[str | None, typer.Option(help="Milvus: a Milvus Lite .db file or a server URI.")] = None,
    lancedb: Annotated[str | None, typer.Option(help="LanceDB: a database directory or URI.")] = None,
    collection: Annotated[str, typer.Option(help="Collection (table) name in the vector database.")] = "tempscale",
    workers: Annotated[int, typer.Option(min=1, help="Embedding workers (Ray actors, one model each).")] = 1,
    cpus_per_worker: Annotated[
        float, typer.Option(min=0.0, help="CPUs reserved per worker (its torch threads).")
    ] = 1.0,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address ('auto', 'ray://head:10001'); default: local Ray.")
    ] = None,
    text_field: Annotated[str, typer.Option(help="JSONL/Parquet field holding the text.")] = "text",
    id_field: Annotated[str, typer.Option(help="JSONL/Parquet field holding the document id.")] = "id",
    chunk_size: Annotated[int | None, typer.Option(help="Chunk size in model tokens (default: the window).")] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option(min=0, help="Overlap between chunks in model tokens (default 32).")
    ] = None,
    index_type: Annotated[
        str | None, typer.Option("--index-type", help="FAISS index_factory string (--index; default Flat).")
    ] = None,
    doc_temperature: DocTemperatureOption = None,
    query_temperature: Annotated[float | None, typer.Option("--query-temperature", help="Query τ (constant).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON/YAML file: model, schedules, chunking, index_type.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: the bundled all-MiniLM-L6-v2).")] = None,
    documents_per_batch: Annotated[int, typer.Option(min=1, help="Documents per worker call.")] = 8,
    commit_every: Annotated[
        int, typer.Option(min=1, help="Chunks per commit (a crash redoes at most this many).")
    ] = 512,
    ledger: Annotated[
        Path | None, typer.Option(help="Commit ledger for a vector database (default .tempscale-batch/STORE-NAME).")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Chunk and embed documents on a Ray actor pool and commit them; a rerun skips committed documents."""
    targets = {"--index": index, "--qdrant": qdrant, "--milvus": milvus, "--lancedb": lancedb}
    chosen = [name for name, value in targets.items() if value is not None]
    if len(chosen) != 1:
        fail(f"give exactly one output of {', '.join(targets)}; got {', '.join(chosen) or 'none'}", 2)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        fail(f"path not found: {missing[0]}", 2)
    asked = read_build_settings(
        config,
        doc_tau=doc_temperature,
        query_tau=query_temperature,
        model=model,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        index_type=index_type,
    )
    embedding_settings = asked.embedding

    from tempscale_index.batch import ConnectorSink, FaissShardSink, run_batch_job
    from tempscale_index.batch.job import calibrate_on_driver
    from tempscale_index.embedding import TempScaleEmbedding
    from tempscale_index.pipeline.ingest import DEFAULT_CHUNK_OVERLAP

    overlap = DEFAULT_CHUNK_OVERLAP if asked.chunk_overlap is None else asked.chunk_overlap
    chunking = {"chunk_size": asked.chunk_size, "chunk_overlap": overlap}

    connector = None
    decide_on = {
        **chunking,
        "text_field": text_field,
        "id_field": id_field,
        "address": address,
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
    }
    try:
        if index is not None:
            embedding = embedding_for(index, embedding_settings)
            calibrate_on_driver(embedding, paths, **decide_on)
            sink: Any = FaissShardSink(index, embedding.index_config(), index_factory=asked.index_type or "Flat")
        else:
            connector = _connector(qdrant, milvus, lancedb, collection)
            stored = connector.load_config()
            embedding = connector.attach(
                TempScaleEmbedding(**embedding_settings) if embedding_settings or stored is None else None
            )
            calibrate_on_driver(embedding, paths, **decide_on)
            connector.attach(embedding)  # creates a new collection now that 'auto' has decided
            store_name = chosen[0].removeprefix("--")
            sink = ConnectorSink(connector, ledger or DEFAULT_LEDGER_DIR / f"{store_name}-{collection}.jsonl")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            report = run_batch_job(
                paths,
                sink,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                documents_per_batch=documents_per_batch,
                commit_every=commit_every,
                **chunking,
                text_field=text_field,
                id_field=id_field,
                address=address,
                show_progress=show_progress(progress),
            )
    except Exception as exc:
        fail(error_message(exc))
    finally:
        if connector is not None:
            connector.close()
    for unreadable in report.unreadable:
        logger.warning("skipped unreadable input %s", unreadable)
    if json_output:
        typer.echo(json.dumps({**vars(report), "chunks_per_second": report.chunks_per_second}, indent=2))
    else:
        typer.echo(
            f"{report.committed_documents} documents committed ({report.committed_chunks} chunks, "
            f"{report.chunks_per_second:.1f} chunks/s), {report.already_committed} already committed, "
            f"{len(report.unreadable)} unreadable. {report.output} [{report.seconds:.1f}s]"
        )
