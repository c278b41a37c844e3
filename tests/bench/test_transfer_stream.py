"""The streaming replay agrees with the offline replay event by event (real broker, worker,
store and encoder; a small planted bundle instead of the full Food/Kitchen fit)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.transfer_stream import compare, offline_hits, replay_events, stream_hits
from inference.bundle import ModelBundle
from inference.bundle_model import BundleModel
from inference.interest import InterestParams
from tests.inference.test_bundle_model import planted

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def test_stream_prequential_recall_equals_offline(tmp_path, model_dir, broker) -> None:
    bundle, ids, domains, topic, _ = planted(seed=1)
    # Served without a text-encoder check: the planted bridge is 16-d, and this replay sends
    # no free text, so the worker's MiniLM encoder is never asked to feed it.
    bundle = ModelBundle(
        bundle.item_ids,
        bundle.item_domains,
        bundle.inputs,
        bundle.outputs,
        bundle.projections,
        bundle.bridge,
        bundle.params,
        text_model="",
    )
    bundle.save(tmp_path / "bundle")
    rng = np.random.default_rng(3)
    seqs, users = [], []
    for u in range(12):
        t = u % 4
        a = [i for i in range(len(ids)) if domains[i] == "a" and topic[i] == t]
        b = [i for i in range(len(ids)) if domains[i] == "b" and topic[i] == t]
        seqs.append(list(rng.choice(a, 3, replace=False)) + list(rng.choice(b, 3, replace=False)))
        users.append(f"replay-{u}")
    events = {
        u: [e.__class__(e.user_id, e.k, ids[int(e.item_id)], e.domain) for e in evs]
        for u, evs in replay_events(users, seqs, domains, 10).items()
    }
    model = BundleModel.load(tmp_path / "bundle")
    offline = offline_hits(model, events, model.interest_params(InterestParams()))
    stream, facts = stream_hits(events, tmp_path / "bundle", model_dir)
    result = compare(offline, stream)
    assert result["events_scored"] == sum(len(e) - 1 for e in events.values()) == 60
    assert result["per_event_agreement"] == 1.0
    assert result["stream_recall@10"] == result["offline_recall@10"] > 0.3
    assert facts["events"] == 72
