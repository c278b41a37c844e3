"""StoreCaller: retries a failing store call until it succeeds, on a thread or inline.

The failing callable stands in for a store that is down and comes back (a real outage of the
worker's store is in test_faults.py); the retry loop and the threading are what is tested.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.errors import StoreError
from streams.resilience import StoreCaller, store_caller
from tests.fixtures.store import MakeStore


def flaky(failures: int) -> tuple[list[str], Callable[[int], tuple[int, str]]]:
    """A call that raises StoreError ``failures`` times, then returns its thread's name."""
    calls: list[str] = []

    def call(x: int) -> tuple[int, str]:
        calls.append(threading.current_thread().name)
        if len(calls) <= failures:
            raise StoreError("vector store: injected failure")
        return x * 2, threading.current_thread().name

    return calls, call


@pytest.mark.parametrize("on_thread", [True, False], ids=["executor", "inline"])
def test_retries_until_the_store_answers(on_thread: bool) -> None:
    calls, call = flaky(failures=2)
    with ThreadPoolExecutor(1, thread_name_prefix="store") as pool:
        caller = StoreCaller(pool if on_thread else None, max_backoff_s=0.01, first_backoff_s=0.001)

        async def run() -> tuple[tuple[int, str], str]:
            return await caller("get_items", call, 21), threading.current_thread().name

        (value, thread), loop_thread = asyncio.run(run())
    assert value == 42 and len(calls) == 3 and caller.available
    if on_thread:
        assert thread.startswith("store") and thread != loop_thread
    else:
        assert thread == loop_thread  # inline: the engine holds the GIL anyway


def test_backs_off_doubling_from_the_first_wait_up_to_the_cap() -> None:
    # the waits themselves are recorded, not slept: a hot retry loop would hammer a store
    # that is down (and log-spam), a wait that never grows would keep doing so
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    calls, call = flaky(failures=7)
    caller = StoreCaller(None, max_backoff_s=1.0, first_backoff_s=0.1, sleep=sleep)
    value, _ = asyncio.run(caller("query_items", call, 1))
    assert value == 2 and len(calls) == 8
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_the_worker_calls_qdrant_edge_inline_and_other_engines_on_a_thread(
    make_store: MakeStore, engine: str
) -> None:
    """Qdrant Edge holds the GIL through every call, so a thread would add only hand-overs;
    the client's local mode (like the server's HTTP calls) can leave the loop running."""
    store = make_store(engine)
    with ThreadPoolExecutor(1, thread_name_prefix="store") as pool:
        caller = store_caller(store, pool, max_backoff_s=0.01)

        async def run() -> tuple[str, str]:
            name = await caller("domains", lambda: threading.current_thread().name)
            return name, threading.current_thread().name

        used, loop_thread = asyncio.run(run())
    assert (used == loop_thread) is (engine == "edge")
