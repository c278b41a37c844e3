"""The publish pipeline: a batch's events are acknowledged only once what it produced is durable.

These drive :class:`streams.publish.PublishPipeline` with plain futures standing in for the
broker's acknowledgements, so the order of events can be set exactly (the worker tests in
``test_end_to_end`` check the same guarantee on the real broker: committed offsets never run
ahead of the changelog, and an idle worker commits its last batch). The message tests use
Faust's own ``ConsumerMessage`` reference counting; the consumer there is a stand-in that
records acknowledgements, since a Faust consumer needs a running app.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types.tuples import ConsumerMessage

from streams.changelog import CHANGELOG_FAILED_EXIT
from streams.publish import PublishPipeline, hold_messages, releaser


def test_a_batch_is_released_when_its_deliveries_resolve_without_a_next_batch() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        pipeline = PublishPipeline(
            lambda ev: log.append(f"hold {ev}"), lambda ev: log.append(f"release {ev}")
        )
        first = asyncio.get_running_loop().create_future()
        await pipeline.submit(["a"], [first])
        await asyncio.sleep(0.01)
        log.append("a still in flight")
        first.set_result(None)
        await asyncio.sleep(0.01)  # no further batch: the release must not wait for one
        log.append("idle")
        return log

    assert asyncio.run(run()) == ["hold ['a']", "a still in flight", "release ['a']", "idle"]


def test_the_next_batch_waits_for_the_one_in_flight_and_releases_keep_their_order() -> None:
    async def run() -> list[str]:
        log: list[str] = []
        pipeline = PublishPipeline(lambda ev: None, lambda ev: log.append(f"release {ev}"))
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


def test_a_failed_delivery_stops_the_process_without_releasing(tmp_path: Path) -> None:
    # A broker that stays away for the producer's whole delivery timeout cannot be staged in a
    # test: a future carries the error the producer would raise.
    script = """
import asyncio, logging
from streams.publish import PublishPipeline

logging.basicConfig()  # as the worker's CLI does

async def main():
    pipeline = PublishPipeline(lambda ev: None, lambda ev: print("released"))
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(ConnectionError("broker gone"))
    await pipeline.submit(["a"], [failed])
    await pipeline.wait()

asyncio.run(main())
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert run.returncode == CHANGELOG_FAILED_EXIT
    assert "released" not in run.stdout
    assert "publishing a batch of 1 events failed" in run.stderr and "broker gone" in run.stderr
