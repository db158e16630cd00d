"""``tempscale-index serve DIR``: keep the model and the index loaded and answer queries over HTTP."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from tempscale_index.cli import app
from tempscale_index.cli.common import TrustCodeOption, error_message, fail
from tempscale_index.serving import DEFAULT_MAX_QUEUE


@app.command("serve")
def serve_command(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most queries run in one forward pass (1: no batching).")
    ] = 16,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", help="How long a query waits for others to batch with.")
    ] = 2.0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Most queries waiting; more are answered 503 with Retry-After.")
    ] = DEFAULT_MAX_QUEUE,
    backend: Annotated[
        str | None,
        typer.Option(help="Query forward pass on 'onnx' or 'torch' (default: the torch-free ONNX path when recorded)."),
    ] = None,
    trust_code: TrustCodeOption = False,
) -> None:
    """Answer POST /query {"text", "k", "filters"} with the JSON of `query --json`; picks up new index versions."""
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        fail("serve needs the [serve] extra: pip install 'tempscale-index[serve]'", 2)
    if backend not in (None, "torch", "onnx"):
        fail(f"--backend must be 'torch' or 'onnx', got {backend!r}", 2)
    if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
        fail("--max-batch and --max-queue must be at least 1 and --max-wait-ms at least 0", 2)
    import uvicorn

    from tempscale_index.serving.searcher import IndexSearcher
    from tempscale_index.serving.server import create_app

    try:
        searcher = IndexSearcher.open(index, backend=backend, trust_callable_schedules=trust_code)
    except Exception as exc:
        fail(error_message(exc))
    typer.echo(
        f"serving {index} (version {searcher.store.version}, {searcher.store.num_nodes} chunks) on "
        f"http://{host}:{port}/query",
        err=True,
    )
    app = create_app(searcher, max_batch, max_wait_ms, max_queue)
    uvicorn.run(app, host=host, port=port, log_level="warning")
