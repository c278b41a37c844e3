"""The catalogue replica against the real broker (Tansu over TCP): every partition read, the
position recorded after each applied batch and resumed from, the catch-up signal."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from streams.catalogue_replica import POSITION_FILE, CataloguePosition, CatalogueReplica
from streams.client import produce
from streams.deadletter import SourceMessage
from streams.settings import KafkaSettings
from tests.fixtures.worker import tagged_kafka

pytestmark = [pytest.mark.broker]


def _items(prefix: str, n: int) -> list[dict]:
    return [{"item_id": f"{prefix}-{i}", "domain": "d", "title": f"t{i}"} for i in range(n)]


class Run:
    """One replica reading until it has caught up (plus ``extra_s``), then stopped."""

    def __init__(self, kafka: KafkaSettings, folder: Path, fail_on_batch: int | None = None):
        self.seen: list[SourceMessage] = []
        self.replayed: list[SourceMessage] = []
        self.batches = 0
        self.idle_calls: list[int] = []
        self.fail_on_batch = fail_on_batch

        async def apply(msgs: list[SourceMessage]) -> None:
            self.batches += 1
            if self.batches == self.fail_on_batch:
                raise RuntimeError("injected: the store refused the batch")
            self.seen.extend(msgs)

        async def on_idle(n: int) -> None:
            self.idle_calls.append(n)

        async def replay(msgs: list[SourceMessage]) -> None:
            self.replayed.extend(msgs)

        self.replica = CatalogueReplica(
            kafka,
            CataloguePosition(folder, kafka.catalogue_topic),
            batch_size=16,  # several batches for a few dozen records
            within_s=0.02,
            apply=apply,
            on_idle=on_idle,
            replay=replay,
        )

    async def until_caught_up(self, timeout_s: float = 30.0, extra_s: float = 0.3) -> None:
        task = asyncio.ensure_future(self.replica.run())
        try:
            waiter = asyncio.ensure_future(self.replica.caught_up.wait())
            done, _ = await asyncio.wait(
                {task, waiter}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            if task in done:
                task.result()  # raises what the replica raised
            assert self.replica.caught_up.is_set(), "the replica never caught up"
            await asyncio.sleep(extra_s)
            if task.done():
                task.result()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def item_ids(self) -> list[str]:
        return [json.loads(m.value or b"")["item_id"] for m in self.seen]


def test_reads_every_partition_records_the_position_and_resumes(broker, tmp_path, unique) -> None:
    kafka = tagged_kafka(broker.bootstrap, f"rep-{unique}")
    first = _items("a", 40)
    asyncio.run(produce(kafka, kafka.catalogue_topic, first, "item_id"))

    run = Run(kafka, tmp_path)
    asyncio.run(run.until_caught_up())
    assert sorted(run.item_ids()) == sorted(r["item_id"] for r in first)
    assert len({m.partition for m in run.seen}) > 1, "keys should spread over partitions"
    assert sum(run.idle_calls) == len(first)  # the last short fetch says: index now
    position = json.loads((tmp_path / POSITION_FILE).read_text())
    ends = Counter(m.partition for m in run.seen)
    assert position["topic"] == kafka.catalogue_topic
    assert {int(p): o for p, o in position["offsets"].items() if o} == dict(ends)

    # A restart reads only what came after the recorded position.
    second = _items("b", 10)
    asyncio.run(produce(kafka, kafka.catalogue_topic, second, "item_id"))
    again = Run(kafka, tmp_path)
    asyncio.run(again.until_caught_up())
    assert sorted(again.item_ids()) == sorted(r["item_id"] for r in second)

    # No position (a wiped store), an unreadable one, or one for another topic: from the start.
    for text in (None, "{not json", json.dumps({"topic": "other", "offsets": {"0": 5}})):
        if text is None:
            (tmp_path / POSITION_FILE).unlink()
        else:
            (tmp_path / POSITION_FILE).write_text(text)
        fresh = Run(kafka, tmp_path)
        asyncio.run(fresh.until_caught_up())
        assert len(fresh.seen) == len(first) + len(second), text


def test_a_batch_that_fails_is_read_again_never_skipped(broker, tmp_path, unique) -> None:
    kafka = tagged_kafka(broker.bootstrap, f"rep-{unique}", partitions=1)
    records = _items("c", 40)  # one partition, batches of 16: 16, 16, 8
    asyncio.run(produce(kafka, kafka.catalogue_topic, records, "item_id"))

    failing = Run(kafka, tmp_path, fail_on_batch=2)
    with pytest.raises(RuntimeError, match="injected"):
        asyncio.run(failing.until_caught_up())
    assert failing.item_ids() == [r["item_id"] for r in records[:16]]

    resumed = Run(kafka, tmp_path)
    asyncio.run(resumed.until_caught_up())
    assert resumed.item_ids() == [r["item_id"] for r in records[16:]]


def test_an_empty_catalogue_is_caught_up_at_once(broker, tmp_path, unique) -> None:
    kafka = tagged_kafka(broker.bootstrap, f"rep-{unique}")
    run = Run(kafka, tmp_path)
    asyncio.run(run.until_caught_up(timeout_s=15))
    assert run.seen == [] and run.idle_calls == []


def test_partitions_added_to_the_topic_are_read_from_their_start(
    broker, tmp_path, unique, monkeypatch
) -> None:
    """Tansu cannot add partitions (no CreatePartitions), so the one fake here is the
    replica's view of the topic's metadata: it shows partitions 0 and 1 of the four until the
    "growth", as a refreshed metadata response would after partitions were added. Fetches,
    positions and seeks are the real broker's."""
    kafka = tagged_kafka(broker.bootstrap, f"rep-{unique}")
    records, later = _items("g", 60), _items("h", 40)
    asyncio.run(produce(kafka, kafka.catalogue_topic, records, "item_id"))
    visible = {0, 1}
    real = AIOKafkaConsumer.partitions_for_topic

    def partitions_for_topic(self, topic):
        parts = real(self, topic)
        return parts & visible if topic == kafka.catalogue_topic and parts else parts

    monkeypatch.setattr(AIOKafkaConsumer, "partitions_for_topic", partitions_for_topic)
    run = Run(kafka, tmp_path)

    async def grow() -> None:
        task = asyncio.ensure_future(run.replica.run())
        try:
            await asyncio.wait_for(run.replica.caught_up.wait(), 30)
            await asyncio.sleep(0.3)
            assert {m.partition for m in run.seen} == {0, 1}
            visible.update({2, 3})
            # more on every partition: the known ones go on from where they were
            await produce(kafka, kafka.catalogue_topic, later, "item_id")
            deadline = asyncio.get_running_loop().time() + 30
            while len(run.seen) < len(records) + len(later):
                assert not task.done(), task.result()
                assert asyncio.get_running_loop().time() < deadline, "added partitions unread"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # nothing read twice meanwhile
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(grow())
    assert sorted(run.item_ids()) == sorted(r["item_id"] for r in records + later)
    assert {m.partition for m in run.seen} == {0, 1, 2, 3}
    position = json.loads((tmp_path / POSITION_FILE).read_text())
    assert {int(p): o for p, o in position["offsets"].items()} == dict(
        Counter(m.partition for m in run.seen)
    )


def test_rewind_applies_each_items_latest_record_once(broker, tmp_path, unique) -> None:
    """What a bundle reload asks of the replica: every item at its latest version, applied
    again once; a deleted item stays deleted (its delete is the latest record), and records
    with no key (no item to tell) are left out."""
    kafka = tagged_kafka(broker.bootstrap, f"rep-{unique}", partitions=2)
    versions = [
        {"item_id": "a", "domain": "d", "title": "a one"},
        {"item_id": "b", "domain": "d", "title": "b one"},
        {"item_id": "a", "domain": "d", "title": "a", "deleted": True},
        {"item_id": "c", "domain": "d", "title": "c one"},
        {"item_id": "c", "domain": "d", "title": "c two"},
        *_items("bulk", 30),
    ]
    asyncio.run(produce(kafka, kafka.catalogue_topic, versions, "item_id"))
    asyncio.run(produce(kafka, kafka.catalogue_topic, [{"item_id": "keyless"}], None))
    run = Run(kafka, tmp_path)

    async def rewind_once() -> None:
        task = asyncio.ensure_future(run.replica.run())
        try:
            await asyncio.wait_for(run.replica.caught_up.wait(), 30)
            deadline = asyncio.get_running_loop().time() + 30
            while len(run.seen) < len(versions) + 1:
                assert asyncio.get_running_loop().time() < deadline, f"saw {len(run.seen)}"
                await asyncio.sleep(0.05)
            run.replica.rewind()
            deadline = asyncio.get_running_loop().time() + 30
            while len(run.replayed) < 33:
                assert not task.done(), task.result()
                assert asyncio.get_running_loop().time() < deadline, "nothing replayed"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # and nothing more
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(rewind_once())
    latest = {json.loads(m.value)["item_id"]: json.loads(m.value) for m in run.replayed}
    assert len(run.replayed) == len(latest) == 33  # a, b, c and the 30 bulk items, once each
    assert latest["a"].get("deleted") is True and latest["c"]["title"] == "c two"
    assert len(run.seen) == len(versions) + 1  # the live read went on, nothing read twice
