"""The diversity step in the worker's batch processor (real Qdrant Edge store, no broker: the
processor is Faust-free by design). A bundle fitted on planted topics: items of a topic are
near copies of each other, so the plain nearest items are all of the user's topic."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift_bench import fit_world_bundle
from inference.bundle_model import BundleModel
from inference.diversity import list_similarity
from inference.errors import ConfigError
from streams.metrics import REGISTRY
from streams.settings import WorkerSettings
from synth.drift import TARGET, DriftWorld
from tests.fixtures.processor import purchases

K = 5


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def _lists(bundle, path, diversity: float) -> dict[str, list[str]]:
    """The recommendations after three purchases of topic-0 items, per domain."""
    items = [f"{TARGET}-0-{offset}" for offset in range(3)]
    recs = purchases(BundleModel(bundle), path, TARGET, items, K, diversity=diversity)
    return {r.domain: [i.item_id for i in r.items] for r in recs}


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
