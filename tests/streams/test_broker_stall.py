"""A broker that stops answering mid-stream: the worker says so, then carries on (real broker,
paused with SIGSTOP and resumed with SIGCONT; real worker, store and encoder; nothing mocked)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.processes import wait_for
from streams.settings import KafkaSettings
from tests.fixtures.topic_reader import settled_user_states
from tests.streams.test_faults import applied_per_user, http_get, world_and_events

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]

STALL_S = 1.0  # WORKER_PUBLISH_STALL_S for this worker
PAUSE_S = 5.0  # the most the broker stays paused: under the 10 s consumer session timeout


def test_a_paused_broker_degrades_healthz_and_the_stream_resumes_intact(
    make_worker, broker
) -> None:
    world, events = world_and_events(per_user=60, users=40)
    w = make_worker()
    w.extra_env = {"WORKER_PUBLISH_STALL_S": str(STALL_S)}
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
    w.send(w.kafka.behaviour_topic, events, "user_id")
    w.wait_metric("xrec_events_total", len(events) // 4, outcome="applied")
    assert http_get(w.web_port, "/healthz")[0] == 200

    os.kill(broker.process.pid, signal.SIGSTOP)  # --- mid-stream: a batch is on its way
    paused_at = time.monotonic()
    try:
        # /healthz takes the worker out once a batch has waited STALL_S for the broker
        # (polled, not slept for: on a loaded machine the next batch may start late)
        wait_for(
            lambda: http_get(w.web_port, "/healthz")[1].get("publish_stalled") is True,
            PAUSE_S,
            "/healthz reporting the stalled publish",
        )
        status, body = http_get(w.web_port, "/healthz")
        # short retries while paused: the pause must stay under the session timeout
        applied_while_paused = w.metric("xrec_events_total", retry_s=1, outcome="applied")
        assert applied_while_paused < len(events), "the stream ended before the pause: more events"
        pending = w.metric("xrec_publish_pending_seconds", retry_s=1)
        time.sleep(1.0)
        # nothing is applied meanwhile, and the batch in flight keeps waiting
        assert w.metric("xrec_events_total", retry_s=1, outcome="applied") == applied_while_paused
        assert w.metric("xrec_publish_pending_seconds", retry_s=1) > pending
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)  # --- the broker is back
        paused_s = time.monotonic() - paused_at
    # what this test is about (a stall the group rides out) holds only under the consumer
    # session timeout; past it the group rebalances, a different story: say so, not flake
    session_s = KafkaSettings().session_timeout_s
    assert paused_s < session_s, f"paused {paused_s:.1f} s, past the {session_s} s session"
    assert (status, body["status"], body["publish_stalled"]) == (503, "degraded", True)
    assert body["publish_pending_s"] >= STALL_S and body["store_available"] is True

    w.wait_metric("xrec_events_total", len(events), outcome="applied", timeout_s=120)
    wait_for(lambda: http_get(w.web_port, "/healthz")[0] == 200, 30, "healthy again")
    assert w.metric("xrec_publish_pending_seconds") < STALL_S
    states = settled_user_states(w.kafka, w.app_id, len(events))
    assert {u: s.events_applied for u, s in states.items()} == applied_per_user(events)
    assert w.proc is not None and w.proc.poll() is None
