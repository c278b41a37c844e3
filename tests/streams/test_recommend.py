"""A list split between the blended query and the short-term interest's own (real Qdrant Edge
store through the worker's batch processor; no broker: the processor is Faust-free)."""

from __future__ import annotations

import json

import pytest

from bench.drift_bench import fit_world_bundle
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.short_term_slots import short_term_slots
from store.edge import EdgeStore
from streams.metrics import REGISTRY
from synth.drift import TARGET, DriftWorld
from tests.fixtures.processor import purchases
from tests.fixtures.switching import teach_switches

K = 10
ITEMS = [f"{TARGET}-{0 if k < 9 else 5}-{k}" for k in range(12)]  # nine of topic 0, three of 5


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def _taught(bundle, **drift) -> BundleModel:
    model = BundleModel(bundle, drift=DriftParams(**drift))
    teach_switches(bundle, model.online, users=40, start=100)  # many users switch: w rises
    return model


def _served(model: BundleModel, tmp_path, **worker: float) -> list[dict]:
    """What the user of ``ITEMS`` was served, event by event, in both domains (``worker``:
    more worker settings)."""
    recs = purchases(model, tmp_path, TARGET, ITEMS, K, **worker)
    return [json.loads(r.to_json()) for r in recs]


def _last(served: list[dict]) -> dict:
    return [r for r in served if r["domain"] == TARGET][-1]


def _split() -> float:
    return REGISTRY.get_sample_value("xrec_recommendations_short_term_total") or 0.0


def test_the_learned_share_of_the_list_goes_to_the_short_term_interest(
    bundle, tmp_path, monkeypatch
) -> None:
    model = _taught(bundle)
    slots = short_term_slots(model.short_weight_of(TARGET), K)
    assert slots >= 2
    before = _split()
    served = _served(model, tmp_path / "split")
    split, last = [r["explanation"].get("short_term_items", 0) for r in served], _last(served)
    assert last["explanation"]["short_term_items"] == slots  # enough new items near it
    assert _split() - before == sum(n > 0 for n in split) > 0  # each split list once
    # the same model and user with the list not split: the blended query's ten alone
    monkeypatch.setattr("streams.recommend.short_term_slots", lambda share, k: 0)
    whole = _last(_served(_taught(bundle), tmp_path / "whole"))
    assert "short_term_items" not in whole["explanation"]  # written only when above 0
    ids = [[i["item_id"] for i in r["items"]] for r in (last, whole)]
    assert ids[0][: K - slots] == ids[1][: K - slots]  # the blend's head first
    assert len(ids[0]) == K and len(set(ids[0])) == K
    # its other places hold more of the topic the user turned to than the blend ranks there
    new = [sum(int(i.split("-")[1]) == 5 for i in r[K - slots :]) for r in ids]
    assert new[0] > new[1], ids


def _queries_sent(monkeypatch) -> list[int]:
    """Sizes of the item-query batches sent to the store from now on."""
    sizes: list[int] = []
    original = EdgeStore.query_items_batch

    def counted(self, queries):
        sizes.append(len(queries))
        return original(self, queries)

    monkeypatch.setattr(EdgeStore, "query_items_batch", counted)
    return sizes


def test_a_model_serving_its_fitted_weight_asks_one_query_per_list(
    bundle, tmp_path, monkeypatch
) -> None:
    as_fitted = _taught(bundle, online_mix=False)
    assert as_fitted.short_weight_of(TARGET) == 0.0
    sizes = _queries_sent(monkeypatch)
    served = _served(as_fitted, tmp_path)
    assert all("short_term_items" not in r["explanation"] for r in served)
    # one batch per event, one query per target domain (two): nothing more asked of the store
    assert sizes == [2] * len(ITEMS)


def test_with_the_diversity_step_lists_are_not_split(bundle, tmp_path, monkeypatch) -> None:
    model = _taught(bundle)
    assert short_term_slots(model.short_weight_of(TARGET), K) >= 2
    sizes = _queries_sent(monkeypatch)
    served = _served(model, tmp_path, diversity=0.3)
    assert all("short_term_items" not in r["explanation"] for r in served)
    assert sizes == [2] * len(ITEMS) and len(_last(served)["items"]) == K
