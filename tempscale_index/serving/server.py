"""An HTTP endpoint over one index: ``POST /query {"text", "k", "filters"}`` answers as ``query --json`` does.

Requests are checked before any work (``requests.py``: 415, 413, 400), queued for the supervised micro-batcher
(``batcher.py``: 503 with ``Retry-After`` when its bounded queue is full) and answered in arrival order. ``GET
/health`` reports the index version and the batch worker's state (503 when the worker is not running).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tempscale_index.serving import DEFAULT_MAX_QUEUE
from tempscale_index.serving.batcher import MicroBatcher, Overloaded
from tempscale_index.serving.requests import RequestError, parse_query_request, read_json_body
from tempscale_index.serving.searcher import IndexSearcher

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 1


def create_app(
    searcher: IndexSearcher, max_batch: int = 16, max_wait_ms: float = 2.0, max_queue: int = DEFAULT_MAX_QUEUE
) -> Starlette:
    """The ASGI application: ``POST /query`` and ``GET /health``."""
    batcher = MicroBatcher(searcher, max_batch, max_wait_ms, max_queue)

    async def query(request: Request) -> JSONResponse:
        try:
            text, k, filters = parse_query_request(await read_json_body(request))
            return JSONResponse(await batcher.submit(text, k, filters))
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except Overloaded as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        except Exception as exc:
            logger.error("query failed: %s: %s", type(exc).__name__, exc)
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    async def health(request: Request) -> JSONResponse:
        store, worker = searcher.store, batcher.health()
        running = worker["state"] == "running"
        return JSONResponse(
            {
                "status": "ok" if running else "unavailable",
                "index": str(store.path),
                "version": store.version,
                "chunks": int(store.index.ntotal),
                "worker": worker,
            },
            status_code=200 if running else 503,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    return Starlette(
        routes=[Route("/query", query, methods=["POST"]), Route("/health", health, methods=["GET"])], lifespan=lifespan
    )
