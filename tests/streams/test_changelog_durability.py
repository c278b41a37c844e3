"""The two pieces that keep committed offsets behind durable table state, on the real broker.

* ``streams.consumer``: Faust's table recovery must read each changelog partition to its true
  end. Tansu lists the end of a partition short (the base offset of its last record batch).
* ``streams.changelog``: a batch may only be acknowledged once the broker holds its changelog
  records; ``AckedTable.take_unacked`` hands over exactly those.
"""

from __future__ import annotations

import asyncio

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from streams.broker import LocalBroker
from streams.changelog import AckedTable
from streams.consumer import fetched_end_offsets
from streams.settings import KafkaSettings
from tests.fixtures.topic_reader import read_topic

pytestmark = [pytest.mark.broker]


async def _listed_end(kafka: KafkaSettings, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def _produce_batches(kafka: KafkaSettings, topic: str, batches: int, size: int) -> None:
    """``batches`` record batches of ``size`` records each, all on partition 0."""
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), linger_ms=50)
    await producer.start()
    try:
        for b in range(batches):
            for i in range(size):
                await producer.send(topic, f"{b}-{i}".encode(), key=b"k", partition=0)
            await producer.flush()
    finally:
        await producer.stop()


def test_recovery_end_offsets_cover_the_last_record_batch(broker: LocalBroker, unique: str):
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    topic = f"ends-{unique}"
    asyncio.run(_produce_batches(kafka, topic, batches=3, size=4))
    listed = {
        TP(topic, p): asyncio.run(_listed_end(kafka, TopicPartition(topic, p))) for p in (0, 1)
    }  # the topic was created on first use (Tansu: 4 partitions); records only on 0
    ends = asyncio.run(fetched_end_offsets(kafka, listed))
    assert ends == {TP(topic, 0): 12, TP(topic, 1): 0}  # 3 x 4 records; nothing on 1
    # what Faust alone would have used (Tansu: short by the last batch but one record)
    assert listed[TP(topic, 0)] <= ends[TP(topic, 0)]


def test_take_unacked_hands_over_every_changelog_record_once(broker: LocalBroker, unique: str):
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    app_id = f"acked-{unique}"
    changelog = f"{app_id}-t-changelog"  # created on first use, like the ends topic

    async def run() -> tuple[int, int]:
        app = faust.App(app_id, broker=kafka.broker_url, Table=AckedTable, key_serializer="raw")
        schema = faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        table = app.Table("t", partitions=1, schema=schema)
        assert isinstance(table, AckedTable)
        await app.producer.start()
        try:
            for i in range(50):
                table.send_changelog(0, f"k{i}".encode(), b"v")
            pending = table.take_unacked()
            await asyncio.gather(*pending)  # resolve on the broker's acknowledgement, no flush
            return len(pending), len(table.take_unacked())  # nothing new: handed over once
        finally:
            await app.producer.stop()

    first, again = asyncio.run(run())
    assert (first, again) == (50, 0)
    assert len(read_topic(kafka, changelog)) == 50
