"""Qdrant Edge's users shard: a user point written before gets its new vector alone.

The engine is real throughout. ``WriteSpy`` only records which kind of write the store asked
for (the engine's operation objects are opaque) and passes each on to the real engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe

from store import edge_users
from store.base import DOMAIN_KEY, USER_ID_KEY, UserPoint, user_point_id
from tests.fixtures.store import MakeStore

A, B = np.arange(4.0), -np.arange(4.0)


class WriteSpy:
    """Stands in for ``qe.UpdateOperation``: records (kind, points) and builds the real one."""

    def __init__(self) -> None:
        self.kinds: list[tuple[str, int]] = []
        self._real = qe.UpdateOperation

    def upsert_points(self, ops: list[Any]) -> Any:
        self.kinds.append(("upsert", len(ops)))
        return self._real.upsert_points(ops)

    def update_vectors(self, ops: list[Any]) -> Any:
        self.kinds.append(("vectors", len(ops)))
        return self._real.update_vectors(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> WriteSpy:
    spy = WriteSpy()
    monkeypatch.setattr(qe, "UpdateOperation", spy)
    return spy


def stored_payloads(path: Path, *keys: tuple[str, str]) -> list[dict | None]:
    """The payload of each (user, domain) point, read from the closed store's directory."""
    shard = qe.EdgeShard.load(str(path / "users"), None)
    try:
        ids = [user_point_id(u, d) for u, d in keys]
        by_id = {str(r.id): r.payload for r in shard.retrieve(ids, True, False)}
        return [by_id.get(str(i)) for i in ids]
    finally:
        shard.close()


def test_a_written_user_point_gets_its_vector_alone(
    make_store: MakeStore, tmp_path: Path, spy: WriteSpy
) -> None:
    store = make_store("edge", path=tmp_path / "s")
    store.ensure_collections(4)
    store.upsert_users([UserPoint("u1", "food", A), UserPoint("u2", "food", A)])
    store.upsert_users([UserPoint("u1", "food", B), UserPoint("u1", "kitchen", B)])
    # u1/food was written: its vector alone; u1/kitchen is new: upserted with its payload
    assert spy.kinds == [("upsert", 2), ("vectors", 1), ("upsert", 1)]
    np.testing.assert_allclose(store.get_user("u1", "food"), B)
    np.testing.assert_allclose(store.get_user("u1", "kitchen"), B)
    np.testing.assert_allclose(store.get_user("u2", "food"), A)
    store.close()
    assert stored_payloads(tmp_path / "s", ("u1", "food"), ("u1", "kitchen")) == [
        {USER_ID_KEY: "u1", DOMAIN_KEY: "food"},
        {USER_ID_KEY: "u1", DOMAIN_KEY: "kitchen"},
    ]


def test_a_reopened_store_writes_each_user_point_whole_first(
    make_store: MakeStore, tmp_path: Path, spy: WriteSpy
) -> None:
    first = make_store("edge", path=tmp_path / "s")
    first.ensure_collections(4)
    first.upsert_users([UserPoint("u1", "food", A)])
    first.close()
    again = make_store("edge", path=tmp_path / "s")
    again.ensure_collections(4)
    again.upsert_users([UserPoint("u1", "food", B)])
    again.upsert_users([UserPoint("u1", "food", A)])
    assert spy.kinds == [("upsert", 1), ("upsert", 1), ("vectors", 1)]
    np.testing.assert_allclose(again.get_user("u1", "food"), A)


def test_a_point_gone_from_under_the_store_is_written_whole(
    make_store: MakeStore, tmp_path: Path, spy: WriteSpy, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store("edge", path=tmp_path / "s")
    store.ensure_collections(4)
    store.upsert_users([UserPoint("u1", "food", A), UserPoint("u2", "food", A)])
    # nothing in the worker deletes a user point: reach into the shard to make it happen
    gone = [user_point_id("u1", "food")]
    store._users.open().update(spy.delete_points(gone))  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger=edge_users.__name__):
        store.upsert_users([UserPoint("u1", "food", B), UserPoint("u2", "food", B)])
    assert "upserting them whole" in caplog.text
    assert spy.kinds[1:] == [("vectors", 2), ("upsert", 2)]
    np.testing.assert_allclose(store.get_user("u1", "food"), B)
    np.testing.assert_allclose(store.get_user("u2", "food"), B)
    store.close()
    assert stored_payloads(tmp_path / "s", ("u1", "food")) == [
        {USER_ID_KEY: "u1", DOMAIN_KEY: "food"}
    ]


def test_the_memory_of_written_points_is_bounded(
    make_store: MakeStore, spy: WriteSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge_users, "WRITTEN_MAX", 2)
    store = make_store("edge")
    store.ensure_collections(4)
    for user in ("u1", "u2", "u3"):  # the third overflows it: dropped, then u3 remembered
        store.upsert_users([UserPoint(user, "food", A)])
    store.upsert_users([UserPoint("u3", "food", B), UserPoint("u1", "food", B)])
    assert spy.kinds == [("upsert", 1)] * 3 + [("vectors", 1), ("upsert", 1)]
    np.testing.assert_allclose(store.get_user("u1", "food"), B)
    np.testing.assert_allclose(store.get_user("u3", "food"), B)
