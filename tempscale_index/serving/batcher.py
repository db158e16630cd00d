"""The micro-batcher behind ``serve``: concurrent queries collected into one forward pass, in arrival order.

Why batching: on a small CPU a query's cost is one encoder forward pass, and eight short queries in one pass cost
little more than one. Requests wait at most ``max_wait_ms`` (0: only what is already queued) or until
``max_batch`` are queued. A single worker thread owns the store, so searches, node reads and the switch to a newly
committed version (checked between batches) never overlap.

Why the limits: the queue is bounded (a full queue answers 503 with ``Retry-After`` instead of growing without
end), and the worker loop is supervised: anything that escapes a batch fails that batch's requests only, and the
loop restarts; ``health()`` reports its state. ``$TEMPSCALE_INDEX_SERVE_FAULT_EVERY=N`` injects such a fault into
every Nth batch (for the load-with-faults benchmark and tests; unset, it costs nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from tempscale_index.serving import DEFAULT_MAX_QUEUE
from tempscale_index.serving.requests import BadRequest
from tempscale_index.serving.searcher import IndexSearcher, allowed_node_ids

logger = logging.getLogger(__name__)

FAULT_ENV = "TEMPSCALE_INDEX_SERVE_FAULT_EVERY"


class Overloaded(RuntimeError):
    """The queue is full (HTTP 503 with ``Retry-After``)."""


class InjectedFault(RuntimeError):
    """A fault injected by ``$TEMPSCALE_INDEX_SERVE_FAULT_EVERY``."""


@dataclass
class _Pending:
    text: str
    k: int
    filters: Any
    future: asyncio.Future[dict[str, Any]] = field(repr=False)


class MicroBatcher:
    """Collects concurrent queries into batches run by one supervised worker thread."""

    def __init__(
        self,
        searcher: IndexSearcher,
        max_batch: int = 16,
        max_wait_ms: float = 2.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError(
                f"max_batch and max_queue must be ≥ 1 and max_wait_ms ≥ 0, got {max_batch}, {max_queue}, {max_wait_ms}"
            )
        self.searcher = searcher
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000, max_queue
        self.restarts, self.last_error = 0, None
        self._fault_every = int(os.environ.get(FAULT_ENV) or 0)
        self._batches = 0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._batch: list[_Pending] = []  # the batch in progress: what a fault fails

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.max_queue)
        self._task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> dict[str, Any]:
        """The worker's state: ``running`` (or ``stopped``), restarts so far, the last fault, the queue length."""
        running = self._task is not None and not self._task.done()
        return {
            "state": "running" if running else "stopped",
            "restarts": self.restarts,
            "last_error": self.last_error,
            "queued": self._queue.qsize() if self._queue is not None else 0,
            "max_queue": self.max_queue,
        }

    async def submit(self, text: str, k: int, filters: Any = None) -> dict[str, Any]:
        if self._queue is None or self._task is None or self._task.done():
            raise RuntimeError("the batch worker is not running")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(text, k, filters, future))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.max_queue} queries are already waiting; retry shortly") from None
        return await future

    async def _supervise(self) -> None:
        """Run the worker loop; a fault fails the batch in progress only, then the loop starts again."""
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.error("the batch worker failed (%s); its %d queries fail, restarting", exc, len(self._batch))
                for item in self._batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                self._batch = []

    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:  # --max-wait-ms 0, or time is up: take only what is already queued
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
        return batch

    async def _run(self) -> None:
        while True:
            self._batch = await self._collect()
            live = [item for item in self._batch if not item.future.done()]
            self._batches += 1
            if self._fault_every and self._batches % self._fault_every == 0:
                raise InjectedFault(f"fault injected into batch {self._batches} by ${FAULT_ENV}")
            if live:
                outcomes = await asyncio.to_thread(self._answer, live)
                for item, outcome in zip(live, outcomes):
                    if item.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)
            self._batch = []

    def _answer(self, batch: list[_Pending]) -> list[dict[str, Any] | BaseException]:
        """Refresh, resolve each request's filters, then one forward pass for all that remain."""
        try:
            if self.searcher.refresh():
                logger.info("now serving version %d of %s", self.searcher.store.version, self.searcher.store.path)
        except Exception as exc:  # a damaged new version: keep answering from the loaded one
            logger.warning("could not load the newest index version (kept serving the loaded one): %s", exc)
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
