"""Faults against a real worker process: a vector-store outage and a poison message.

The worker here is tests/fixtures/faulty_worker.py: the real worker (broker, Faust app, ONNX
encoder, Qdrant Edge engine, users table) whose store is wrapped so that it fails on demand.
That wrapper is the only mock: a Qdrant server outage cannot be produced on these machines.
SIGKILL mid-stream is covered by tests/streams/test_end_to_end.py and repeated, with counts, by
``python -m bench.reliability``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from streams.processes import wait_for
from synth.generator import SyntheticWorld
from tests.fixtures.faulty_worker import FaultyWorkerHandle
from tests.fixtures.topic_reader import (
    read_topic,
    read_until,
    settled_user_states,
    users_served,
)

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]

OUTAGE_S = 6.0


def http_get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def world_and_events(per_user: int, users: int = 12) -> tuple[SyntheticWorld, list[dict]]:
    world = SyntheticWorld(items_per_topic_domain=4, users=users, seed=21)
    return world, list(world.events(per_user=per_user, start_time=time.time() - 3600))


def xrec_health(port: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from streams.cli import main; main()", "health"]
    return subprocess.run(
        [*command, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def applied_per_user(events: list[dict]) -> dict[str, int]:
    return dict(Counter(e["user_id"] for e in events))


def test_store_outage_backs_off_keeps_its_place_and_catches_up(make_worker, tmp_path: Path):
    """While the store is down (a mock of the outage: the flag file makes the worker's store
    raise StoreError; nothing else is mocked) the worker reports degraded, counts store errors
    and neither loses nor dead-letters anything; when it returns every event is applied once
    and recommendations are published for the events sent during the outage."""
    world, events = world_and_events(per_user=8)
    first, during = events[: len(events) // 2], events[len(events) // 2 :]
    flag = tmp_path / "store-down"
    w = FaultyWorkerHandle.wrap(make_worker(), down_flag=flag, retry_max_s=1.0)
    try:
        w.start()
        w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
        w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
        w.send(w.kafka.behaviour_topic, first, "user_id")
        w.wait_metric("xrec_events_total", len(first), outcome="applied")
        assert http_get(w.web_port, "/healthz")[0] == 200

        flag.touch()  # --- the store goes down
        new_items = [
            {"item_id": f"late-{i}", "domain": "books", "title": f"Late arrival {i}"}
            for i in range(3)
        ]
        w.send(w.kafka.behaviour_topic, during, "user_id")
        w.send(w.kafka.catalogue_topic, new_items, "item_id")
        w.wait_metric("xrec_store_errors_total", 1, timeout_s=30)
        errors_at_start = w.metric("xrec_store_errors_total")
        applied_at_start = w.metric("xrec_events_total", outcome="applied")
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:
            status, body = http_get(w.web_port, "/healthz")
            assert (status, body["status"], body["store_available"]) == (503, "degraded", False)
            assert w.metric("xrec_store_available") == 0
            time.sleep(0.5)
        assert w.metric("xrec_store_errors_total") > errors_at_start  # it keeps retrying
        # what an operator runs (`docker compose exec worker xrec health`): the reason, exit 1
        health = xrec_health(w.web_port)
        assert health.returncode == 1 and '"degraded"' in health.stdout, health
        assert w.metric("xrec_events_total", outcome="applied") == applied_at_start
        assert w.metric("xrec_dead_letters_total") == 0
        assert w.proc is not None and w.proc.poll() is None

        flag.unlink()  # --- the store is back
        back = time.monotonic()
        w.wait_metric("xrec_events_total", len(events), outcome="applied", timeout_s=60)
        w.wait_metric("xrec_events_total", len(world.items) + 3, outcome="upserted", timeout_s=30)
        caught_up_s = time.monotonic() - back
        wait_for(lambda: http_get(w.web_port, "/healthz")[0] == 200, 10, "healthy again")
        assert xrec_health(w.web_port).returncode == 0

        states = settled_user_states(w.kafka, w.app_id, len(events))
        assert {u: s.events_applied for u, s in states.items()} == applied_per_user(events)
        assert w.metric("xrec_events_total", outcome="applied") == len(events)
        assert w.metric("xrec_events_total", outcome="duplicate") == 0
        assert not read_topic(w.kafka, w.kafka.deadletter_topic)
        during_users, served = users_served(w.kafka, during)
        assert served == during_users
        print(f"\nstore outage {OUTAGE_S}s: caught up {caught_up_s:.1f}s after it returned")
    finally:
        w.stop()


def test_poison_message_is_dead_lettered_and_its_partition_moves_on(make_worker) -> None:
    """One event whose processing raises an unexpected error (injected: looking up its item
    raises RuntimeError) on a single-partition topic: it goes to the dead-letter topic as
    processing_error and every event before and after it on that partition is applied."""
    world, events = world_and_events(per_user=6, users=8)
    poison_item = {"item_id": "books-poison-0", "domain": "books", "title": "Poison pill"}
    victim = events[len(events) // 2]
    poison = {**victim, "event_id": "poison-1", "item_id": "books-poison-0", "domain": "books"}
    stream = [*events[: len(events) // 2], poison, *events[len(events) // 2 :]]
    w = FaultyWorkerHandle.wrap(make_worker(partitions=1), poison="poison")
    try:
        w.start()
        w.send(w.kafka.catalogue_topic, [*world.catalogue(), poison_item], "item_id")
        w.wait_metric("xrec_events_total", len(world.items) + 1, outcome="upserted")
        w.send(w.kafka.behaviour_topic, stream, "user_id")
        w.wait_metric("xrec_events_total", len(events), outcome="applied", timeout_s=60)
        w.wait_metric("xrec_dead_letters_total", 1, reason="processing_error", timeout_s=30)

        letters = read_until(w.kafka, w.kafka.deadletter_topic, lambda r: len(r) >= 1)
        assert len(letters) == 1
        _, value, headers = letters[0]
        assert json.loads(value)["event_id"] == "poison-1"
        assert headers["x-error-reason"] == b"processing_error"
        assert b"injected poison" in headers["x-error-message"]
        states = settled_user_states(w.kafka, w.app_id, len(events))
        assert {u: s.events_applied for u, s in states.items()} == applied_per_user(events)
        # the poison's own user goes on too: recommendations for events after it
        after = events[len(events) // 2 :]
        later = {e["event_id"] for e in after if e["user_id"] == victim["user_id"]}

        def resumed(records: list) -> bool:
            return any(json.loads(v)["source_event_id"] in later for _, v, _ in records)

        assert resumed(read_until(w.kafka, w.kafka.recommendations_topic, resumed))
        assert w.proc is not None and w.proc.poll() is None
        assert http_get(w.web_port, "/healthz")[0] == 200
    finally:
        w.stop()
