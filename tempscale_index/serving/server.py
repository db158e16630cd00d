"""An HTTP endpoint over one index: ``POST /query {"text", "k", "filters"}`` answers as ``query --json`` does.

Why a micro-batcher: on a small CPU a query's cost is one encoder forward pass, and eight short queries in one
pass cost little more than one. Requests wait at most ``max_wait_ms`` (or until ``max_batch`` are queued), run as
one ONNX forward pass with a τ per row, then search FAISS one by one. A single worker thread owns the store, so
searches, node reads and the switch to a newly committed index version (checked between batches: one read of
``CURRENT``) never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tempscale_index.serving.searcher import IndexSearcher, allowed_node_ids

logger = logging.getLogger(__name__)

MAX_K = 1000
MAX_TEXT_CHARS = 100_000
REQUEST_KEYS = {"text", "k", "filters"}


class BadRequest(ValueError):
    """The request cannot be answered as sent (HTTP 400)."""


@dataclass
class _Pending:
    text: str
    k: int
    filters: Any
    future: asyncio.Future[dict[str, Any]] = field(repr=False)


class MicroBatcher:
    """Collects concurrent queries into batches run by one worker thread, in arrival order."""

    def __init__(self, searcher: IndexSearcher, max_batch: int = 16, max_wait_ms: float = 2.0) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be ≥ 1 and max_wait_ms ≥ 0, got {max_batch} and {max_wait_ms}")
        self.searcher = searcher
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, text: str, k: int, filters: Any = None) -> dict[str, Any]:
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(text, k, filters, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(remaining, 0)))
                except asyncio.TimeoutError:
                    break
            live = [item for item in batch if not item.future.done()]
            if live:
                outcomes = await asyncio.to_thread(self._answer, live)
                for item, outcome in zip(live, outcomes):
                    if item.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)

    def _answer(self, batch: list[_Pending]) -> list[dict[str, Any] | BaseException]:
        """Refresh, resolve each request's filters, then one forward pass for all that remain."""
        try:
            if self.searcher.refresh():
                logger.info("now serving version %d of %s", self.searcher.store.version, self.searcher.store.path)
        except Exception as exc:  # a damaged new version: keep answering from the loaded one
            logger.warning("could not load the newest index version: %s", exc)
        outcomes: list[dict[str, Any] | BaseException | None] = [None] * len(batch)
        allowed: list[list[int] | None] = []
        runnable: list[int] = []
        for position, item in enumerate(batch):
            try:
                allowed.append(allowed_node_ids(self.searcher.store, item.filters))
                runnable.append(position)
            except (ValueError, TypeError, NotImplementedError) as exc:
                outcomes[position] = BadRequest(f"bad filters: {exc}")
        if runnable:
            try:
                answers: list[Any] = self.searcher.query_many(
                    [batch[i].text for i in runnable], [batch[i].k for i in runnable], allowed
                )
            except Exception as exc:
                answers = [exc] * len(runnable)
            for position, answer in zip(runnable, answers):
                outcomes[position] = answer
        return outcomes  # type: ignore[return-value]


def parse_query_request(body: bytes) -> tuple[str, int, Any]:
    """``(text, k, filters)`` from a request body, or ``BadRequest`` saying what is wrong."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - REQUEST_KEYS)
    if unknown:
        raise BadRequest(f"unknown keys {unknown}; known: {sorted(REQUEST_KEYS)}")
    text, k = data.get("text"), data.get("k", 5)
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'text' must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"'text' is longer than {MAX_TEXT_CHARS} characters")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= MAX_K:
        raise BadRequest(f"'k' must be an integer from 1 to {MAX_K}, got {k!r}")
    return text, k, parse_filters(data.get("filters"))


def parse_filters(filters: Any) -> Any:
    """LlamaIndex ``MetadataFilters`` from their dict form (``{"filters": [{"key", "value", "operator"}]}``)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise BadRequest(f"'filters' must be an object like {{\"filters\": [...]}}, got {type(filters).__name__}")
    from llama_index.core.vector_stores.types import MetadataFilters
    from pydantic import ValidationError

    try:
        return MetadataFilters.model_validate(filters)
    except ValidationError as exc:
        raise BadRequest(f"bad filters: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from None


def create_app(searcher: IndexSearcher, max_batch: int = 16, max_wait_ms: float = 2.0) -> Starlette:
    """The ASGI application: ``POST /query`` and ``GET /health``."""
    batcher = MicroBatcher(searcher, max_batch, max_wait_ms)

    async def query(request: Request) -> JSONResponse:
        try:
            text, k, filters = parse_query_request(await request.body())
            return JSONResponse(await batcher.submit(text, k, filters))
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:
            logger.exception("query failed")
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)

    async def health(request: Request) -> JSONResponse:
        store = searcher.store
        return JSONResponse(
            {"status": "ok", "index": str(store.path), "version": store.version, "chunks": int(store.index.ntotal)}
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
