"""A catalogue batch leaves each item as its messages applied one at a time would.

Processor-level, with a real Qdrant Edge store and a bundle fitted on the synthetic drift
world. That bundle's text model is the world's own 16-d text vectors (``text_model=
"synthetic"``), so ``encode`` here derives such a vector from the text: it is that model, not
a stand-in for the transformer, which places items in another space.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bench.drift_bench import fit_world_bundle
from inference.bundle_model import BundleModel
from store.edge import EdgeStore
from store.settings import QdrantSettings
from streams.catalogue import CatalogueProcessor
from streams.deadletter import SourceMessage
from streams.resilience import store_caller
from streams.settings import WorkerSettings
from synth.drift import SOURCE, TARGET, DriftWorld


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0), users=300)


async def _encode(texts: list[str]) -> np.ndarray:
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=16)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


def _msg(offset: int, item_id: str, domain: str, title: str, deleted: bool = False):
    value = {"item_id": item_id, "domain": domain, "title": title, "deleted": deleted}
    return SourceMessage("catalogue", 0, offset, item_id.encode(), json.dumps(value).encode(), 0.0)


def _run(bundle, tmp_path, batches: list[list[SourceMessage]]):
    """Apply ``batches`` in order to a new store; the store's items and every dead letter."""
    model = BundleModel(bundle)
    store = EdgeStore(QdrantSettings(path=tmp_path))
    store.ensure_collections(model.stored_dim)
    pool = ThreadPoolExecutor(1)
    proc = CatalogueProcessor(
        settings=WorkerSettings(),
        model=model,
        store=store,
        call_store=store_caller(store, pool, 1.0),
        encode=_encode,
        topic="catalogue",
    )
    letters = []
    try:
        for batch in batches:
            out = asyncio.run(proc.process(batch))
            letters += [(d.reason, d.source.offset) for d in out.dead_letters]
        items = store.get_items(["new-1", "new-2", "new-3"])
        placed = {i: (p.domain, np.asarray(p.vector).round(5).tobytes()) for i, p in items.items()}
    finally:
        pool.shutdown()
        store.close()
    return placed, sorted(letters)


def test_a_refused_last_version_leaves_the_item_at_the_version_before_it(bundle, tmp_path) -> None:
    msgs = [
        _msg(0, "new-1", TARGET, "first version"),
        _msg(1, "new-1", "nowhere", "moved to a domain the bundle does not know"),
        _msg(2, "new-2", SOURCE, "kept"),
        _msg(3, "new-2", TARGET, "second version"),
        _msg(4, "new-2", "nowhere", "refused"),
        _msg(5, "new-3", "nowhere", "only a refused version"),
        _msg(6, "new-1", TARGET, "gone", deleted=True),
        _msg(7, "new-1", "nowhere", "refused after a delete"),
    ]
    in_one, letters_one = _run(bundle, tmp_path / "one", [msgs])
    singly, letters_singly = _run(bundle, tmp_path / "singly", [[m] for m in msgs])

    assert in_one == singly
    assert set(in_one) == {"new-2"}  # new-1 deleted, new-3 never placed
    assert in_one["new-2"][0] == TARGET  # the version before the refused one
    assert letters_singly == [("unknown_domain", k) for k in (1, 4, 5, 7)]
    # in a batch, a version superseded by a later one is not looked at (offset 1)
    assert letters_one == [("unknown_domain", k) for k in (4, 5, 7)]
