"""What the behaviour processor hands the model to learn from (real Qdrant Edge store, no broker:
the processor is Faust-free by design; the Kafka side is covered by the end-to-end tests)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import processor_for
from inference.bundle_model import BundleModel
from inference.interest import loads
from inference.online_projection import PartitionStats
from streams.behaviour import LearnedState
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from synth.drift import TARGET, DriftWorld, Scenario


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
    learned records (LearnedState.durable) before it writes any user state, so a crash in
    between leaves events folded but not applied, which the replay applies and does not fold
    again. Tables here are dicts (no broker: the ordering is the processor's)."""
    events = DriftWorld(seed=0).stream(Scenario.NONE, size=600).events
    batches = _batches(events, size=50)

    def run(model, path, users, learned, todo, durable=None) -> None:
        proc, store, pool = processor_for(model, path, top_k=5)
        state = LearnedState(learned.get, lambda p, v, _m: learned.__setitem__(p, v), durable)
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

    async def crash() -> None:
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
