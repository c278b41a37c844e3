"""Plain aiokafka helpers to feed topics and read them back (demo, replay, tests, benchmarks),
and the JSON Lines reading and printing behind `xrec produce` and `xrec consume`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from inference.errors import ConfigError
from streams.settings import KafkaSettings


def encode_record(record: dict | bytes) -> bytes:
    """JSON-encode a record (bytes pass through unchanged, for malformed-input tests)."""
    return record if isinstance(record, bytes) else json.dumps(record).encode()


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
    await producer.start()
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
    await consumer.start()
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


def read_jsonl(lines: Any, name: str, raw: bool) -> tuple[list, list[dict]]:
    """The records to send and the lines that parsed as JSON objects (raw: every line's bytes)."""
    records: list = []
    parsed: list[dict] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            if not raw:
                raise ConfigError(
                    f"{name}:{n}: not JSON ({exc}); fix the line, or send lines as they are "
                    "with --raw"
                ) from exc
            doc = None
        if raw:
            records.append(line.rstrip("\r\n").encode())
        elif not isinstance(doc, dict):
            raise ConfigError(f"{name}:{n}: a record is a JSON object; use --raw to send it")
        else:
            records.append(doc)
        parsed.append(doc if isinstance(doc, dict) else {})
    return records, parsed


def record_key(doc: dict, field: str) -> bytes | None:
    """The key a record is sent with: its ``field``, trimmed (as the worker reads ids)."""
    value = doc.get(field)
    return None if value is None else str(value).strip().encode()


def readable(key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> dict:
    """A record as JSON: the value parsed where it is JSON, else its text; headers as text."""

    def text(b: bytes | None) -> str | None:
        return None if b is None else b.decode("utf-8", errors="replace")

    try:
        shown: Any = None if value is None else json.loads(value)
    except ValueError:
        shown = text(value)
    return {"key": text(key), "value": shown, "headers": {k: text(v) for k, v in headers.items()}}
