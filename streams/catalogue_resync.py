"""After a bundle reload with a store shared by the group (a Qdrant server): each worker applies
the latest record of every item on its catalogue partitions again, by the new bundle.

Items the new bundle was not fitted on hold the place the old bundle gave them from their text
until then. A store inside the worker does this in its own catalogue reader
(:mod:`streams.catalogue_replica`); here the catalogue agent of the consumer group applies
records at the same time, so the two are interleaved under one lock, a chunk at a time, and a
replayed record is left out when the agent has applied that item at or after its offset
meanwhile (the agent's version is as new or newer). What the agent applies after a replayed
record is never older than it for long: the agent reads its partitions in order, so it reaches
that record again, or a newer one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from faust.types import TP

from streams.catalogue_replay import latest_records
from streams.catalogue_replica import Apply
from streams.consumer import fetched_end_offsets
from streams.deadletter import SourceMessage
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)

#: Applies a batch and returns the records it rejected (dead-lettered).
ApplyReporting = Callable[[list[SourceMessage]], Awaitable[Collection[SourceMessage] | None]]


class SharedCatalogueResync:
    """The catalogue agent's batches and the replays after reloads, one at a time."""

    def __init__(self, kafka: KafkaSettings, topic: str, batch_size: int, replay: Apply) -> None:
        self.kafka = kafka
        self.topic = topic
        self.batch_size = batch_size
        self.replay = replay
        self._lock = asyncio.Lock()
        # While a replay runs: item key -> (partition, offset) the agent applied last.
        self._applied: dict[bytes, tuple[int, int]] | None = None

    async def apply(self, msgs: list[SourceMessage], apply: ApplyReporting) -> None:
        """Apply an agent batch with ``apply`` (never in the middle of a replayed chunk), which
        returns the records it rejected: those placed nothing, so they hold no replay back."""
        async with self._lock:
            rejected = await apply(msgs)
            if self._applied is not None:
                left_out = {(m.partition, m.offset) for m in rejected or ()}
                for m in msgs:
                    if m.key is not None and (m.partition, m.offset) not in left_out:
                        self._applied[m.key] = (m.partition, m.offset)

    async def run(self, assigned: Callable[[], Collection[int]]) -> int:
        """Apply the latest record of each item on the ``assigned()`` partitions (this
        worker's) again; the number of records applied.

        Called after the new model is served. The agent's batch in flight, if any, started
        with the old one: it is let finish before the agent's batches are tracked, so the
        items it placed are placed again here. Partitions revoked meanwhile are left to their
        new owner from the next chunk on.
        """
        partitions = set(assigned())
        if not partitions:
            return 0
        async with self._lock:
            self._applied = {}
        applied = 0
        try:
            upto = await end_offsets(self.kafka, self.topic, partitions)
            latest = await latest_records(self.kafka, self.topic, upto)
            for start in range(0, len(latest), self.batch_size):
                async with self._lock:
                    mine = set(assigned())
                    chunk = [
                        m
                        for m in latest[start : start + self.batch_size]
                        if m.partition in mine and self._due(m)
                    ]
                    if chunk:
                        await self.replay(chunk)
                        applied += len(chunk)
        finally:
            self._applied = None
        log.info(
            "catalogue %s partitions %s: applied the latest of %d items again",
            self.topic,
            sorted(partitions),
            applied,
        )
        return applied

    def _due(self, m: SourceMessage) -> bool:
        """Whether the agent has not applied this item at or after ``m`` meanwhile."""
        assert self._applied is not None and m.key is not None
        seen = self._applied.get(m.key)
        if seen is None:
            return True
        partition, offset = seen
        # on another partition (the topic gained partitions): the agent's is the newer
        return partition == m.partition and offset < m.offset


async def end_offsets(
    kafka: KafkaSettings, topic: str, partitions: Collection[int]
) -> dict[int, int]:
    """Each partition's end offset now, as a fetch reports it (Tansu lists the base offset of
    a partition's last record batch instead: see :mod:`streams.consumer`)."""
    ends = await fetched_end_offsets(kafka, {TP(topic, p): None for p in partitions})
    return {tp.partition: end for tp, end in ends.items()}
