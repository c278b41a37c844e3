"""The publish pipeline: a batch's events are acknowledged only once what it produced is durable.

These drive :class:`streams.publish.PublishPipeline` with plain futures standing in for the
broker's acknowledgements, so the order of events can be set exactly. On the real broker,
``test_end_to_end`` checks that committed offsets never run ahead of the applied state and
that an idle worker commits its last batch (released with no batch after it), and the SIGKILL
tests that a killed worker applies every event once. The message test uses Faust's own
``ConsumerMessage`` reference counting; the consumer there is a stand-in that records
acknowledgements, since a Faust consumer needs a running app.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from streams.publish import FAIL_STOP_EXIT, PublishPipeline, hold_messages, releaser


def test_a_batch_is_released_when_its_deliveries_resolve_without_a_next_batch() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        released = asyncio.Event()

        def release(ev: object) -> None:
            log.append(f"release {ev}")
            released.set()

        pipeline = PublishPipeline(lambda ev: log.append(f"hold {ev}"), release, 60)
        first = asyncio.get_running_loop().create_future()
        pipeline.hold(["a"])
        await pipeline.submit(["a"], [first])
        await asyncio.sleep(0.01)
        log.append("a still in flight")
        first.set_result(None)
        # no further batch comes: the release must not wait for one
        await asyncio.wait_for(released.wait(), 5)
        log.append("idle")
        return log

    assert asyncio.run(run()) == ["hold ['a']", "a still in flight", "release ['a']", "idle"]


def test_the_next_batch_waits_for_the_one_in_flight_and_releases_keep_their_order() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        pipeline = PublishPipeline(lambda ev: None, lambda ev: log.append(f"release {ev}"), 60)
        loop = asyncio.get_running_loop()
        a, b = loop.create_future(), loop.create_future()
        await pipeline.submit(["a"], [a])
        b.set_result(None)  # b is durable first, but a was handed over first

        async def submit_b() -> None:
            await pipeline.submit(["b"], [b])
            log.append("b handed over")

        task = asyncio.ensure_future(submit_b())
        await asyncio.sleep(0.01)
        log.append("a still in flight")
        a.set_result(None)
        await task
        await pipeline.wait()
        return log

    assert asyncio.run(run()) == [
        "a still in flight",
        "release ['a']",
        "b handed over",
        "release ['b']",
    ]


def _event(offset: int) -> Any:
    msg = ConsumerMessage("behaviour", 0, offset, 0.0, 0, None, b"k", b"v", None)
    msg.incref()  # what Faust's conductor does for the one stream that reads the topic
    return SimpleNamespace(message=msg)


def test_held_messages_reach_the_consumer_only_when_released() -> None:
    acked: list[int] = []
    out: list[int] = []
    app = SimpleNamespace(
        consumer=SimpleNamespace(ack=lambda m: acked.append(m.offset) or True),
        sensors=SimpleNamespace(on_message_out=lambda tp, offset, m: out.append(offset)),
    )
    events = [_event(5), _event(6)]
    hold_messages(events)
    for e in events:  # take_events acknowledging the batch when the agent asks for the next
        assert e.message.ack(app.consumer) is False
    assert acked == []
    releaser(app)(events)
    assert acked == [5, 6] and out == [5, 6]


_FAILING = """
import asyncio, logging
from types import SimpleNamespace
from streams.publish import PublishPipeline

logging.basicConfig()  # as the worker's CLI does

async def main():
    pipeline = PublishPipeline(lambda ev: None, lambda ev: print("released"), 0.5)
    delivery = asyncio.get_running_loop().create_future()
    if FAIL:
        delivery.set_exception(ConnectionError("broker gone"))
    event = SimpleNamespace(message=SimpleNamespace(topic="behaviour", partition=2, offset=7))
    await pipeline.submit([event], [delivery])
    await pipeline.wait()

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("fail", "logged"),
    [
        (True, ["publishing a batch of 1 events (behaviour[2]@7) failed", "broker gone"]),
        (False, ["a batch of 1 events (behaviour[2]@7) not acknowledged in 0.5 s"]),
    ],
    ids=["failed", "never-resolved"],
)
def test_a_delivery_that_fails_or_never_resolves_stops_the_process_without_releasing(
    fail: bool, logged: list[str], tmp_path: Path
) -> None:
    # A broker that stays away for the producer's whole delivery timeout cannot be staged in a
    # test: a future carries the error the producer would raise, or is never resolved.
    run = subprocess.run(
        [sys.executable, "-c", f"FAIL = {fail}\n" + _FAILING],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == FAIL_STOP_EXIT
    assert "released" not in run.stdout
    assert all(text in run.stderr for text in logged), run.stderr


def test_a_failed_release_surfaces_once_and_leaves_nothing_in_flight() -> None:
    async def run() -> list[str]:
        def release(events: Any) -> None:
            raise RuntimeError("sensor broke")

        pipeline = PublishPipeline(lambda ev: None, release, 60)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        await pipeline.submit(["a"], [done])
        seen = []
        try:
            await pipeline.wait()
        except RuntimeError as exc:
            seen.append(str(exc))
        await pipeline.wait()  # nothing in flight any more: returns at once
        return seen

    assert asyncio.run(run()) == ["sensor broke"]


def test_the_age_of_the_batch_in_flight_shows_while_it_waits_and_is_0_once_released() -> None:
    async def run() -> tuple[float, float, float, float]:
        pipeline = PublishPipeline(lambda ev: None, lambda ev: None, 60)
        idle = pipeline.pending_s()
        ack = asyncio.get_running_loop().create_future()
        await pipeline.submit(["a"], [ack])
        await asyncio.sleep(0.05)
        waiting = pipeline.pending_s()
        await asyncio.sleep(0.05)
        later = pipeline.pending_s()
        ack.set_result(None)
        await pipeline.wait()
        return idle, waiting, later, pipeline.pending_s()

    idle, waiting, later, released = asyncio.run(run())
    assert idle == 0.0 and released == 0.0
    assert 0.04 < waiting < later  # it keeps growing while the broker says nothing


def test_a_batch_whose_sends_wait_for_the_broker_shows_before_it_is_handed_over() -> None:
    async def run() -> tuple[float, float, float]:
        pipeline = PublishPipeline(lambda ev: None, lambda ev: None, 60)
        pipeline.sending()  # a send blocked on a full producer buffer: never handed over yet
        await asyncio.sleep(0.05)
        blocked = pipeline.pending_s()
        pipeline.sending()  # a retry's sends do not restart the clock
        retried = pipeline.pending_s()
        await pipeline.submit(["a"], [])
        await pipeline.wait()
        return blocked, retried, pipeline.pending_s()

    blocked, retried, done = asyncio.run(run())
    assert blocked > 0.04 and retried >= blocked and done == 0.0


def test_a_batch_is_named_by_each_partitions_first_and_last_offset() -> None:
    from streams.deadletter import span

    where = [("behaviour", 1, 9), ("behaviour", 0, 5), ("behaviour", 0, 7), ("catalogue", 0, 2)]
    assert span(where) == "behaviour[0]@5..7, behaviour[1]@9, catalogue[0]@2"
