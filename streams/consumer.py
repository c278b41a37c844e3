"""The worker's Faust consumer: two fixes to how Faust resumes after a rebalance, one setting.

1. End offsets for table recovery, taken from fetch responses instead of ListOffsets.
Faust rebuilds a table by reading its changelog up to the end offsets the consumer lists
(ListOffsets) and stops there. Tansu, the development and test broker, answers ListOffsets with
the base offset of a partition's last record batch instead of the offset after its last record
(measured: 16 for a partition holding 4 batches of 5 records), so Faust ended recovery one batch
early and the newest state of the users in that batch was lost on every restart; their events
were already committed, so they were never applied again. A fetch response carries the true
high watermark on every broker, Kafka included, so recovery asks for that instead.

2. No fetch between the seek to committed offsets and the flow-control clear. When recovery
completes, Faust resumes the stream partitions, seeks them to their committed offsets, and only
then resumes flow control, which clears every stream buffer. A fetch answered in between was
put in a buffer after the seek and then cleared, while the consumer's position had moved past
it: the event was skipped, and lost for good once the next offset of its partition was
acknowledged (Faust commits past a hole of one offset right after the committed one). Seen in
about 1 of 13 restarts of ``test_restart_recovers_the_newest_state_of_every_user``; a
logged run showed ``behaviour p3 offset 12`` yielded after the seek and dropped by the clear.
The consumer now stops its flow when the seek starts; Faust resumes it right after the clear,
and a fetch that lands while it is stopped is discarded by Faust and re-read from the seek.

3. A bounded fetch wait (``KAFKA_FETCH_MAX_WAIT_MS``). Faust builds the worker's consumer with
``fetch_max_wait_ms=1500`` and no setting. Kafka answers a waiting fetch as soon as a record
arrives, so the value only bounds idle polling there; a broker that holds the fetch for the
whole wait (Tansu does: one hop takes 368 ms at p50 with 1500 ms against 9 ms with 20 ms, the
stream benchmark's ``fetch_wait_probe``) adds it to every event's latency. The consumer thread
sets the worker's value on the aiokafka consumer before it starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from faust.types import TP

from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


async def fetched_end_offsets(
    kafka: KafkaSettings, listed: Mapping[TP, int | None], timeout_s: float = 30.0
) -> dict[TP, int]:
    """Each partition's high watermark as a fetch from its listed end offset reports it.

    Never lower than the listed offset; raises ``TimeoutError`` when a partition does not
    answer in ``timeout_s`` (recovery must not start from a guess).
    """
    tps = {TopicPartition(tp.topic, tp.partition): tp for tp in listed}
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for atp, tp in tps.items():
            consumer.seek(atp, max(0, listed[tp] or 0))
        ends: dict[TP, int] = {}

        async def fetch_all() -> None:
            while len(ends) < len(tps):
                waiting = [atp for atp, tp in tps.items() if tp not in ends]
                await consumer.getmany(*waiting, timeout_ms=100)
                for atp in waiting:
                    high = consumer.highwater(atp)  # set by any fetch answer, records or not
                    if high is not None:
                        ends[tps[atp]] = max(high, listed[tps[atp]] or 0)

        await asyncio.wait_for(fetch_all(), timeout_s)
    finally:
        await consumer.stop()
    moved = {tp: (listed[tp], end) for tp, end in ends.items() if end != listed[tp]}
    if moved:
        log.info("changelog end offsets corrected from fetch responses: %s", moved)
    return ends


def worker_consumer(kafka: KafkaSettings) -> type[FaustConsumer]:
    """Faust's aiokafka consumer with fetched ``highwaters``, a flow-stopping seek and the
    worker's fetch wait."""

    class BoundedWaitThread(AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # Faust passes a fixed 1500 ms; aiokafka reads this when start() builds its
            # fetcher (checked by tests/streams/test_consumer.py).
            consumer._fetch_max_wait_ms = kafka.fetch_max_wait_ms
            return consumer

    class WorkerConsumer(FaustConsumer):
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return BoundedWaitThread(self, loop=self.loop, beacon=self.beacon)

        async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
            listed: Any = await super().highwaters(*partitions)
            return await fetched_end_offsets(kafka, listed)

        async def perform_seek(self) -> None:
            # Faust calls this with flow already stopped (getmany) or just before it clears
            # the stream buffers and resumes flow (recovery): see fix 2 in the module doc.
            self.stop_flow()
            await super().perform_seek()

    return WorkerConsumer
