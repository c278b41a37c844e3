"""The two pieces that keep committed offsets behind durable table state, on the real broker.

* ``streams.consumer``: Faust's table recovery must read each changelog partition to its true
  end. Tansu lists the end of a partition short (the base offset of its last record batch).
* ``streams.changelog``: a batch may only be acknowledged once the broker holds its changelog
  records; ``AckedTable.take_unacked`` hands over exactly those, and a table can hold its
  records back until another's are acknowledged (``send_after``/``release``).
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


def test_held_records_reach_the_broker_after_their_gate_and_in_order(
    broker: LocalBroker, unique: str
):
    """``send_after``/``release``: the user records of a batch wait for its learned records
    (here a future the test resolves), later batches' records queue behind them, and a failed
    gate fails the held records' futures (so the batch is never acknowledged)."""
    kafka = KafkaSettings(bootstrap=broker.bootstrap)
    app_id = f"held-{unique}"
    changelog = f"{app_id}-u-changelog"

    async def run() -> tuple[list, list, BaseException | None]:
        app = faust.App(app_id, broker=kafka.broker_url, Table=AckedTable, key_serializer="raw")
        schema = faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        table = app.Table("u", partitions=1, schema=schema)
        await app.producer.start()
        loop = asyncio.get_running_loop()
        try:
            gate = loop.create_future()
            table.send_after([gate])
            # In an agent the table takes the partition from the current event (and checks
            # its source topic against the broker's metadata); outside one, this stands in.
            table.partition_for_key = lambda key: 0
            for i in range(5):
                table[f"k{i}".encode()] = b"first"  # the path the worker's sets take
            table.release()
            table.send_after([])  # nothing to wait for, but the first batch is still held
            for i in range(5):
                table.send_changelog(0, f"k{i}".encode(), b"second")
            table.release()
            pending = table.take_unacked()
            # whatever was wrongly sent would be on the broker after this
            await app.producer.flush()
            held = await loop.run_in_executor(None, read_topic, kafka, changelog)
            gate.set_result(None)
            await asyncio.gather(*pending)
            landed = await loop.run_in_executor(None, read_topic, kafka, changelog)

            failing = loop.create_future()
            table.send_after([failing])
            table.send_changelog(0, b"k0", b"never")
            table.release()
            (doomed,) = table.take_unacked()
            failing.set_exception(RuntimeError("the learned record was not delivered"))
            error = None
            try:
                await asyncio.wait_for(doomed, 5)
            except RuntimeError as exc:
                error = exc
            table.send_after([])  # a later batch with nothing to wait for: still not sent
            table.send_changelog(0, b"k1", b"never")
            table.release()
            (later,) = table.take_unacked()
            with pytest.raises(RuntimeError, match="held before"):
                await asyncio.wait_for(later, 5)
            return held, landed, error
        finally:
            await app.producer.stop()

    held, landed, error = asyncio.run(run())
    assert held == []
    assert [(k, v) for k, v, _ in landed] == [(f"k{i}".encode(), b"first") for i in range(5)] + [
        (f"k{i}".encode(), b"second") for i in range(5)
    ]
    assert error is not None and "not delivered" in str(error)
    assert [v for _, v, _ in read_topic(kafka, changelog)].count(b"never") == 0
