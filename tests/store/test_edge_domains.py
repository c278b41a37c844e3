"""Qdrant Edge keeps one items shard per domain: layout, moves between domains, bad names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from inference.errors import ConfigError
from store.base import ItemPoint, ItemQuery
from store.edge_config import edge_config
from store.settings import QdrantSettings
from tests.fixtures.store import MakeStore

DIM = 4


def test_each_domain_has_its_own_shard_directory(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store("edge", path=tmp_path / "s")
    store.ensure_collections(DIM)
    one = np.ones(DIM)
    store.upsert_items([ItemPoint("a", "food", one), ItemPoint("b", "kitchen", one)])
    shards = sorted(p.name for p in (tmp_path / "s" / "items").iterdir())
    assert shards == ["food", "kitchen"]


def test_an_item_moved_to_another_domain_leaves_the_old_one(make_store: MakeStore) -> None:
    store = make_store("edge")
    store.ensure_collections(DIM)
    store.upsert_items([ItemPoint(f"f{i}", "food", np.full(DIM, 1.0 + i)) for i in range(3)])
    store.upsert_items([ItemPoint("f2", "kitchen", np.full(DIM, 9.0))])
    q = np.ones(DIM)
    assert [h.item_id for h in store.query_items(ItemQuery(q, "food", 5))] == ["f1", "f0"]
    assert [(h.item_id, h.domain) for h in store.query_items(ItemQuery(q, "kitchen", 5))] == [
        ("f2", "kitchen")
    ]
    assert (store.count_items("food"), store.count_items("kitchen")) == (2, 1)
    # Moved twice inside one call: the last write wins, as it would in one shard.
    store.upsert_items([ItemPoint("f0", "kitchen", q), ItemPoint("f0", "food", q)])
    assert store.get_items(["f0"])["f0"].domain == "food"
    assert store.count_items() == 3


def test_the_single_shard_layout_is_a_config_error(tmp_path: Path) -> None:
    from store.edge import EdgeStore

    settings = QdrantSettings(path=tmp_path / "old")
    old = tmp_path / "old" / "items"
    old.mkdir(parents=True)
    qe.EdgeShard.create(str(old), edge_config(settings, "items", DIM)).close()
    store = EdgeStore(settings)
    with pytest.raises(ConfigError, match="QDRANT_PATH"):
        store.ensure_collections(DIM)
    store.close()


def test_a_domain_that_cannot_name_a_directory_is_refused(make_store: MakeStore) -> None:
    store = make_store("edge")
    store.ensure_collections(DIM)
    # a malformed argument (ValueError), not an engine failure the worker would retry forever
    for bad in ("../up", "food\n"):
        with pytest.raises(ValueError, match="cannot name a shard"):
            store.upsert_items(
                [ItemPoint("ok", "food", np.ones(DIM)), ItemPoint("x", bad, np.ones(DIM))]
            )
    assert store.count_items() == 0


def _reopened(make_store: MakeStore, tmp_path: Path):
    """A store holding item "a" in food, closed and opened again (ensure_collections not yet
    called on the new handle)."""
    path = tmp_path / "s"
    store = make_store("edge", path=path)
    store.ensure_collections(DIM)
    store.upsert_items([ItemPoint("a", "food", np.ones(DIM))])
    store.close()
    return make_store("edge", path=path)


def test_an_upsert_refused_before_ensure_collections_changes_nothing(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from inference.errors import StoreError

    store = _reopened(make_store, tmp_path)
    with pytest.raises(StoreError, match="ensure_collections"):
        store.upsert_items([ItemPoint("a", "kitchen", np.ones(DIM))])  # a move: delete + write
    assert store.count_items() == 1 and store.get_items(["a"])["a"].domain == "food"


def test_a_refused_resize_keeps_the_items_even_when_opened_before_ensure(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = _reopened(make_store, tmp_path)
    assert store.count_items() == 1  # opens the shards lazily, their size not yet checked
    with pytest.raises(ConfigError):
        store.ensure_collections(DIM + 1)
    assert store.count_items() == 1 and store.domains() == {"food"}
    assert [h.item_id for h in store.query_items(ItemQuery(np.ones(DIM), "food", 3))] == ["a"]
