"""The worker's producer sends a micro-batch's output in few round trips, on the real broker.

aiokafka keeps one produce request in flight per broker, carrying one record batch per
partition, so the flush that ends a micro-batch waits for as many sequential round trips as the
fullest partition has batches. The check counts the produce requests the started producer
really sends (a counting wrapper around aiokafka's own method, which still does the sending).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest

from streams.app import producer_options
from streams.broker import LocalBroker
from streams.settings import KafkaSettings
from tests.fixtures.topic_reader import read_topic
from tests.fixtures.worker import tagged_kafka

pytestmark = [pytest.mark.broker]

RECORDS, RECORD_BYTES = 800, 700  # about one micro-batch of recommendations and state changes


async def _produce_requests(kafka: KafkaSettings, options: dict, name: str, datadir: Path) -> int:
    """Produce requests sent to flush RECORDS records through a worker-configured Faust app."""
    app = faust.App(
        name,
        broker=kafka.broker_url,
        store="memory://",
        datadir=str(datadir),
        autodiscover=False,
        **options,
    )
    producer = app.producer
    await producer.start()
    sender = producer._producer._sender
    requests = 0
    send_request = sender._send_produce_req

    def counting(node_id, batches):
        nonlocal requests
        requests += 1
        return send_request(node_id, batches)

    sender._send_produce_req = counting
    try:
        futures = []
        for k in range(RECORDS):
            key, value = f"user-{k}".encode(), bytes([65 + k % 26]) * RECORD_BYTES
            futures.append(await producer.send(kafka.behaviour_topic, key, value, None, None, None))
        await producer.flush()
        await asyncio.gather(*futures)  # every record acknowledged by the broker
    finally:
        await producer.stop()
    return requests


def test_a_micro_batch_is_flushed_in_few_round_trips(
    broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    kafka = tagged_kafka(broker.bootstrap, unique)
    ours = asyncio.run(_produce_requests(kafka, producer_options(kafka), f"w{unique}", tmp_path))
    # Faust's default 16 KiB batches: 800 x 700 B over 4 partitions is ~9 batches a partition
    theirs = asyncio.run(
        _produce_requests(kafka, {"producer_acks": -1}, f"f{unique}", tmp_path / "f")
    )
    assert ours <= 2 < 6 <= theirs, (ours, theirs)
    # the broker stored every record of both runs
    assert len(read_topic(kafka, kafka.behaviour_topic)) == 2 * RECORDS


def test_the_batch_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="producer_batch_bytes"):
        KafkaSettings(producer_batch_bytes=2_000_000)
