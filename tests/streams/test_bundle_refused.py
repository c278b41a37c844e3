"""A bundle whose vectors do not fit the store is refused, and the worker serves on.

In process: the worker's runtime with the real encoder and a real Qdrant Edge store holding
text-space (384-d) items and users; the new bundle is a small planted one (32-d points).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import streams.runtime as runtime_module
from store.base import ItemPoint, UserPoint
from tests.streams.test_bundle_reload import servable

pytestmark = [pytest.mark.model]


def _count_loads(monkeypatch) -> list:
    """The folders the runtime loads bundles from, one entry per load (the real loader)."""
    loads = []
    real = runtime_module.load_bundle_model

    def counting(*args, **kwargs):
        loads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime_module, "load_bundle_model", counting)
    return loads


def test_a_bundle_of_another_vector_size_is_refused_once_and_the_store_kept(
    runtime, tmp_path, monkeypatch
) -> None:
    store, dim = runtime.store, runtime.encoder.dim
    rng = np.random.default_rng(0)
    store.upsert_items([ItemPoint(f"i{k}", "books", rng.normal(size=dim)) for k in range(20)])
    store.upsert_users([UserPoint("u", "books", np.ones(dim))])
    serving = runtime.model.version
    servable(seed=1).save(tmp_path / "bundle")
    loads = _count_loads(monkeypatch)

    assert asyncio.run(runtime.maybe_reload(tmp_path / "bundle")) is False
    assert runtime.model.version == serving
    assert store.count_items() == 20  # still open, still serving
    assert len(store.get_items(["i0", "i19"])) == 2
    # the next tick does not load the same refused version again
    assert asyncio.run(runtime.maybe_reload(tmp_path / "bundle")) is False
    assert len(loads) == 1


def test_a_bundle_that_fails_to_load_is_tried_again(runtime, tmp_path, monkeypatch) -> None:
    """A bundle still being copied (its manifest there, its arrays not yet) is not refused for
    good: the next tick loads it again."""
    folder = tmp_path / "bundle"
    servable(seed=1).save(folder)
    arrays = next(p for p in folder.iterdir() if p.suffix == ".npz")
    arrays.write_bytes(arrays.read_bytes()[:100])  # half-copied
    loads = _count_loads(monkeypatch)
    assert asyncio.run(runtime.maybe_reload(folder)) is False
    assert asyncio.run(runtime.maybe_reload(folder)) is False
    assert len(loads) == 2
