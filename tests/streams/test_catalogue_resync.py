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
        n = await resync.run({0})
        await asyncio.gather(*agent_batch)
        assert await resync.run(set()) == 0  # a worker with no catalogue partition
        return n

    n = asyncio.run(run())
    # the latest of each item below the end at the start, in offset order; a's v2 is left out:
    # the agent applied v3 in between, and a replay must not take a back to v2
    assert replayed == ["c: c v1", "b: deleted"]
    assert agent == ["a: a v3"]
    assert n == 2
