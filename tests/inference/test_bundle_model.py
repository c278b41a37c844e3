"""The fitted bundle serving through the worker's interest model and a real Qdrant Edge store.

A planted world: two domains, four topics; users who like a topic touch that topic's items in
both domains. A user seen only in domain "a" must get topic-matched items of domain "b".
"""

from __future__ import annotations

import numpy as np
import pytest

from inference.bundle_model import BundleModel
from inference.errors import ModelError
from inference.fit import CollabParams, FitParams, ItemCatalogue, fit_bundle
from inference.interest import InterestParams, UserState, apply_event
from inference.transfer import DomainSummary, query_vector
from store.base import ItemPoint, ItemQuery

TOPICS, PER = 4, 10  # items per topic per domain


def planted(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids, domains, topic = [], [], []
    for d in ("a", "b"):
        for t in range(TOPICS):
            for k in range(PER):
                ids.append(f"{d}{t}-{k}")
                domains.append(d)
                topic.append(t)
    topic = np.array(topic)
    centres = rng.normal(size=(TOPICS, 16))
    text = centres[topic] + 0.3 * rng.normal(size=(len(ids), 16))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    a_items = {
        t: [i for i in range(len(ids)) if domains[i] == "a" and topic[i] == t]
        for t in range(TOPICS)
    }
    b_items = {
        t: [i for i in range(len(ids)) if domains[i] == "b" and topic[i] == t]
        for t in range(TOPICS)
    }
    seqs = []
    for u in range(400):
        t = u % TOPICS
        seqs.append(list(rng.choice(a_items[t], 4)) + list(rng.choice(b_items[t], 4)))
    cat = ItemCatalogue(tuple(ids), np.array(domains))
    params = FitParams(collab=CollabParams(dim=8), transfer_rank=4, own_rank=8)
    bundle = fit_bundle(seqs, cat, text.astype(np.float32), params, text_model="t@1")
    return bundle, ids, np.array(domains), topic, text.astype(np.float32)


@pytest.fixture(scope="module")
def world():
    return planted()


def user_in_a(model: BundleModel, ids, topic_of, t: int) -> UserState:
    state = UserState()
    params = model.interest_params(InterestParams())
    a_topic = [i for i, name in enumerate(ids) if name.startswith(f"a{t}-")]
    for n, i in enumerate(a_topic[:3]):
        vec = model.catalogue_vector(ids[i], np.zeros(16, np.float32), "a")
        item = ItemPoint(ids[i], "a", vec)
        apply_event(
            state,
            event_id=f"e{n}",
            domain="a",
            action="purchase",
            event_time=1e9 + n,
            vector=model.item_input(item),
            item_id=ids[i],
            rating=None,
            params=params,
            partition=0,
            offset=n,
        )
    return state


def test_query_matches_the_offline_transfer_code(world) -> None:
    bundle, ids, _, topic, _ = world
    model = BundleModel(bundle)
    state = user_in_a(model, ids, topic, 1)
    q = model.query(state, "b")
    assert q is not None and q.strategy == "transfer"
    summary = {"a": DomainSummary(state.domains["a"].mean(), state.domains["a"].count)}
    offline, _ = query_vector(summary, "b", bundle)
    np.testing.assert_allclose(q.vector[: bundle.output_dim], offline, rtol=1e-5, atol=1e-6)
    assert not q.vector[bundle.output_dim :].any()  # the input part never scores


def test_transfer_through_the_store_finds_the_topic(world, make_store) -> None:
    bundle, ids, _domains, topic, _ = world
    model = BundleModel(bundle)
    store = make_store("edge")
    store.ensure_collections(model.stored_dim)
    store.upsert_items([ItemPoint(i, d, v) for i, d, v in model.bootstrap_points()])
    for t in range(TOPICS):
        q = model.query(user_in_a(model, ids, topic, t), "b")
        hits = store.query_items(ItemQuery(q.vector, "b", 5))
        got = [topic[ids.index(h.item_id)] for h in hits]
        assert {h.domain for h in hits} == {"b"}
        assert got.count(t) >= 4, (t, got)


def test_new_item_is_placed_from_text_and_unknown_domain_refused(world) -> None:
    bundle, ids, _, topic, text = world
    model = BundleModel(bundle)
    i = ids.index("b2-0")
    vec = model.catalogue_vector("brand-new", text[i], "b")
    assert vec.shape == (model.stored_dim,)
    out = vec[: bundle.output_dim]
    scores = bundle.outputs[:, :-1] @ out[:-1]
    b_rows = [k for k, name in enumerate(ids) if name.startswith("b")]
    best = max(b_rows, key=lambda k: scores[k])
    assert topic[best] == 2
    with pytest.raises(ModelError):
        model.catalogue_vector("x", text[i], "garden")
    assert model.query(UserState(), "garden") is None
