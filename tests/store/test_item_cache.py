"""Qdrant Edge keeps recently read items in memory (store.item_cache): served from there, and
never stale, because every write through the store forgets what it touches."""

from __future__ import annotations

import numpy as np

from store.base import ItemPoint
from store.item_cache import ItemCache
from tests.fixtures.store import MakeStore

DIM = 4


def _loaded(make_store: MakeStore, **settings):
    store = make_store("edge", **settings)
    store.ensure_collections(DIM)
    store.upsert_items([ItemPoint(f"i{k}", "food", np.full(DIM, k + 1.0)) for k in range(4)])
    return store


def test_a_second_read_is_served_from_memory_and_equal(make_store: MakeStore) -> None:
    store = _loaded(make_store)
    first = store.get_items(["i0", "i1"])
    again = store.get_items(["i1", "i0", "i2"])
    assert again["i0"] is first["i0"] and again["i1"] is first["i1"]  # the same objects
    np.testing.assert_array_equal(again["i2"].vector, np.full(DIM, 3.0))
    assert not again["i0"].vector.flags.writeable  # shared, so immutable


def test_writes_are_seen_at_once(make_store: MakeStore) -> None:
    store = _loaded(make_store)
    store.get_items(["i0", "i1", "i2"])
    store.upsert_items([ItemPoint("i0", "food", np.full(DIM, 9.0))])  # changed
    store.upsert_items([ItemPoint("i1", "kitchen", np.full(DIM, 2.0))])  # moved
    store.delete_items(["i2"])
    got = store.get_items(["i0", "i1", "i2"])
    np.testing.assert_array_equal(got["i0"].vector, np.full(DIM, 9.0))
    assert got["i1"].domain == "kitchen" and "i2" not in got


def test_the_least_recently_used_go_beyond_the_capacity(make_store: MakeStore) -> None:
    store = _loaded(make_store, item_cache=2)
    first = store.get_items(["i0", "i1"])
    store.get_items(["i0"])  # i0 used last
    store.get_items(["i2"])  # i1 goes
    again = store.get_items(["i0", "i1"])
    assert again["i0"] is first["i0"] and again["i1"] is not first["i1"]
    off = _loaded(make_store, item_cache=0)
    assert off.get_items(["i0"])["i0"] is not off.get_items(["i0"])["i0"]


def test_lru_order() -> None:
    cache = ItemCache(2)
    a, b, c = (ItemPoint(n, "d", np.ones(2)) for n in "abc")
    cache.put(1, a)
    cache.put(2, b)
    assert cache.get(1) is a  # 1 used last: 2 goes next
    cache.put(3, c)
    assert (cache.get(2), cache.get(1), cache.get(3), len(cache)) == (None, a, c, 2)
    cache.forget([1, 99])
    assert cache.get(1) is None and len(cache) == 1
