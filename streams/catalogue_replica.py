"""Every worker's own copy of the catalogue, for vector stores that live inside the process.

Qdrant Edge (and qdrant-client's local mode) keep the item vectors inside the worker: one store
per process. Read through the consumer group, the catalogue topic's partitions would be split
between the workers and each store would hold only its share of the items, so every user whose
partition lands on a worker would be recommended from part of the catalogue. With such a store
each worker reads every partition of the catalogue topic itself, outside the group (the way a
Kafka Streams global table is fed), from a position recorded next to the store: the vectors and
the position they were read to live and go together. Partitions added to the topic later are
picked up from the metadata the client refreshes and read from their start. Wipe
``QDRANT_PATH`` and the worker reads the catalogue again from the start; keep it and a restart
resumes where the store stopped.

A crash replays at most the batches after the last recorded position and never skips one: the
position is written after the store holds the batch (Qdrant Edge writes its log before an update
returns), and applying an item event twice leaves the same item (a replay repeats the order, the
last version wins).

Bad catalogue records are dead-lettered by every worker that reads them: N workers, N copies,
each naming the same source topic, partition and offset in its headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from inference.errors import ConfigError
from streams.catalogue_replay import latest_records
from streams.deadletter import SourceMessage
from streams.metrics import CATALOGUE_LAG
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)

#: The position file's name inside the store's folder.
POSITION_FILE = "catalogue-position.json"
#: How long the broker may hold the replica's fetch. Not the behaviour stream's 20 ms: a
#: catalogue change may take half a second to reach the store, and every worker polls the
#: catalogue, so a short wait would make each of them, and the broker, busy while idle (20 ms
#: cost an idle worker 0.06 cores and Tansu 0.10 for the behaviour consumer). A bulk load is
#: not slowed: a fetch brings up to 1 MiB per partition while the encoder works (the 36,298
#: Food/Kitchen items: 190 and 196 s with this reader, 194 s for the group agent with 20 ms,
#: the same evening; catalogue_index_s in bench/results/stream-steps/15-*, 16-*, 18-*).
FETCH_WAIT_MS = 500
#: How often the replica's client refreshes the topic's metadata: partitions added to the
#: catalogue topic are read (from their start) within this time. One small request per period.
METADATA_MAX_AGE_MS = 60_000


class CataloguePosition:
    """The next catalogue offset of each partition that the store has not seen, on disk."""

    def __init__(self, folder: Path, topic: str) -> None:
        self.path = folder / POSITION_FILE
        self.topic = topic

    def load(self) -> dict[int, int]:
        """Offsets to resume from; empty (read from the start) when none were recorded for
        this topic or the file cannot be read: reading again only costs time."""
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("topic") != self.topic:
                log.info(
                    "%s records topic %r, not %r: reading the catalogue from the start",
                    self.path,
                    doc.get("topic"),
                    self.topic,
                )
                return {}
            return {int(p): int(o) for p, o in doc["offsets"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("cannot read %s (%s): reading the catalogue from the start", self.path, exc)
            return {}

    def save(self, offsets: dict[int, int]) -> None:
        """Replace the file atomically (written whole, synced, renamed)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"topic": self.topic, "offsets": {str(p): o for p, o in sorted(offsets.items())}}
        with open(tmp, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


Apply = Callable[[list[SourceMessage]], Awaitable[object]]  # what it returns is not used
Idle = Callable[[int], Awaitable[None]]


class CatalogueReplica:
    """Reads all of the catalogue topic into this worker's store, batch by batch.

    ``apply`` must have put a batch into the store (or the dead-letter topic) when it returns;
    ``replay``, when given, applies the batches of :meth:`rewind` (records applied before,
    whose dead letters were sent then); ``on_idle(n)`` runs when a fetch brings less than a
    full batch after ``n`` applied events (the catalogue has gone quiet: time to index).
    ``caught_up`` is set once every partition has been read to the end it had when first
    fetched: the behaviour agent waits for it, so that a worker with a new or wiped store does
    not dead-letter events for items it has not read yet.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        position: CataloguePosition,
        *,
        batch_size: int,
        within_s: float,
        apply: Apply,
        on_idle: Idle,
        replay: Apply | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = position.topic
        self.position = position
        self.batch_size = batch_size
        self.within_ms = max(1, int(within_s * 1000))
        self.apply = apply
        self.on_idle = on_idle
        self.replay = replay
        self.caught_up = asyncio.Event()
        self._rewind = False

    def rewind(self) -> None:
        """Apply every item's latest record again (through ``replay``), then go on: after a
        bundle reload, the items the new bundle was not fitted on are placed by it."""
        self._rewind = self.replay is not None

    async def run(self) -> None:
        """Read until cancelled (the worker stopping)."""
        consumer = AIOKafkaConsumer(
            **self.kafka.aiokafka_kwargs(),
            group_id=None,  # every partition, no group: each worker reads them all
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # also when the recorded offset is gone (new topic)
            fetch_max_wait_ms=FETCH_WAIT_MS,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await consumer.start()
        try:
            tps = await self._assign(consumer)
            await self._read(consumer, tps)
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        await consumer.topics()  # fetches the cluster's metadata
        parts = consumer.partitions_for_topic(self.topic)
        if not parts:
            raise ConfigError(
                f"catalogue topic {self.topic!r} does not exist: create it or fix "
                "KAFKA_CATALOGUE_TOPIC (the worker creates its topics at start)"
            )
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        stored = self.position.load()
        await _place(consumer, tps, stored)
        log.info(
            "catalogue %s: reading all %d partitions into this worker's store from %s",
            self.topic,
            len(tps),
            {tp.partition: stored.get(tp.partition, "start") for tp in tps},
        )
        return tps

    async def _read(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        offsets = {tp.partition: await consumer.position(tp) for tp in tps}
        # Tansu answers ListOffsets with the last batch's base offset, not the end, so the end
        # comes from the fetch responses (consumer.highwater), first known after a fetch.
        targets: dict[int, int] = {}
        since_idle = 0
        while True:
            tps = await self._grow(consumer, tps, offsets)
            if self._rewind and self.replay is not None:
                self._rewind = False
                await self._replay_latest(offsets, self.replay)
            fetched = await consumer.getmany(timeout_ms=self.within_ms, max_records=self.batch_size)
            msgs = [
                SourceMessage(r.topic, r.partition, r.offset, r.key, r.value, _seconds(r.timestamp))
                for tp in sorted(fetched, key=lambda t: t.partition)
                for r in fetched[tp]
            ]
            if msgs:
                await self.apply(msgs)
                since_idle += len(msgs)
            # The consumer's positions, not the last offsets + 1: they also step over what
            # holds no record for us (transaction markers, offsets compacted away).
            now = {tp.partition: await consumer.position(tp) for tp in tps}
            if now != offsets:
                offsets = now
                self.position.save(offsets)
            lag = 0
            for tp in tps:
                hw = consumer.highwater(tp)
                if hw is None:
                    continue
                targets.setdefault(tp.partition, hw)
                lag += max(0, hw - offsets[tp.partition])
            CATALOGUE_LAG.set(lag)
            if not self.caught_up.is_set() and self._reached(targets, offsets, len(tps)):
                log.info("catalogue %s: caught up at %s", self.topic, offsets)
                self.caught_up.set()
            if len(msgs) < self.batch_size and since_idle:
                await self.on_idle(since_idle)
                since_idle = 0

    async def _grow(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
    ) -> list[TopicPartition]:
        """``tps`` with the partitions added to the topic since they were assigned, which are
        read from their start; the others go on from ``offsets``. Without this a worker would
        never read the items that land on new partitions, and dead-letter their events."""
        known = {tp.partition for tp in tps}
        added = sorted(set(consumer.partitions_for_topic(self.topic) or ()) - known)
        if not added:
            return tps
        grown = [*tps, *(TopicPartition(self.topic, p) for p in added)]
        await _place(consumer, grown, offsets)  # a new assignment: every position set again
        log.warning(
            "catalogue %s: partitions %s were added; reading them from the start",
            self.topic,
            added,
        )
        return grown

    async def _replay_latest(self, upto: dict[int, int], replay: Apply) -> None:
        latest = await latest_records(self.kafka, self.topic, upto)
        for start in range(0, len(latest), self.batch_size):
            await replay(latest[start : start + self.batch_size])
        log.info("catalogue %s: applied the latest of %d items again", self.topic, len(latest))

    @staticmethod
    def _reached(targets: dict[int, int], offsets: dict[int, int], n: int) -> bool:
        return len(targets) == n and all(offsets[p] >= end for p, end in targets.items())


async def _place(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], offsets: dict[int, int]
) -> None:
    """Assign ``tps``, each at its offset in ``offsets``, else at its beginning."""
    consumer.assign(tps)
    for tp in tps:
        if tp.partition in offsets:
            consumer.seek(tp, offsets[tp.partition])
        else:
            await consumer.seek_to_beginning(tp)


def _seconds(timestamp_ms: int | None) -> float:
    return timestamp_ms / 1000 if timestamp_ms else time.time()
