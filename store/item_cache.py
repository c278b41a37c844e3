"""Recently read item points, kept in memory for ``get_items`` (Qdrant Edge only).

Reading a point back from Qdrant Edge converts its vector to a Python list and then to numpy,
per item per call. The behaviour path reads the items of every event, and the diversity step
the vectors of every query's candidates: 25 events a batch with 30 candidates in each of 2
domains took 52 ms a batch in ``xrec bench-stream`` before this cache (about 30 us a 384-d
item; ``bench/results/stream-steps/32-*``). Hot items are read again and again, so the last
``capacity`` points read are kept (about 2 KB each at 384-d: ``python -m
bench.item_cache_probe``).

Exact, not merely fresh: a Qdrant Edge directory has one writer, the store that holds this
cache, and every write forgets the points it touches before the next read. A Qdrant server has
other writers (the group's other workers) and gets no cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from store.base import ItemPoint


class ItemCache:
    """An LRU map of point id (``UUID.int``) -> :class:`ItemPoint` (immutable: shared as is)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._points: OrderedDict[int, ItemPoint] = OrderedDict()

    def __len__(self) -> int:
        return len(self._points)

    def get(self, pid: int) -> ItemPoint | None:
        """The cached point, marked as just used; None when not cached."""
        point = self._points.get(pid)
        if point is not None:
            self._points.move_to_end(pid)
        return point

    def put(self, pid: int, point: ItemPoint) -> None:
        """Keep ``point``, dropping the least recently used beyond ``capacity``."""
        if self.capacity <= 0:
            return
        self._points[pid] = point
        self._points.move_to_end(pid)
        while len(self._points) > self.capacity:
            self._points.popitem(last=False)

    def forget(self, pids: Iterable[int]) -> None:
        """Drop these points (written or deleted: the next read fetches them again)."""
        for pid in pids:
            self._points.pop(pid, None)

    def clear(self) -> None:
        """Drop every point (the store is closing)."""
        self._points.clear()
