"""A batch whose processing raises leaves user state as it was, so the agent's event-by-event
retry (streams.app.process_singly) applies every other event and isolates the one that fails.

Processor-level, with the real Qdrant Edge store and model bundle; the failure is injected
into the store's query call (an unexpected bug that one user's query triggers), which no real
input can provoke on purpose.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import processor_for
from inference.bundle_model import BundleModel
from inference.interest import is_finite
from inference.interest_codec import loads
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from synth.drift import SOURCE, TARGET, DriftWorld


@pytest.fixture(scope="module")
def world_and_bundle():
    world = DriftWorld(seed=0)
    return world, fit_world_bundle(world)


def _messages(world: DriftWorld, users: int, per_user: int) -> list[SourceMessage]:
    """Users alternating the two domains within one topic each, taking turns."""
    events = []
    for n in range(per_user):
        for u in range(users):
            domain = (SOURCE, TARGET)[n % 2]
            events.append(
                {
                    "event_id": f"u{u}-{n}",
                    "user_id": f"u{u}",
                    "domain": domain,
                    "action": "purchase",
                    "item_id": world.items[domain, u % world.topics][n],
                    "event_time": 1.7e9 + n,
                }
            )
    return [
        SourceMessage("behaviour", 0, k, e["user_id"].encode(), json.dumps(e).encode(), 0.0)
        for k, e in enumerate(events)
    ]


def _poisoned(store, item_id: str):
    """The store's batch query, raising when a query excludes ``item_id`` (its user bought it)."""
    real = store.query_items_batch

    def query_items_batch(queries):
        if any(item_id in q.exclude_item_ids for q in queries):
            raise RuntimeError("injected: a bug one user's query triggers")
        return real(queries)

    return query_items_batch


def test_a_failed_batch_writes_no_state_and_the_retry_isolates_the_failing_event(
    world_and_bundle, tmp_path
) -> None:
    world, bundle = world_and_bundle
    msgs = _messages(world, users=6, per_user=6)
    first, batch = msgs[:6], msgs[6:]  # every user's first event, then the rest in one batch
    poison = batch[-1]  # the last event of user u5: their query excludes its item
    poison_item = json.loads(poison.value)["item_id"]
    clean_folds = _folds_of_a_clean_pass(bundle, msgs, tmp_path / "clean")

    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, tmp_path / "qdrant", top_k=5)
    table: dict[str, bytes] = {}

    def run(m: list[SourceMessage]):
        return asyncio.run(proc.process(m, table.get, lambda u, v, _m: table.__setitem__(u, v)))

    try:
        run(first)
        store.query_items_batch = _poisoned(store, poison_item)
        written = dict(table)
        with pytest.raises(RuntimeError, match="injected"):
            run(batch)
        assert table == written  # nothing of the failed batch reached the table

        failed, recommended = [], set()
        for m in batch:  # what the agent does next
            try:
                out = run([m])
            except RuntimeError:
                failed.append(m)
                continue
            recommended |= {r.source_event_id for r in out.recommendations}
    finally:
        pool.shutdown()
        store.close()
    assert failed == [poison]
    others = [m for m in batch if m is not poison]
    assert recommended == {json.loads(m.value)["event_id"] for m in others}
    applied = {u: loads(v).events_applied for u, v in table.items()}
    assert applied == {f"u{u}": 6 for u in range(5)} | {"u5": 5}
    # what the model learned from the failed attempt is kept once: the retry folds nothing again
    assert model.online.version == clean_folds


def _folds_of_a_clean_pass(bundle, msgs: list[SourceMessage], path) -> int:
    """The folds of one pass over the same batches without the fault, the failing event
    included (the failed attempt learned from it before its query failed)."""
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, path, top_k=5)
    table: dict[str, bytes] = {}
    try:
        for part in (msgs[:6], msgs[6:]):
            asyncio.run(proc.process(part, table.get, lambda u, v, _m: table.__setitem__(u, v)))
    finally:
        pool.shutdown()
        store.close()
    return model.online.version


def test_a_replayed_batch_sends_its_users_state_again_unchanged(world_and_bundle, tmp_path) -> None:
    """After a crash between a store that writes at once (RocksDB) and the changelog, the
    replayed events are duplicates: the users' states are sent again, or the changelog would
    stay behind the local store once the offsets are committed."""
    world, bundle = world_and_bundle
    msgs = _messages(world, users=4, per_user=3)
    proc, store, pool = processor_for(BundleModel(bundle), tmp_path / "qdrant", top_k=5)
    table: dict[str, bytes] = {}
    sent: list[tuple[str, bytes]] = []

    def state_set(user: str, value: bytes, _m: SourceMessage) -> None:
        table[user] = value
        sent.append((user, value))

    try:
        asyncio.run(proc.process(msgs, table.get, state_set))
        first = dict(table)
        sent.clear()
        out = asyncio.run(proc.process(msgs, table.get, state_set))  # the replay
    finally:
        pool.shutdown()
        store.close()
    assert out.applied == 0 and out.duplicates == len(msgs)
    assert dict(sent) == first and len(sent) == len(first)  # each user once, as it was


def test_only_the_retry_of_a_failed_batch_counts_its_detections_and_empty_queries(
    world_and_bundle, tmp_path
) -> None:
    """User drift detections and skipped (empty) queries of a batch that failed in its store
    query are counted by the event-by-event retry only: the same counts as the retry alone."""
    world, bundle = world_and_bundle
    msgs = _messages(world, users=3, per_user=2)
    # user s: twelve purchases of one source topic, then six of another, in the failing batch
    items = world.items[SOURCE, 0][:12] + world.items[SOURCE, 3][:6]
    switch = [
        SourceMessage(
            "behaviour",
            1,
            n,
            b"s",
            json.dumps(
                {
                    "event_id": f"s-{n}",
                    "user_id": "s",
                    "domain": SOURCE,
                    "action": "purchase",
                    "item_id": item,
                    "event_time": 1.7e9 + n,
                }
            ).encode(),
            0.0,
        )
        for n, item in enumerate(items)
    ]
    first, batch = msgs[:3] + switch[:12], msgs[3:] + switch[12:]
    poison_item = json.loads(msgs[-1].value)["item_id"]

    def counts(failed_attempt: bool, path) -> tuple[float, float]:
        model = BundleModel(bundle)
        proc, store, pool = processor_for(model, path, top_k=5)
        # a target domain the bundle does not know: every user's query there is empty
        proc.recommender.settings = proc.settings.model_copy(
            update={"target_domains": [*bundle.domains, "nowhere"]}
        )
        table: dict[str, bytes] = {}

        def run(m: list[SourceMessage]):
            return asyncio.run(proc.process(m, table.get, lambda u, v, _m: table.__setitem__(u, v)))

        names = (
            ("xrec_drift_detections_total", {"level": "user"}),
            (
                "xrec_recommendations_empty_total",
                {},
            ),
        )
        before = [REGISTRY.get_sample_value(n, labels) or 0.0 for n, labels in names]
        try:
            run(first)
            store.query_items_batch = _poisoned(store, poison_item)
            if failed_attempt:
                with pytest.raises(RuntimeError, match="injected"):
                    run(batch)
            for m in batch:  # the agent's retry
                try:
                    run([m])
                except RuntimeError:
                    assert m is msgs[-1]
        finally:
            pool.shutdown()
            store.close()
        after = [REGISTRY.get_sample_value(n, labels) or 0.0 for n, labels in names]
        return after[0] - before[0], after[1] - before[1]

    retry_alone = counts(False, tmp_path / "retry-alone")
    assert retry_alone[0] >= 1 and retry_alone[1] >= 1  # the switch is detected, "nowhere" empty
    assert counts(True, tmp_path / "failed-then-retry") == retry_alone


def test_an_event_whose_vector_is_not_finite_is_dead_lettered(world_and_bundle, tmp_path) -> None:
    """A text vector with NaN (injected: the real encoder cannot be made to give one on
    purpose) is dead-lettered, and nothing of it reaches the user or the projections."""
    world, bundle = world_and_bundle
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, tmp_path / "qdrant", top_k=5)

    async def nan_encoder(texts):
        return np.full((len(texts), 16), np.nan, np.float32)

    proc.encode = nan_encoder
    msgs = _messages(world, users=2, per_user=4)
    search = {
        "event_id": "u0-search",
        "user_id": "u0",
        "domain": TARGET,
        "action": "search",
        "text": "anything",
        "event_time": 1.7e9 + 10,
    }
    msgs.append(SourceMessage("behaviour", 0, len(msgs), b"u0", json.dumps(search).encode(), 0.0))
    table: dict[str, bytes] = {}
    try:
        out = asyncio.run(proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v)))
    finally:
        pool.shutdown()
        store.close()
    letters = [(d.reason, d.source.offset) for d in out.dead_letters]
    assert letters == [("non_finite", len(msgs) - 1)]
    assert out.applied == len(msgs) - 1
    assert all(is_finite(loads(v)) for v in table.values())
    for part in model.online.parts.values():
        assert all(np.isfinite(s.cross).all() for s in part.stats.values())


def test_an_event_the_bundle_cannot_place_is_dead_lettered_alone(
    world_and_bundle, tmp_path
) -> None:
    """A search in a domain the store holds items of but the bundle was not fitted on (items
    left by an earlier bundle, or written by another worker to a shared Qdrant): the text
    bridge refuses it. That used to fail the whole batch; it is this event's problem."""
    from store.base import ItemPoint

    world, bundle = world_and_bundle
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, tmp_path / "qdrant", top_k=5)
    store.upsert_items([ItemPoint("toy-1", "toys", np.ones(model.stored_dim))])
    text_dim = bundle.bridge.weights.shape[1] - 1

    async def encode(texts):  # stands in for the encoder: what it returns is not under test
        return np.ones((len(texts), text_dim), np.float32)

    proc.encode = encode
    good = _messages(world, users=2, per_user=1)
    search = {"event_id": "s", "user_id": "u9", "domain": "toys", "action": "search"}
    search |= {"text": "wooden train", "event_time": 1.7e9}
    bad = SourceMessage("behaviour", 0, 2, b"u9", json.dumps(search).encode(), 0.0)
    table: dict[str, bytes] = {}
    try:
        out = asyncio.run(
            proc.process(
                [good[0], bad, good[1]], table.get, lambda u, v, _m: table.__setitem__(u, v)
            )
        )
    finally:
        pool.shutdown()
        store.close()
    assert out.applied == 2 and [d.reason for d in out.dead_letters] == ["model_mismatch"]
    assert "toys" in out.dead_letters[0].message and set(table) == {"u0", "u1"}


def test_a_state_too_large_for_a_changelog_record_drops_its_oldest_recent_items(
    world_and_bundle, tmp_path, monkeypatch
) -> None:
    """A record over the producer's request size stopped the worker on every restart (the same
    event replayed). The real limit needs ten domains of 256-character ids; the budget is
    lowered here so the world's short ids reach it."""
    import streams.behaviour as behaviour

    world, bundle = world_and_bundle
    msgs = _messages(world, users=1, per_user=24)  # 12 items in each of the two domains

    def run(path, budget: int | None = None) -> tuple[dict[str, bytes], object]:
        if budget is not None:
            monkeypatch.setattr(behaviour, "MAX_STATE_BYTES", budget)
        proc, store, pool = processor_for(BundleModel(bundle), path, top_k=5)
        table: dict[str, bytes] = {}
        try:
            out = asyncio.run(
                proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v))
            )
        finally:
            pool.shutdown()
            store.close()
        return table, out

    full = len(run(tmp_path / "full")[0]["u0"])
    before = REGISTRY.get_sample_value("xrec_user_state_trimmed_total") or 0.0
    table, out = run(tmp_path / "cut", budget=full - 60)  # about six item ids too many
    assert out.applied == 24 and not out.dead_letters  # nothing lost
    raw = table["u0"]
    assert len(raw) <= full - 60
    st = loads(raw)
    assert st.events_applied == 24  # every event's interest is in
    newest = json.loads(msgs[-1].value)
    assert st.domains[newest["domain"]].recent[-1] == newest["item_id"]  # the newest kept
    assert 0 < sum(len(d.recent) for d in st.domains.values()) < 24
    assert REGISTRY.get_sample_value("xrec_user_state_trimmed_total") == before + 1
