"""What the behaviour processor hands the model to learn from (real Qdrant Edge store, no broker:
the processor is Faust-free by design; the Kafka side is covered by the end-to-end tests)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import processor_for
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.interest_codec import loads
from inference.online_projection import PartitionStats
from streams.behaviour import LearnedState
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from synth.drift import SOURCE, TARGET, DriftWorld, Scenario


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


class _Crash(Exception):
    """The worker dies after a batch's learned records reached the broker."""


def _batches(events: list[dict], size: int) -> list[list[SourceMessage]]:
    msgs = [
        SourceMessage("behaviour", 0, k, e["user_id"].encode(), json.dumps(e).encode(), 0.0)
        for k, e in enumerate(events)
    ]
    return [msgs[k : k + size] for k in range(0, len(msgs), size)]


def _stored_folds(learned: dict[int, bytes]) -> int:
    return sum(PartitionStats.loads(raw).folded for raw in learned.values())


def test_a_crash_between_the_learned_and_the_user_records_folds_each_event_once(
    bundle, tmp_path
) -> None:
    """The users and projection tables are two changelogs: the processor waits for the
    learned records (LearnedState.before_user_state) before it writes any user state, so a crash in
    between leaves events folded but not applied, which the replay applies and does not fold
    again. Tables here are dicts (no broker: the ordering is the processor's)."""
    events = DriftWorld(seed=0).stream(Scenario.NONE, size=600).events
    batches = _batches(events, size=50)

    def run(model, path, users, learned, todo, before_user_state=None) -> None:
        proc, store, pool = processor_for(model, path, top_k=5)
        state = LearnedState(
            learned.get, lambda p, v, _m: learned.__setitem__(p, v), before_user_state
        )
        try:
            for msgs in todo:
                asyncio.run(
                    proc.process(msgs, users.get, lambda u, v, _m: users.__setitem__(u, v), state)
                )
        finally:
            pool.shutdown()
            store.close()

    ref_users: dict[str, bytes] = {}
    ref_learned: dict[int, bytes] = {}
    run(BundleModel(bundle), tmp_path / "ref", ref_users, ref_learned, batches)
    expected = _stored_folds(ref_learned)
    assert expected > len(events)  # pairs and events: the stream teaches the projection

    users: dict[str, bytes] = {}
    learned: dict[int, bytes] = {}
    crash_at = len(batches) // 2
    run(BundleModel(bundle), tmp_path / "a", users, learned, batches[:crash_at])
    before_crash, folds_before = dict(users), _stored_folds(learned)

    def crash() -> None:
        raise _Crash

    with pytest.raises(_Crash):
        run(BundleModel(bundle), tmp_path / "b", users, learned, batches[crash_at:][:1], crash)
    # the crashed batch's learned record was written, none of its user records
    assert users == before_crash
    assert _stored_folds(learned) > folds_before
    # a restarted worker: a new model that reads its statistics from the table, the batch
    # replayed from its first event (its offsets were not committed)
    run(BundleModel(bundle), tmp_path / "c", users, learned, batches[crash_at:])
    assert _stored_folds(learned) == expected
    applied = {u: loads(v).events_applied for u, v in users.items()}
    assert applied == {u: loads(v).events_applied for u, v in ref_users.items()}


def _event(user: str, domain: str, item: str, n: int) -> dict:
    return {
        "event_id": f"{user}-{n}",
        "user_id": user,
        "domain": domain,
        "action": "purchase",
        "item_id": item,
        "event_time": 1.7e9 + n,
    }


def test_every_partition_that_learned_gets_its_record_and_only_those(bundle, tmp_path) -> None:
    """A user's events can span partitions within a batch (a topic that gained partitions
    moves users): each partition that folded something gets its record, not only the
    partition of the user's last event; a batch that folded nothing writes none."""
    world = DriftWorld(seed=0)
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, tmp_path / "qdrant", top_k=5)
    users: dict[str, bytes] = {}
    learned: dict[int, bytes] = {}
    state = LearnedState(learned.get, lambda p, v, _m: learned.__setitem__(p, v))

    def run(events: list[tuple[int, int, dict]]) -> None:
        msgs = [
            SourceMessage("behaviour", p, o, b"u", json.dumps(e).encode(), 0.0)
            for p, o, e in events
        ]
        asyncio.run(proc.process(msgs, users.get, lambda u, v, _m: users.__setitem__(u, v), state))

    src, tgt = world.items[SOURCE, 0], world.items[TARGET, 0]
    try:
        run([(0, 0, _event("u", SOURCE, src[0], 0))])  # a first event: nothing to learn
        assert learned == {} and model.online.version == 0
        run(
            [
                (1, 0, _event("u", TARGET, tgt[0], 1)),  # now in two domains: a pair folds
                (0, 1, _event("u", SOURCE, src[1], 2)),
                (1, 1, _event("u", TARGET, tgt[1], 3)),  # the user's last event
            ]
        )
    finally:
        pool.shutdown()
        store.close()
    stored = {p: PartitionStats.loads(raw) for p, raw in learned.items()}
    assert set(stored) == {0, 1}
    assert {p: s.offset for p, s in stored.items()} == {0: 1, 1: 1}
    assert sum(s.folded for s in stored.values()) == model.online.version > 0


def test_a_reload_during_a_batch_is_served_from_the_next_batch(bundle, tmp_path) -> None:
    """A bundle reload is a timer task: it can run while a batch awaits (encoding, a store
    call on a thread); here it is offered from the learned-state hook, mid-batch. The batch
    ends on the model it started with."""
    adaptive = BundleModel(bundle)
    static = BundleModel(bundle, drift=DriftParams(adaptive=False))  # version without "+N"
    proc, store, pool = processor_for(adaptive, tmp_path / "qdrant", top_k=5)
    batches = _batches(DriftWorld(seed=0).stream(Scenario.NONE, size=200).events, size=100)
    users: dict[str, bytes] = {}
    learned: dict[int, bytes] = {}

    def reload_meanwhile() -> None:
        proc.serve(static)

    state = LearnedState(learned.get, lambda p, v, _m: learned.__setitem__(p, v), reload_meanwhile)
    try:
        outs = [
            asyncio.run(
                proc.process(msgs, users.get, lambda u, v, _m: users.__setitem__(u, v), state)
            )
            for msgs in batches[:2]
        ]
    finally:
        pool.shutdown()
        store.close()
    first, second = ({r.model_version for r in out.recommendations} for out in outs)
    assert first and all("+" in v for v in first)  # the adaptive model's, to the end
    assert second == {static.serving_version}
