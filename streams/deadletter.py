"""Dead letters: the original bytes of a rejected event plus why, where it came from, and when."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from streams.metrics import DEAD_LETTERS, EVENTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceMessage:
    """One consumed Kafka message, as the processors see it (no Faust types)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_s: float  # broker/producer timestamp of the message

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    """A message we could not process: sent unchanged to the dead-letter topic with headers."""

    source: SourceMessage
    reason: str
    message: str

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that say why and from where; the value stays the original bytes."""
        return [
            ("x-error-reason", self.reason.encode()),
            ("x-error-message", self.message[:1000].encode("utf-8", "replace")),
            ("x-source-topic", self.source.topic.encode()),
            ("x-source-partition", str(self.source.partition).encode()),
            ("x-source-offset", str(self.source.offset).encode()),
            ("x-dead-lettered-at", f"{time.time():.3f}".encode()),
        ]


def reject(msg: SourceMessage, reason: str, message: str) -> DeadLetter:
    """Count and log a rejected message and wrap it for the dead-letter topic."""
    DEAD_LETTERS.labels(msg.topic, reason).inc()
    EVENTS.labels(msg.topic, "deadletter").inc()
    log.warning("dead-lettering %s: %s: %s", msg.where(), reason, message[:200])
    return DeadLetter(msg, reason, message)
