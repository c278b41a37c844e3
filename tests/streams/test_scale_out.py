"""Two worker processes in one consumer group, each with its own embedded Qdrant Edge store, on
the real broker: the behaviour partitions are split between them, the catalogue is not (each
store holds every item), every event is applied once, and a restarted worker resumes its
catalogue where its store stopped. Nothing here is mocked."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter

import pytest

from streams.broker import free_port
from streams.catalogue_replica import POSITION_FILE
from streams.processes import wait_for
from tests.fixtures.faulty_worker import FaultyWorkerHandle
from tests.fixtures.topic_reader import settled_user_states
from tests.fixtures.worker import WorkerHandle
from tests.streams.test_end_to_end import (
    _serving,
    events_for,
    latest_recommendations,
    single_topic_world,
)

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def _twin(w: WorkerHandle, name: str) -> WorkerHandle:
    """Another worker of the same app on the same topics, with its own store, port and log."""
    root = w.qdrant_path.parent
    return dataclasses.replace(
        w,
        web_port=free_port(),
        qdrant_path=root / f"qdrant-{name}",
        log_path=root / f"worker-{name}.log",
        proc=None,
        extra_env={**w.extra_env, "WORKER_DATA_DIR": str(root / f"data-{name}")},
    )


def _split(a: WorkerHandle, b: WorkerHandle) -> list[int] | None:
    """Both workers' behaviour partitions, sorted, once each holds some (else None)."""
    held = [a.healthz()["partitions"], b.healthz()["partitions"]]
    return sorted(held[0] + held[1]) if all(held) else None


def _ready(*workers: WorkerHandle) -> None:
    for w in workers:
        wait_for(lambda w=w: w.healthz()["ready"], 90, f"{w.log_path} ready", w.proc)


def test_two_workers_split_users_and_each_holds_the_whole_catalogue(make_worker) -> None:
    world, users = single_topic_world()
    a = make_worker()
    a.extra_env["WORKER_DATA_DIR"] = str(a.qdrant_path.parent / "data-a")
    b = _twin(a, "b")
    try:
        a.start()
        b.start()
        _ready(a, b)
        # the group has settled once both hold behaviour partitions, all of them between them
        wait_for(
            lambda: _split(a, b) == list(range(a.kafka.partitions)),
            120,
            "both workers holding behaviour partitions",
        )
        _ready(a, b)
        a.send(a.kafka.catalogue_topic, world.catalogue(), "item_id")
        n_items = len(world.items)
        for w in (a, b):  # not half each: every worker reads every catalogue partition
            w.wait_metric("xrec_events_total", n_items, outcome="upserted")
            assert w.metric("xrec_catalogue_lag_records") == 0

        events = events_for(world, users, per_user=3)
        a.send(a.kafka.behaviour_topic, events, "user_id")
        wait_for(
            lambda: (
                sum(w.metric("xrec_events_total", outcome="applied") for w in (a, b)) >= len(events)
            ),
            120,
            "every event applied by one of the workers",
        )
        applied = [w.metric("xrec_events_total", outcome="applied") for w in (a, b)]
        assert sum(applied) == len(events)
        assert min(applied) > 0, f"one worker took every partition: {applied}"
        assert a.metric("xrec_dead_letters_total") == b.metric("xrec_dead_letters_total") == 0

        # Every user, whichever worker holds them, gets on-topic items from the whole catalogue.
        recs = latest_recommendations(a.read(a.kafka.recommendations_topic))
        topic_of = {it.item_id: it.topic for it in world.items}
        for u in users:
            for target in world.domains:
                ids = [i["item_id"] for i in recs[(u.user_id, target)]["items"]]
                assert len(ids) == 10 and topic_of[ids[0]] == u.topics[0], (u, target)

        # A restarted worker resumes from its store's position: nothing is read again...
        b.stop()
        b.start()
        _ready(b)
        assert b.metric("xrec_events_total", outcome="upserted") == 0
        assert b.healthz()["catalogue_caught_up"] is True
        # ...and what comes later reaches both stores.
        a.send(a.kafka.catalogue_topic, [{**world.catalogue()[0], "title": "renamed"}], "item_id")
        b.wait_metric("xrec_events_total", 1, outcome="upserted")
        a.wait_metric("xrec_events_total", n_items + 1, outcome="upserted")
    finally:
        b.stop()


def test_with_a_shared_store_the_catalogue_is_read_through_the_consumer_group(make_worker) -> None:
    """A store every worker shares (a Qdrant server; the embedded engine stands in for one
    here, see tests/fixtures/faulty_worker.py) is fed through the consumer group: the
    catalogue's offsets are committed by the group and no position is kept beside a store."""
    world, users = single_topic_world()
    w = FaultyWorkerHandle.wrap(make_worker(), shared_store=True)
    try:
        w.start()
        w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
        w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
        events = events_for(world, users, per_user=1)
        w.send(w.kafka.behaviour_topic, events, "user_id")
        w.wait_metric("xrec_events_total", len(events), outcome="applied")
        wait_for(
            lambda: w.committed(w.kafka.catalogue_topic) == len(world.items),
            30,
            "the group committing the catalogue",
            w.proc,
        )
        assert not (w.qdrant_path / POSITION_FILE).exists()
        assert w.healthz()["catalogue_caught_up"] is True
    finally:
        w.stop()


def test_a_worker_whose_store_was_wiped_reads_the_catalogue_before_the_waiting_events(
    make_worker,
) -> None:
    """Behaviour events already waiting when a worker with an empty store starts are held until
    the store has read the catalogue again, then applied: none dead-lettered as unknown items,
    none lost, none applied twice."""
    world, users = single_topic_world(seed=7)
    events = events_for(world, users, per_user=4)
    first, rest = events[: len(events) // 2], events[len(events) // 2 :]
    w = _serving(make_worker, world)
    w.send(w.kafka.behaviour_topic, first, "user_id")
    w.wait_metric("xrec_events_total", len(first), outcome="applied")
    w.stop()
    shutil.rmtree(w.qdrant_path)
    w.send(w.kafka.behaviour_topic, rest, "user_id")  # waiting before the worker is back
    w.start()
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted", timeout_s=120)
    w.wait_metric("xrec_events_total", len(rest), outcome="applied", timeout_s=120)
    assert w.metric("xrec_dead_letters_total") == 0
    states = settled_user_states(w.kafka, w.app_id, len(events))
    per_user = Counter(ev["user_id"] for ev in events)
    assert {u: s.events_applied for u, s in states.items()} == dict(per_user)
