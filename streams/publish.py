"""Acknowledge a behaviour batch once everything it produced is durable, off the agent's path.

After a micro-batch is processed, its recommendations, dead letters and changelog records are
on their way to the broker. Waiting for the broker's acknowledgements before taking the next
batch left the event loop idle for a quarter of each batch (profile stage ``publish``: 56 of
~220 ms per batch at 914 ev/s, ``bench/results/stream-steps/19-*``). The behaviour agent now
hands the batch's delivery futures to a :class:`PublishPipeline` and computes the next batch
meanwhile.

The guarantee is unchanged: a batch's events are acknowledged to Faust, which is what lets
their offsets be committed, only after the broker holds every record the batch produced.
Faust's ``take_events`` acknowledges a batch as soon as the agent asks for the next one, so
the agent holds each event's message with one extra reference (``Message.incref``) as soon as
it receives the batch, and the pipeline releases it when the batch is durable. At most one
batch is in flight: the agent waits for it before handing over the next, which keeps the final
acknowledgements in offset order (Faust commits the run of consecutive acknowledged offsets,
so an out-of-order release could let it commit past a batch still in flight) and bounds what a
slow broker can pile up.

A delivery that fails for good stops the process (:func:`fail_stop`): the state already moved
on in memory, so only a restart from the committed offsets rebuilds it correctly. Events whose
new state reached the changelog are then skipped as already applied (state is exactly-once),
so a recommendation or dead letter whose own delivery failed is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.deadletter import span
from streams.metrics import PUBLISH_ACK_SECONDS

log = logging.getLogger(__name__)

# Exit status of fail_stop (a supervisor restarts the worker, which replays from its commits).
FAIL_STOP_EXIT = 70

Release = Callable[[Sequence[Any]], None]
#: A record on its way to the broker: resolves when the broker acknowledged it.
Delivery = Awaitable[Any]


def fail_stop(reason: str) -> None:
    """Exit without committing offsets; logged first so the operator sees why."""
    log.critical("%s; exiting without committing so a restart replays the batch", reason)
    logging.shutdown()
    os._exit(FAIL_STOP_EXIT)


def _where(events: Sequence[Any]) -> str:
    """The batch's topic, partitions and offsets, for the log line of a failure."""
    return span((e.message.topic, e.message.partition, e.message.offset) for e in events)


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

    The agent calls :meth:`hold` when it receives a batch and :meth:`submit` once the batch's
    records are sent; ``release(events)`` runs when all their deliveries resolved. Deliveries
    still unresolved after ``timeout_s`` stop the process like a failed one (a future that is
    never resolved would otherwise hold the partition's commits for good).
    """

    def __init__(self, hold: Release, release: Release, timeout_s: float) -> None:
        self.hold = hold
        self._release = release
        self._timeout_s = timeout_s
        self._inflight: asyncio.Task[None] | None = None
        self._inflight_since: float | None = None  # when the batch in flight began sending
        self._sending_since: float | None = None  # ... the batch being sent, not handed over

    def sending(self) -> None:
        """The agent starts sending the held batch's records (idempotent until ``submit``).

        Marked because a send can itself wait for the broker (the producer's buffer is full
        behind an unacknowledged request), before the batch is ever handed over.
        """
        if self._sending_since is None:
            self._sending_since = time.perf_counter()

    async def submit(self, events: Sequence[Any], deliveries: Sequence[Delivery]) -> None:
        """Hand over a held batch; returns once the batch before it is acknowledged."""
        handed_over = time.perf_counter()
        since = self._sending_since if self._sending_since is not None else handed_over
        await self.wait()
        self._sending_since = None
        self._inflight_since = since
        self._inflight = asyncio.ensure_future(self._settle(events, deliveries, handed_over))

    def pending_s(self) -> float:
        """How long the oldest batch whose records are on their way has waited for the
        broker: the batch in flight, else the one being sent (0: none).

        A broker that stops acknowledging shows here at once, long before the deliveries time
        out (the producer's request timeout), and the pipeline's histogram sees nothing until
        then.
        """
        now = time.perf_counter()
        inflight = self._inflight is not None and not self._inflight.done()
        if inflight and self._inflight_since is not None:
            return now - self._inflight_since
        if self._sending_since is not None:
            return now - self._sending_since
        return 0.0

    async def wait(self) -> None:
        """Until the batch in flight, if any, is acknowledged."""
        if self._inflight is None:
            return
        try:
            # shield: a cancelled agent must not cancel the acknowledgement of a durable batch
            await asyncio.shield(self._inflight)
        finally:
            if self._inflight.done():
                self._inflight = None

    async def _settle(
        self, events: Sequence[Any], deliveries: Sequence[Delivery], handed_over: float
    ) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*deliveries), self._timeout_s)
        except TimeoutError:
            fail_stop(
                f"a batch of {len(events)} events ({_where(events)}) not acknowledged in "
                f"{self._timeout_s} s"
            )
        except Exception as exc:  # the producer already retried until its delivery timeout
            fail_stop(
                f"publishing a batch of {len(events)} events ({_where(events)}) failed: {exc!r}"
            )
        PUBLISH_ACK_SECONDS.observe(time.perf_counter() - handed_over)
        self._release(events)
