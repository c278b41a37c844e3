"""Acknowledge a behaviour batch once everything it produced is durable, off the agent's path.

After a micro-batch is processed, its recommendations, dead letters and changelog records are
on their way to the broker. Waiting for the broker's acknowledgements before taking the next
batch left the event loop idle for a quarter of each batch (profile stage ``publish``: 61 of
~240 ms per batch at 918 ev/s, 2026-11-29). The behaviour agent now hands the batch's delivery
futures to a :class:`PublishPipeline` and computes the next batch meanwhile.

The guarantee is unchanged: a batch's events are acknowledged to Faust, which is what lets
their offsets be committed, only after the broker holds every record the batch produced.
Faust's ``take_events`` acknowledges a batch as soon as the agent asks for the next one, so
each event's message is held with one extra reference (``Message.incref``) that the pipeline
releases when the batch is durable. At most one batch is in flight: the agent waits for it
before handing over the next, which keeps acknowledgements in offset order and bounds what a
slow broker can pile up. A delivery that fails for good stops the process (see
:func:`streams.changelog.fail_stop`): the state already moved on in memory, so only a restart
from the committed offsets (the state deduplicates by offset) replays the batch correctly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.changelog import fail_stop
from streams.metrics import PUBLISH_ACK_SECONDS

Release = Callable[[Sequence[Any]], None]


def hold_messages(events: Sequence[Any]) -> None:
    """Take one more reference on each event's Faust message (released by :func:`releaser`)."""
    for e in events:
        e.message.incref()


def releaser(app: Any) -> Release:
    """Give back :func:`hold_messages`' reference; the last one lets Faust commit the offset.

    ``app`` is read when releasing: its consumer is created when the worker starts.
    """

    def release(events: Sequence[Any]) -> None:
        for e in events:
            m = e.message
            if m.ack(app.consumer):  # the last reference: what Stream.ack does in that case
                app.sensors.on_message_out(m.tp, m.offset, m)

    return release


class PublishPipeline:
    """One batch at a time in flight between "records sent" and "events acknowledged".

    ``hold(events)`` is called when a batch is handed over, ``release(events)`` once its
    deliveries are acknowledged; in the worker they take and give back a reference on each
    event's Faust message.
    """

    def __init__(self, hold: Release, release: Release) -> None:
        self._hold = hold
        self._release = release
        self._inflight: asyncio.Task[None] | None = None

    async def submit(self, events: Sequence[Any], deliveries: Sequence[Awaitable[Any]]) -> None:
        """Hand over a processed batch; returns once the batch before it is acknowledged."""
        self._hold(events)
        handed_over = time.perf_counter()
        await self.wait()
        self._inflight = asyncio.ensure_future(self._settle(events, deliveries, handed_over))

    async def wait(self) -> None:
        """Until the batch in flight, if any, is acknowledged."""
        if self._inflight is not None:
            # shield: a cancelled agent must not cancel the acknowledgement of a durable batch
            await asyncio.shield(self._inflight)
            self._inflight = None

    async def _settle(
        self, events: Sequence[Any], deliveries: Sequence[Awaitable[Any]], handed_over: float
    ) -> None:
        try:
            await asyncio.gather(*deliveries)
        except Exception as exc:  # the producer already retried until its delivery timeout
            fail_stop(f"publishing a batch of {len(events)} events failed: {exc!r}")
        PUBLISH_ACK_SECONDS.observe(time.perf_counter() - handed_over)
        self._release(events)
