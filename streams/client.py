"""Plain aiokafka helpers to feed topics and read them back (demo, replay, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.settings import KafkaSettings


def encode_record(record: dict | bytes) -> bytes:
    """JSON-encode a record (bytes pass through unchanged, for malformed-input tests)."""
    return record if isinstance(record, bytes) else json.dumps(record).encode()


async def _start(client: AIOKafkaProducer | AIOKafkaConsumer, kafka: KafkaSettings) -> None:
    """Start an aiokafka client; brokers that do not answer are a one-line ConfigError that
    names the setting (not aiokafka's traceback)."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await client.stop()
        raise kafka.cannot_connect(exc) from exc


async def produce(
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[dict | bytes],
    key_field: str | None,
    linger_ms: int = 5,
    keys: Sequence[bytes | None] | None = None,
) -> int:
    """Send records keyed by ``record[key_field]`` (or by ``keys``, one per record); returns
    how many were sent (all acked)."""
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), linger_ms=linger_ms, acks="all")
    await _start(producer, kafka)
    n = 0
    try:
        futures = []
        for i, rec in enumerate(records):
            key = None if keys is None else keys[i]
            if key_field and isinstance(rec, dict) and rec.get(key_field) is not None:
                key = str(rec[key_field]).strip().encode()  # ids are read trimmed
            futures.append(await producer.send(topic, encode_record(rec), key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def consume(
    kafka: KafkaSettings,
    topic: str,
    *,
    timeout_s: float,
    from_beginning: bool = True,
    group: str | None = None,
) -> AsyncIterator[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """Yield (key, value, headers) from ``topic`` until ``timeout_s`` passes with no message."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_kwargs(),
        group_id=group or f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await _start(consumer, kafka)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                for m in msgs:
                    deadline = time.monotonic() + timeout_s
                    yield m.key, m.value, {k: v for k, v in (m.headers or ())}
    finally:
        await consumer.stop()
