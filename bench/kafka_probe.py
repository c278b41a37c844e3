"""Broker-side measurements for the benchmarks: consumer-group lag and a passthrough baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import KafkaSettings


class LagProbe:
    """End offsets of a topic minus the offsets a consumer group has committed on it."""

    def __init__(self, kafka: KafkaSettings, topic: str, group: str) -> None:
        self.kafka, self.topic, self.group = kafka, topic, group
        # A consumer that carries the worker's group id but never subscribes, so it never joins
        # the group: it only asks the coordinator for the committed offsets (OffsetFetch).
        # (aiokafka's admin list_consumer_group_offsets request is refused by Tansu.)
        self._consumer = AIOKafkaConsumer(
            **kafka.aiokafka_kwargs(), group_id=group, enable_auto_commit=False
        )

    async def start(self) -> None:
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic) or set()
        self._parts = [TopicPartition(self.topic, p) for p in sorted(parts)]

    async def end_offsets(self) -> int:
        ends = await self._consumer.end_offsets(self._parts)
        return sum(ends.values())

    async def lag(self) -> int:
        """Messages on the topic that the group has not committed yet (all partitions)."""
        ends = await self._consumer.end_offsets(self._parts)
        total = 0
        for tp, end in ends.items():
            done = await self._consumer.committed(tp)
            total += max(0, end - (done or 0))
        return total

    async def stop(self) -> None:
        await self._consumer.stop()


async def create_topic(kafka: KafkaSettings, name: str) -> None:
    """Create ``name`` with the configured partition count (before anyone touches it)."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, kafka.partitions, kafka.replication)])
    finally:
        await admin.close()


@dataclass
class PassthroughResult:
    events: int
    seconds: float
    samples: list[tuple[float, int]]  # (seconds since the first message, events done)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_events_per_s(self) -> float:
        """Rate between 10% and 90% of the events: leaves out the consumer's prefetch burst
        at the start and the drain of its buffers at the end."""
        if len(self.samples) < 3 or not self.events:
            return self.events_per_s
        lo = next(s for s in self.samples if s[1] >= 0.1 * self.events)
        hi = next(s for s in self.samples if s[1] >= 0.9 * self.events)
        if hi[0] - lo[0] <= 0:
            return self.events_per_s
        return (hi[1] - lo[1]) / (hi[0] - lo[0])


async def passthrough(
    kafka: KafkaSettings,
    source_topic: str,
    out_topic: str,
    *,
    max_events: int,
    max_seconds: float,
    commit_interval_s: float = 2.8,
) -> PassthroughResult:
    """Read ``source_topic`` from the start and produce one small message back per event.

    No parsing, no work: the ceiling of a Python aiokafka consume→produce loop on this broker
    and machine. Like the worker, it flushes the producer before committing (acks=all) and
    commits on an interval (Faust's default 2.8 s). Timed from the first message received.
    """
    await create_topic(kafka, out_topic)
    consumer = AIOKafkaConsumer(
        source_topic,
        **kafka.aiokafka_kwargs(),
        group_id=f"passthrough-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    n, first, samples = 0, 0.0, []
    last_commit = idle_since = time.monotonic()
    try:
        while n < max_events:
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            now = time.monotonic()
            if not batch:
                if (n and now - idle_since > 2.0) or (not n and now - idle_since > 30.0):
                    break  # the backlog is drained (or never came)
                continue
            if not n:
                first = now
            idle_since = now
            for msgs in batch.values():
                for m in msgs:
                    await producer.send(out_topic, b"1", key=m.key)
                    n += 1
            await producer.flush()
            samples.append((time.monotonic() - first, n))
            if now - last_commit >= commit_interval_s:
                await consumer.commit()
                last_commit = now
            if now - first > max_seconds:
                break
        await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return PassthroughResult(n, samples[-1][0] if samples else 0.0, samples)


async def fill(kafka: KafkaSettings, topic: str, records: Iterable[dict]) -> dict:
    """Produce ``records`` (keyed by user id) as fast as one aiokafka producer goes."""
    await create_topic(kafka, topic)
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    t0, n = time.monotonic(), 0
    try:
        futs = []
        for rec in records:
            futs.append(
                await producer.send(topic, json.dumps(rec).encode(), key=rec["user_id"].encode())
            )
            n += 1
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    secs = time.monotonic() - t0
    return {"events": n, "seconds": round(secs, 2), "events_per_s": round(n / secs, 1)}


def run_passthrough(
    kafka: KafkaSettings, source_topic: str, out_topic: str, records: Iterable[dict], **kw: float
) -> dict:
    """Fill ``source_topic`` with ``records``, then time the passthrough; a JSON-ready dict."""
    filled = asyncio.run(fill(kafka, source_topic, records))
    res = asyncio.run(passthrough(kafka, source_topic, out_topic, **kw))
    return {
        "backlog_produce": filled,
        "events": res.events,
        "seconds": round(res.seconds, 3),
        "events_per_s": round(res.steady_events_per_s, 1),
        "overall_events_per_s": round(res.events_per_s, 1),
        "how": "events_per_s: steady rate between 10% and 90% of the backlog",
    }


async def fetch_wait_probe(
    kafka: KafkaSettings, waits_ms: Iterable[int], rate: float = 200.0, secs: float = 3.0
) -> dict:
    """One hop's latency (produce → consume, no work) against the consumer's fetch_max_wait_ms.

    A broker that answers a long-poll fetch as soon as data arrives makes the setting
    irrelevant; one that holds the fetch adds it to every hop. Faust's aiokafka driver
    hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer.
    """
    out = {}
    for wait in waits_ms:
        topic = f"bench-fetchwait-{uuid.uuid4().hex[:8]}"
        await create_topic(kafka, topic)
        consumer = AIOKafkaConsumer(
            topic,
            **kafka.aiokafka_kwargs(),
            group_id=f"g-{topic}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=wait,
        )
        producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", linger_ms=1)
        await consumer.start()
        await producer.start()
        lat: list[float] = []

        async def read(c: AIOKafkaConsumer = consumer, sink: list[float] = lat) -> None:
            while True:
                batch = await c.getmany(timeout_ms=100)
                now = time.perf_counter()
                sink.extend(now - float(m.value) for ms in batch.values() for m in ms)

        reader = asyncio.create_task(read())
        await asyncio.sleep(2.0)  # group join
        n = int(rate * secs)
        for i in range(n):
            await producer.send(topic, str(time.perf_counter()).encode(), key=str(i).encode())
            await asyncio.sleep(1.0 / rate)
        deadline = time.monotonic() + wait / 1000 + 3
        while len(lat) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
        arr = np.asarray(lat) * 1000
        out[f"fetch_max_wait_{wait}ms"] = {
            "messages": len(lat),
            "p50_ms": round(float(np.percentile(arr, 50)), 1) if len(arr) else None,
            "p99_ms": round(float(np.percentile(arr, 99)), 1) if len(arr) else None,
        }
    out["rate_per_s"] = rate
    return out
