"""The worker's Faust consumer fetches with ``KAFKA_FETCH_MAX_WAIT_MS``, on the real broker.

Faust builds its worker consumer with a fixed ``fetch_max_wait_ms=1500``; Tansu holds a fetch
for that long, which the stream benchmark's fetch-wait probe measures. The check reads the
aiokafka fetcher that a started consumer built, so a Faust or aiokafka change that drops the
setting fails here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

from streams.broker import LocalBroker
from streams.consumer import worker_consumer
from streams.settings import KafkaSettings

pytestmark = [pytest.mark.broker]


async def _fetch_wait(kafka: KafkaSettings, consumer_cls: type, name: str, datadir: Path) -> int:
    """The fetch wait of the aiokafka consumer a worker app built with ``consumer_cls``."""
    app = faust.App(
        name, broker=kafka.broker_url, store="memory://", datadir=str(datadir), autodiscover=False
    )
    app.transport.Consumer = consumer_cls
    inner = app.consumer._thread._create_consumer(loop=asyncio.get_running_loop())
    await inner.start()
    try:
        return inner._fetcher._fetch_max_wait_ms
    finally:
        await inner.stop()


def test_the_worker_consumer_fetches_with_the_configured_wait(
    broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap=broker.bootstrap, fetch_max_wait_ms=37)
    ours = asyncio.run(_fetch_wait(kafka, worker_consumer(kafka), f"w-{unique}", tmp_path))
    assert ours == 37
    # Faust's own consumer keeps its fixed wait: the setting is what changed it
    theirs = asyncio.run(_fetch_wait(kafka, FaustConsumer, f"f-{unique}", tmp_path))
    assert theirs == 1500


def test_the_fetch_wait_is_bounded() -> None:
    with pytest.raises(ValueError, match="fetch_max_wait_ms"):
        KafkaSettings(fetch_max_wait_ms=0)
