"""Per-user migration: summaries, blend strategies, and transfer on planted data end to end."""

from __future__ import annotations

import numpy as np
import pytest

from inference.collab import CollabParams
from inference.errors import ModelError
from inference.fit import FitParams, fit_bundle
from inference.transfer import (
    DomainSummary,
    Strategy,
    decay_factor,
    domain_summaries,
    query_vector,
    summarise,
)
from tests.inference.planted_data import planted

PARAMS = FitParams(collab=CollabParams(dim=8), transfer_rank=6, own_rank=8)


@pytest.fixture(scope="module")
def world():
    data = planted(seed=1)
    return data, fit_bundle(data.sequences, data.items, data.text, PARAMS)


def test_summarise_equals_incremental_fold() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((7, 3))
    d = decay_factor(2.0)
    total, weight = np.zeros(3), 0.0
    for v in vectors:  # what the worker does per event
        total, weight = d * total + v, d * weight + 1.0
    s = summarise(vectors, 2.0)
    np.testing.assert_allclose(s.mean, total / weight, rtol=1e-6)
    assert s.count == 7
    np.testing.assert_allclose(summarise(vectors, 0.0).mean, vectors.mean(axis=0), rtol=1e-6)
    assert decay_factor(float("inf")) == 1.0
    assert summarise(np.zeros((0, 3)), 5.0).count == 0


def test_recent_events_weigh_more() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    s = summarise(vectors, 1.0)  # newest counts twice as much as the one before
    np.testing.assert_allclose(s.mean, [1 / 3, 2 / 3], rtol=1e-6)


def test_strategies_and_weights(world) -> None:
    _, bundle = world
    dim = bundle.input_dim
    rng = np.random.default_rng(2)
    food = DomainSummary(rng.standard_normal(dim).astype(np.float32), 4)
    kitchen = DomainSummary(rng.standard_normal(dim).astype(np.float32), 6)

    q, why = query_vector({}, "kitchen", bundle)
    assert why.strategy == Strategy.POPULAR and q[-1] == 1.0 and not q[:-1].any()

    _, why = query_vector({"food": food}, "kitchen", bundle)
    assert why.strategy == Strategy.TRANSFER and why.weights == {"food": pytest.approx(1.0)}

    _, why = query_vector({"kitchen": kitchen}, "kitchen", bundle)
    assert why.strategy == Strategy.OWN and why.weights == {"kitchen": 1.0}

    q, why = query_vector({"food": food, "kitchen": kitchen}, "kitchen", bundle)
    c_own = 6 / (6 + bundle.params.own_prior)
    assert why.strategy == Strategy.BLEND
    assert why.weights["kitchen"] == pytest.approx(c_own)
    assert why.weights["food"] == pytest.approx(1 - c_own)
    expected = c_own * (kitchen.mean @ bundle.projection("kitchen", "kitchen")) + (
        1 - c_own
    ) * bundle.params.transfer_gain * (food.mean @ bundle.projection("food", "kitchen"))
    np.testing.assert_allclose(q[:dim], expected, rtol=1e-5, atol=1e-6)
    assert q.shape == (bundle.output_dim,) and q.dtype == np.float32
    assert set(why.as_dict()) == {"strategy", "weights", "popularity"}


def test_bad_inputs_fail_loudly(world) -> None:
    _, bundle = world
    with pytest.raises(ModelError):
        query_vector({"food": DomainSummary(np.zeros(3), 1)}, "kitchen", bundle)
    with pytest.raises(ModelError):
        query_vector({}, "toys", bundle)


def test_planted_interest_transfers_across_domains(world) -> None:
    data, bundle = world
    fresh = planted(seed=99, users=(0, 0, 200))  # new users, same planted groups and items
    kitchen = bundle.items_of("kitchen")
    hits = []
    for seq, cluster in zip(fresh.sequences, fresh.user_cluster, strict=True):
        food_only = seq[data.items.domains[seq] == "food"]
        states = domain_summaries(food_only, data.items.domains, bundle.inputs, 0.0)
        q, why = query_vector(states, "kitchen", bundle)
        assert why.strategy == Strategy.TRANSFER
        top = kitchen[np.argsort(-(bundle.outputs[kitchen] @ q))[:5]]
        hits.append((data.item_cluster[top] == cluster).mean())
    assert np.mean(hits) > 0.85, f"only {np.mean(hits):.0%} of top-5 in the user's kitchen group"
