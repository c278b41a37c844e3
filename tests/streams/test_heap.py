"""streams.heap: collections are counted and timed lock-free, and a frozen heap is skipped."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from streams import heap
from streams.metrics import GC_PAUSES, REGISTRY


@pytest.fixture
def gc_state() -> Iterator[None]:
    """Leave the test process's collector as it was (no callback, nothing frozen)."""
    had = heap._observe in gc.callbacks
    yield
    gc.unfreeze()
    if not had and heap._observe in gc.callbacks:
        gc.callbacks.remove(heap._observe)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_full_collection_is_counted_and_timed(gc_state: None) -> None:
    heap.install_gc_metrics()
    heap.install_gc_metrics()  # idempotent: one callback
    assert gc.callbacks.count(heap._observe) == 1
    before = _sample("xrec_gc_pause_seconds_count", generation="2")
    seconds_before = _sample("xrec_gc_pause_seconds_sum", generation="2")
    gc.collect()
    # >=: an automatic full collection may also run between the two reads
    assert _sample("xrec_gc_pause_seconds_count", generation="2") >= before + 1
    assert _sample("xrec_gc_pause_seconds_sum", generation="2") > seconds_before


def test_the_callback_takes_no_metric_lock(gc_state: None) -> None:
    """A collection can start inside an allocation made while a metric's (non-reentrant) lock is
    held, e.g. by a scrape copying the metric's children on the same thread; a callback that
    took such a lock would hang the worker. Here every metric's lock is held while another
    thread collects: that thread must finish. (Reads prometheus_client's private ``_lock``.)"""
    heap.install_gc_metrics()
    locks = [c._lock for c in list(REGISTRY._collector_to_names) if hasattr(c, "_lock")]
    assert locks, "no metric locks found: prometheus_client internals changed?"
    before = GC_PAUSES.count[2]
    collector = threading.Thread(target=gc.collect)
    for lock in locks:
        lock.acquire()
    try:
        collector.start()
        collector.join(timeout=10)
        finished = not collector.is_alive()
    finally:
        for lock in locks:
            lock.release()
        collector.join()
    assert finished, "the gc callback waited on a metric lock"
    assert GC_PAUSES.count[2] >= before + 1


def test_frozen_objects_are_left_out_until_the_next_freeze(gc_state: None) -> None:
    cycles: list[list] = [[] for _ in range(20_000)]
    for c in cycles:
        c.append(c)  # reference cycles: only the collector can free them
    frozen = heap.freeze_heap("test")
    assert frozen >= 20_000
    assert _sample("xrec_gc_frozen_objects") == frozen
    del cycles, c
    assert gc.collect() < 20_000  # the frozen cycles were not collected
    heap.freeze_heap("test again")  # unfreezes and collects before freezing anew
    assert _sample("xrec_gc_frozen_objects") <= frozen - 20_000
