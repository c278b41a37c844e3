"""Create every topic with its partition count before any client touches it.

Tansu (and Kafka with auto-create on) creates an unknown topic with a default partition count the
moment a client asks for its metadata; Faust then refuses a table whose changelog disagrees with
its source topic. So the worker, the demo and the tests call :func:`ensure_topics` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from inference.errors import ConfigError
from streams.settings import KafkaSettings, WorkerSettings

log = logging.getLogger(__name__)

USERS_TABLE = "users"
PROJECTION_TABLE = "projection"  # online projection statistics per source partition


def topic_names(kafka: KafkaSettings, worker: WorkerSettings) -> list[str]:
    """Every topic the worker reads or writes, the users-table changelog included."""
    return [
        kafka.catalogue_topic,
        kafka.behaviour_topic,
        kafka.recommendations_topic,
        kafka.deadletter_topic,
        f"{worker.app_id}-{USERS_TABLE}-changelog",
        f"{worker.app_id}-{PROJECTION_TABLE}-changelog",
    ]


async def ensure_topics(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    timeout_s: float = 30.0,
    bootstrap_setting: str = "KAFKA_BOOTSTRAP",
) -> None:
    """Create missing topics; fail loudly when an existing one has the wrong partition count.

    ``bootstrap_setting`` names the variable that gave ``kafka.bootstrap``, for the error when
    no broker answers there."""
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs(), request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError) as exc:
        await admin.close()
        # the first contact with the brokers: the one place a wrong address shows as such
        raise kafka.cannot_connect(exc, bootstrap_setting) from exc
    try:
        names = topic_names(kafka, worker)
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # Another worker may win the race to create them.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, kafka.partitions, kafka.replication) for n in missing]
                )
            log.info("created topics %s with %d partitions", missing, kafka.partitions)
        described = await admin.describe_topics(names)
        # the behaviour topic and the tables' changelogs (users, projection) go together
        partitioned = {kafka.behaviour_topic, *names[-2:]}
        for topic in described:
            n = len(topic.get("partitions", []))
            if topic["topic"] in partitioned and n != kafka.partitions:
                raise ConfigError(
                    f"topic {topic['topic']!r} has {n} partitions but KAFKA_PARTITIONS="
                    f"{kafka.partitions}; set KAFKA_PARTITIONS={n} (the tables must be "
                    "co-partitioned with the behaviour topic)"
                )
    finally:
        await admin.close()
