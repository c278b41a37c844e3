"""Calls to the vector store that back off and retry instead of dropping the batch.

The batch being processed is not acknowledged until the call succeeds, so the worker keeps its
place in the partition while the store is down and catches up when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TypeVar

from inference.errors import StoreError
from store.base import VectorStore
from streams.metrics import STORE_AVAILABLE, STORE_ERRORS, STORE_SECONDS

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreCaller:
    """Runs blocking store calls on one executor thread (or inline), with retry and metrics.

    ``executor=None`` runs each call on the event loop's thread: right for an engine that
    holds the GIL for the whole call (Qdrant Edge), where a thread buys no concurrency and
    each hop costs a hand-over of the GIL and a wake-up of the loop (~10% of the store
    thread's samples went to waking the loop: profile in ``git show
    a1ebc5a:bench/results/stream.json``).
    """

    def __init__(
        self,
        executor: Executor | None,
        max_backoff_s: float,
        first_backoff_s: float = 0.05,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._executor = executor
        self._max = max_backoff_s
        self._first = first_backoff_s
        self._sleep = sleep
        self.available = True
        STORE_AVAILABLE.set(1)  # healthy until a call fails, not "down" until the first call

    async def __call__(self, operation: str, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)``, retrying on StoreError with backoff, forever.

        On the executor's thread when there is one, else inline on the event loop's.
        """
        loop = asyncio.get_running_loop()
        backoff = self._first
        while True:
            start = time.perf_counter()
            try:
                if self._executor is None:
                    result = fn(*args)
                else:
                    result = await loop.run_in_executor(self._executor, fn, *args)
            except StoreError as exc:
                STORE_ERRORS.labels(operation).inc()
                if self.available:
                    log.warning("vector store %s failed (%s); backing off", operation, exc)
                self.available = False
                STORE_AVAILABLE.set(0)
                await self._sleep(backoff)
                backoff = min(self._max, backoff * 2)
                continue
            STORE_SECONDS.labels(operation).observe(time.perf_counter() - start)
            if not self.available:
                log.info("vector store answers again (%s)", operation)
            self.available = True
            STORE_AVAILABLE.set(1)
            return result


def store_caller(store: VectorStore, executor: Executor, max_backoff_s: float) -> StoreCaller:
    """The caller for ``store``: on ``executor``, or inline for an engine that holds the GIL
    through every call (``holds_gil``), where a thread would only add hand-overs."""
    inline = getattr(store, "holds_gil", False)  # a stand-in without the attribute: a thread
    return StoreCaller(None if inline else executor, max_backoff_s)
