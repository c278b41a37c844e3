"""The diversity step in the worker's batch processor (real Qdrant Edge store, no broker: the
processor is Faust-free by design). A bundle fitted on planted topics: items of a topic are
near copies of each other, so the plain nearest items are all of the user's topic."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import processor_for
from inference.bundle_model import BundleModel
from inference.diversity import list_similarity
from inference.errors import ConfigError
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from streams.settings import WorkerSettings
from synth.drift import TARGET, DriftWorld

K = 5


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def _lists(bundle, path, diversity: float) -> dict[str, list[str]]:
    """The recommendations after three purchases of topic-0 items, per domain."""
    proc, store, pool = processor_for(BundleModel(bundle), path, top_k=K, diversity=diversity)
    table: dict[str, bytes] = {}
    recs: dict[str, list[str]] = {}
    try:
        for offset in range(3):
            event = {
                "event_id": f"e{offset}",
                "user_id": "u1",
                "domain": TARGET,
                "action": "purchase",
                "item_id": f"{TARGET}-0-{offset}",
                "event_time": 1.7e9 + offset,
            }
            msg = SourceMessage("behaviour", 0, offset, b"u1", json.dumps(event).encode(), 0.0)
            out = asyncio.run(
                proc.process([msg], table.get, lambda u, v, _m: table.__setitem__(u, v))
            )
            assert not out.dead_letters
            recs |= {r.domain: [i.item_id for i in r.items] for r in out.recommendations}
    finally:
        pool.shutdown()
        store.close()
    return recs


def _observed() -> float:
    return REGISTRY.get_sample_value("xrec_recommendation_list_cosine_count") or 0.0


def test_diversity_spreads_a_list_over_topics_and_keeps_the_best_first(bundle, tmp_path) -> None:
    before = _observed()
    plain = _lists(bundle, tmp_path / "plain", 0.0)[TARGET]
    assert _observed() == before  # no vectors fetched, nothing to measure
    diverse = _lists(bundle, tmp_path / "diverse", 0.5)[TARGET]
    assert _observed() == before + 2 * 3  # a list per target domain per event

    def topic(item: str) -> str:
        return item.split("-")[1]

    assert len(plain) == len(diverse) == K
    assert {topic(i) for i in plain} == {"0"}  # the nearest items are all of the user's topic
    assert len({topic(i) for i in diverse}) > 1
    assert diverse[0] == plain[0]  # the most relevant item leads either way
    consumed = {f"{TARGET}-0-{k}" for k in range(3)}
    assert not consumed & set(diverse)  # exclusions hold among the candidates too

    model = BundleModel(bundle)
    inputs = {i: model.bundle.inputs[model.bundle.index_of(i)] for i in plain + diverse}
    alike = [list_similarity(np.stack([inputs[i] for i in lst])) for lst in (plain, diverse)]
    assert alike[1] < alike[0]


def test_candidates_below_top_k_name_both_settings() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_DIVERSITY_CANDIDATES=5.*WORKER_TOP_K=10"):
        WorkerSettings(diversity=0.3, diversity_candidates=5, top_k=10)
    WorkerSettings(diversity=0.0, diversity_candidates=5, top_k=10)  # off: not read
