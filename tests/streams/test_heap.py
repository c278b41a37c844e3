"""streams.heap: collections are timed into the metrics, and a frozen heap is skipped."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import heap
from streams.metrics import REGISTRY


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


def test_every_full_collection_is_timed(gc_state) -> None:
    heap.install_gc_metrics()
    heap.install_gc_metrics()  # idempotent: one callback
    assert gc.callbacks.count(heap._observe) == 1
    before = _sample("xrec_gc_pause_seconds_count", generation="2")
    gc.collect()
    assert _sample("xrec_gc_pause_seconds_count", generation="2") == before + 1
    assert _sample("xrec_gc_pause_seconds_sum", generation="2") > 0


def test_frozen_objects_are_left_out_of_collections(gc_state) -> None:
    cycles = [[] for _ in range(20_000)]
    for c in cycles:
        c.append(c)  # reference cycles: only the collector can free them
    frozen = heap.freeze_heap("test")
    assert frozen >= 20_000 and gc.get_freeze_count() == frozen
    assert _sample("xrec_gc_frozen_objects") == frozen
    del cycles, c
    assert gc.collect() < 20_000  # the frozen cycles were not collected
    frozen_before = _sample("xrec_gc_frozen_objects")
    heap.freeze_heap("test again")  # unfreezes and collects before freezing anew
    assert _sample("xrec_gc_frozen_objects") <= frozen_before - 20_000
