"""A list split between the blended query and the short-term interest's own (real Qdrant Edge
store through the worker's batch processor; no broker: the processor is Faust-free)."""

from __future__ import annotations

import json

import pytest

from bench.drift_bench import fit_world_bundle
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.short_term_slots import short_term_slots
from streams.metrics import REGISTRY
from synth.drift import TARGET, DriftWorld
from tests.fixtures.processor import purchases
from tests.inference.test_recency_mix import _switchers

K = 10


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def _last_recommendation(model: BundleModel, tmp_path, **worker: float) -> dict:
    """A user who bought nine items of topic 0, then three of topic 5; what they were served
    last in the domain (``worker``: more worker settings)."""
    items = [f"{TARGET}-{0 if k < 9 else 5}-{k}" for k in range(12)]
    recs = purchases(model, tmp_path, TARGET, items, K, **worker)
    return json.loads([r for r in recs if r.domain == TARGET][-1].to_json())


def _topic(item_id: str) -> int:
    return int(item_id.split("-")[1])


def _taught(bundle, **drift) -> BundleModel:
    model = BundleModel(bundle, drift=DriftParams(**drift))
    _switchers(bundle, model.online, users=40, start=100)  # many users switch: w rises
    return model


def test_the_learned_share_of_the_list_goes_to_the_short_term_interest(
    bundle, tmp_path, monkeypatch
) -> None:
    before = REGISTRY.get_sample_value("xrec_recommendations_short_term_total") or 0.0
    model = _taught(bundle)
    split = _last_recommendation(model, tmp_path / "split")
    slots = short_term_slots(model.short_weight_of(TARGET), K)
    assert slots >= 2
    assert split["explanation"]["short_term_slots"] == slots
    assert REGISTRY.get_sample_value("xrec_recommendations_short_term_total") > before
    # the same model and user with the list not split: the blended query's ten alone
    monkeypatch.setattr("streams.recommend.short_term_slots", lambda share, k: 0)
    whole = _last_recommendation(_taught(bundle), tmp_path / "whole")
    assert whole["explanation"]["short_term_slots"] == 0
    ids = [[i["item_id"] for i in r["items"]] for r in (split, whole)]
    assert ids[0][: K - slots] == ids[1][: K - slots]  # the blend's head first
    assert len(ids[0]) == K and len(set(ids[0])) == K
    # its other places hold more of the topic the user turned to than the blend ranks there
    new = [sum(_topic(i) == 5 for i in r[K - slots :]) for r in ids]
    assert new[0] > new[1], ids


def test_a_model_serving_its_fitted_weight_does_not_split_lists(bundle, tmp_path) -> None:
    as_fitted = _taught(bundle, online_mix=False)
    assert as_fitted.short_weight_of(TARGET) == 0.0
    assert _last_recommendation(as_fitted, tmp_path)["explanation"]["short_term_slots"] == 0


def test_with_the_diversity_step_lists_are_not_split(bundle, tmp_path) -> None:
    model = _taught(bundle)
    assert short_term_slots(model.short_weight_of(TARGET), K) >= 2
    rec = _last_recommendation(model, tmp_path, diversity=0.3)
    assert rec["explanation"]["short_term_slots"] == 0 and len(rec["items"]) == K
