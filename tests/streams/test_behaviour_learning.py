"""What the behaviour processor hands the model to learn from (real Qdrant Edge store, no broker:
the processor is Faust-free by design; the Kafka side is covered by the end-to-end tests)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import processor_for
from inference.bundle_model import BundleModel
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from synth.drift import TARGET, DriftWorld


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def test_only_events_that_raised_interest_and_had_some_before_teach_the_weight(
    bundle, tmp_path
) -> None:
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, tmp_path / "qdrant", top_k=5)
    items = [f"{TARGET}-{t}-{k}" for t, k in ((0, 0), (0, 1), (3, 0), (0, 2), (3, 1))]
    actions = ["purchase", "purchase", "skip", "purchase", "purchase"]
    table: dict[str, bytes] = {}
    try:
        for offset, (item, action) in enumerate(zip(items, actions, strict=True)):
            event = {
                "event_id": f"e{offset}",
                "user_id": "u1",
                "domain": TARGET,
                "action": action,
                "item_id": item,
                "event_time": 1.7e9 + offset,
            }
            msg = SourceMessage("behaviour", 0, offset, b"u1", json.dumps(event).encode(), 0.0)
            out = asyncio.run(
                proc.process([msg], table.get, lambda u, v, _m: table.__setitem__(u, v))
            )
            assert out.applied == 1 and not out.dead_letters
    finally:
        pool.shutdown()
        store.close()
    # 1st purchase: no interest before it; 2nd: short == long (one item), says nothing;
    # the skip raised no interest; the 4th and 5th purchases teach the weight
    assert model.online.mix_updates == 2
    gauge = REGISTRY.get_sample_value("xrec_short_term_weight", {"domain": TARGET})
    assert gauge == model.short_weight_of(TARGET)
