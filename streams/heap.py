"""The cyclic garbage collector in a long-running worker: measured, and kept off the old heap.

A micro-batch allocates tens of thousands of container objects that live for the batch (~0.1 s):
long enough to survive two young collections, so CPython promotes them to the oldest
generation, and every time that generation has grown by a quarter it is collected in full,
walking the whole heap (model, Faust, the item-name map, caches). Measured with the stream bench
(Food/Kitchen, 1,000-2,000 ev/s offered, bench/results/stream-steps/6-* and 7-*): not frozen,
~0.7 full collections a second at 127-138 ms each and the collector 13% of the worker's CPU,
each collection a pause every event in flight waits out; frozen, 11-20 ms each and 4-5%.

``gc.freeze()`` moves everything alive into a permanent generation that collections skip; objects
freed later are still freed by reference counting, only reference cycles among frozen objects
(an old model after a bundle reload, say) wait for the next freeze, which unfreezes, collects
the whole heap once and freezes again.

When: after start-up (an app task, so after table recovery), after a bundle reload, and, once
the catalogue stream goes idle (a batch smaller than the batch size), after every
``FREEZE_AFTER_CATALOGUE_EVENTS`` catalogue events: the item-name map and the id caches grow
with the catalogue. Each freeze pauses the loop for one full collection (~0.1 s with the Food /
Kitchen catalogue), ~20 us per catalogue event at this cadence, against milliseconds to encode
each item. Table state needs no trigger: its keys and values are strings and bytes,
which the collector does not track.
"""

from __future__ import annotations

import gc
import logging
import time

from streams.metrics import GC_FROZEN_OBJECTS, GC_PAUSES

log = logging.getLogger(__name__)

#: Catalogue events after which the heap is frozen again once the catalogue stream goes idle.
FREEZE_AFTER_CATALOGUE_EVENTS = 5000

_started: dict[int, float] = {}


def _observe(phase: str, info: dict[str, int]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif generation in _started:
        # plain arithmetic only: no locks inside a collection (see GcPauses)
        GC_PAUSES.add(generation, time.perf_counter() - _started.pop(generation))


def install_gc_metrics() -> None:
    """Time every collection into ``xrec_gc_pause_seconds`` (once per process)."""
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)


def freeze_heap(reason: str) -> int:
    """Collect the whole heap once (frozen objects included), then exclude every object still
    alive from future collections.

    Returns the number of objects frozen (``gc.get_freeze_count``).
    """
    start = time.perf_counter()
    gc.unfreeze()  # cycles that became garbage since the last freeze are collected now
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    GC_FROZEN_OBJECTS.set(frozen)
    log.info(
        "heap frozen after %s: %d objects no longer scanned by the collector (%.0f ms)",
        reason,
        frozen,
        1e3 * (time.perf_counter() - start),
    )
    return frozen
