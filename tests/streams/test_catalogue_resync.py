"""The replay after a bundle reload with a shared store, against the real broker (Tansu over
TCP): each item's latest record on this worker's partitions, interleaved with the catalogue
agent's batches without undoing them. The two callbacks record what they are given; what the
catalogue processor does with records is tested with the store elsewhere."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.catalogue_resync import SharedCatalogueResync
from streams.client import produce
from streams.deadletter import SourceMessage
from tests.fixtures.worker import tagged_kafka

pytestmark = [pytest.mark.broker]


def _item(item_id: str, version: int, deleted: bool = False) -> dict:
    return {"item_id": item_id, "domain": "d", "title": f"{item_id} v{version}", "deleted": deleted}


def _name(m: SourceMessage) -> str:
    value = json.loads(m.value)
    return "deleted" if value["deleted"] else value["title"]


def test_the_replay_applies_each_latest_record_once_and_never_undoes_the_agent(
    broker, unique
) -> None:
    kafka = tagged_kafka(broker.bootstrap, unique, partitions=1)
    topic = kafka.catalogue_topic
    history = [_item("a", 1), _item("b", 1), _item("c", 1), _item("a", 2), _item("b", 2, True)]
    agent: list[str] = []
    replayed: list[str] = []

    async def apply(msgs: list[SourceMessage]) -> None:
        agent.extend(f"{m.key.decode()}: {_name(m)}" for m in msgs)

    async def run() -> int:
        await produce(kafka, topic, history, "item_id")
        # the agent applies a newer version of a while the replay runs, between its chunks
        newer = SourceMessage(topic, 0, len(history), b"a", json.dumps(_item("a", 3)).encode(), 0.0)
        agent_batch: list[asyncio.Task] = []

        async def replay(msgs: list[SourceMessage]) -> None:
            replayed.extend(f"{m.key.decode()}: {_name(m)}" for m in msgs)
            if not agent_batch:
                await produce(kafka, topic, [_item("a", 3)], "item_id")
                agent_batch.append(asyncio.ensure_future(resync.apply([newer], apply)))
                await asyncio.sleep(0)  # the agent now waits for the lock

        resync = SharedCatalogueResync(kafka, topic, batch_size=1, replay=replay)
        n = await resync.run(lambda: {0})
        await asyncio.gather(*agent_batch)
        assert await resync.run(set) == 0  # a worker with no catalogue partition
        return n

    n = asyncio.run(run())
    # the latest of each item below the end at the start, in offset order; a's v2 is left out:
    # the agent applied v3 in between, and a replay must not take a back to v2
    assert replayed == ["c: c v1", "b: deleted"]
    assert agent == ["a: a v3"]
    assert n == 2


def test_an_agent_batch_begun_with_the_old_model_is_placed_again(broker, unique) -> None:
    """The reload serves the new model while an agent batch, begun with the old one, is still
    encoding; the replay waits for it and places its item again."""
    kafka = tagged_kafka(broker.bootstrap, unique, partitions=1)
    topic = kafka.catalogue_topic
    model = ["old"]  # what the catalogue processor serves: taken when a batch begins
    placed: dict[bytes, str] = {}

    async def process(msgs: list[SourceMessage], encoding_s: float = 0.0) -> None:
        serving = model[0]
        await asyncio.sleep(encoding_s)
        for m in msgs:
            placed[m.key] = serving

    async def run() -> int:
        await produce(kafka, topic, [_item("x", 1), _item("y", 1)], "item_id")
        x = SourceMessage(topic, 0, 0, b"x", json.dumps(_item("x", 1)).encode(), 0.0)
        resync = SharedCatalogueResync(kafka, topic, batch_size=16, replay=process)
        in_flight = asyncio.ensure_future(resync.apply([x], lambda m: process(m, 0.5)))
        await asyncio.sleep(0.05)  # the batch has begun with the old model
        model[0] = "new"  # the reload
        n = await resync.run(lambda: {0})
        await in_flight
        return n

    assert asyncio.run(run()) == 2
    assert placed == {b"x": "new", b"y": "new"}


def test_a_partition_revoked_during_the_replay_is_left_to_its_new_owner(broker, unique) -> None:
    kafka = tagged_kafka(broker.bootstrap, unique, partitions=2)
    topic = kafka.catalogue_topic
    held = {0, 1}
    replayed: list[int] = []

    async def replay(msgs: list[SourceMessage]) -> None:
        replayed.extend(m.partition for m in msgs)
        held.discard(1)  # a rebalance after the first chunk

    async def run() -> int:
        items = [_item(f"i{k}", 1) for k in range(40)]
        await produce(kafka, topic, items, "item_id")
        resync = SharedCatalogueResync(kafka, topic, batch_size=1, replay=replay)
        return await resync.run(lambda: set(held))

    n = asyncio.run(run())
    # records come partition by partition: 0's, then none of 1's once it is revoked
    assert set(replayed) == {0} and n == len(replayed) < 40


def test_a_record_the_agent_rejected_holds_no_replay_back(broker, unique) -> None:
    """An agent record dead-lettered during the replay (a domain the new bundle does not know)
    placed nothing: the item's latest valid record is still replayed."""
    kafka = tagged_kafka(broker.bootstrap, unique, partitions=1)
    topic = kafka.catalogue_topic
    replayed: list[str] = []

    async def run() -> None:
        await produce(kafka, topic, [_item("x", 1)], "item_id")
        refused = SourceMessage(topic, 0, 1, b"x", json.dumps(_item("x", 2)).encode(), 0.0)

        async def agent(msgs: list[SourceMessage]) -> list[SourceMessage]:
            return list(msgs)  # every record rejected

        async def replay(msgs: list[SourceMessage]) -> None:
            replayed.extend(_name(m) for m in msgs)

        resync = SharedCatalogueResync(kafka, topic, batch_size=16, replay=replay)

        def assigned() -> set[int]:
            return {0}

        async def rejected_meanwhile() -> None:
            await resync.apply([refused], agent)

        # the agent's refused record lands after the replay began tracking, before its chunk
        task = asyncio.ensure_future(rejected_meanwhile())
        await resync.run(assigned)
        await task

    asyncio.run(run())
    assert replayed == ["x v1"]
