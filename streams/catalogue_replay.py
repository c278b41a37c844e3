"""Each item's latest catalogue record, read again from the topic (what a compacted read gives).

After a bundle reload the items the new bundle was not fitted on still hold the place the old
bundle gave them from their text. Reading the catalogue again in order would re-apply every old
version before the later ones (a deleted item would be back in the store until its delete was
read again), so the replay keeps only the latest record of each item below the store's
position, and the store applies those: deletes stay deleted, every item ends at its latest
version, and what came after the position is read by the replica as usual.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.deadletter import SourceMessage
from streams.settings import KafkaSettings

log = logging.getLogger(__name__)


async def latest_records(
    kafka: KafkaSettings, topic: str, upto: dict[int, int], within_ms: int = 500
) -> list[SourceMessage]:
    """The latest record of each key among the offsets below ``upto`` (per partition), in
    partition and offset order. Records without a key are left out: no item can be told from
    them (the worker dead-letters them as ``bad_key``)."""
    tps = [TopicPartition(topic, p) for p, end in sorted(upto.items()) if end > 0]
    if not tps:
        # nothing to read; and aiokafka 0.14's stop() of a consumer that was never assigned
        # raises CancelledError into its caller
        return []
    consumer = AIOKafkaConsumer(
        **kafka.aiokafka_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latest: dict[bytes, SourceMessage] = {}
    try:
        consumer.assign(tps)
        for tp in tps:
            await consumer.seek_to_beginning(tp)
        todo = {tp for tp in tps if await consumer.position(tp) < upto[tp.partition]}
        consumer.pause(*(set(tps) - todo))
        while todo:
            fetched = await consumer.getmany(*todo, timeout_ms=within_ms, max_records=1000)
            for tp, records in fetched.items():
                end = upto[tp.partition]
                for r in records:
                    if r.offset >= end or r.key is None:
                        continue
                    ts = r.timestamp / 1000 if r.timestamp else 0.0
                    seen = latest.get(r.key)
                    # one partition: its order; two (a topic that gained partitions moves
                    # keys): the later timestamp
                    if seen is None or seen.partition == r.partition or ts >= seen.timestamp_s:
                        latest[r.key] = SourceMessage(
                            r.topic, r.partition, r.offset, r.key, r.value, ts
                        )
            for tp in list(todo):
                # the end a fetch reports bounds it too (records removed since, say)
                high = consumer.highwater(tp)
                end = upto[tp.partition] if high is None else min(high, upto[tp.partition])
                if await consumer.position(tp) >= end:
                    todo.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return sorted(latest.values(), key=lambda m: (m.partition, m.offset))
