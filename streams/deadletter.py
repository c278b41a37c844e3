"""Dead letters: the original bytes of a rejected event plus why, where it came from, and when."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from streams.metrics import DEAD_LETTERS, EVENTS

log = logging.getLogger(__name__)

#: The most of a rejected record's value (and key) a dead letter carries. A record can be
#: larger than what this worker's producer may send (Faust's ``producer_max_request_size``,
#: 1,000,000 bytes, headers included) while the broker accepted it (Kafka's default
#: ``message.max.bytes`` is 1,048,588): sending it whole would fail on every restart. A cut
#: letter says so in its headers; the source topic, partition and offset name the original.
MAX_DEAD_LETTER_BYTES = 512 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 1024


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
    """A message we could not process: sent to the dead-letter topic with headers, unchanged
    up to :data:`MAX_DEAD_LETTER_BYTES`."""

    source: SourceMessage
    reason: str
    message: str

    def count(self) -> None:
        """Count the letter in the metrics, once, as it is sent."""
        DEAD_LETTERS.labels(self.source.topic, self.reason).inc()
        EVENTS.labels(self.source.topic, "deadletter").inc()

    def key(self) -> bytes | None:
        """The original key, cut to :data:`MAX_DEAD_LETTER_KEY_BYTES`."""
        key = self.source.key
        return None if key is None else key[:MAX_DEAD_LETTER_KEY_BYTES]

    def value(self) -> bytes:
        """The original bytes, cut to :data:`MAX_DEAD_LETTER_BYTES`."""
        return (self.source.value or b"")[:MAX_DEAD_LETTER_BYTES]

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that say why and from where (and how much was cut, if any)."""
        out = [
            ("x-error-reason", self.reason.encode()),
            ("x-error-message", self.message[:1000].encode("utf-8", "replace")),
            ("x-source-topic", self.source.topic.encode()),
            ("x-source-partition", str(self.source.partition).encode()),
            ("x-source-offset", str(self.source.offset).encode()),
            ("x-dead-lettered-at", f"{time.time():.3f}".encode()),
        ]
        size, key_size = len(self.source.value or b""), len(self.source.key or b"")
        if size > MAX_DEAD_LETTER_BYTES or key_size > MAX_DEAD_LETTER_KEY_BYTES:
            out.append(("x-truncated", b"true"))
            out.append(("x-original-value-bytes", str(size).encode()))
            out.append(("x-original-key-bytes", str(key_size).encode()))
        return out


def span(positions: Iterable[tuple[str, int, int]]) -> str:
    """Where a batch came from, for logs: ``topic[partition]@first..last`` per partition."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in positions:
        ranges.setdefault((topic, partition), []).append(offset)
    return ", ".join(
        f"{t}[{p}]@{min(o)}" + (f"..{max(o)}" if len(o) > 1 else "")
        for (t, p), o in sorted(ranges.items())
    )


def reject(msg: SourceMessage, reason: str, message: str) -> DeadLetter:
    """Log a rejected message and wrap it for the dead-letter topic (counted when sent:
    a batch retried event by event rejects again what its failed attempt rejected)."""
    log.warning("dead-lettering %s: %s: %s", msg.where(), reason, message[:200])
    return DeadLetter(msg, reason, message)


def key_mismatch(msg: SourceMessage, record_id: str, field: str) -> DeadLetter | None:
    """The ``bad_key`` letter for a record whose key is not its ``field`` (``record_id``), or
    None. Another key, or none (the producer spreads keyless records over partitions), puts one
    user's or item's records on several partitions: their order and state split."""
    if msg.key == record_id.encode():
        return None
    why = "no key" if msg.key is None else f"key {msg.key[:64]!r}"
    return reject(msg, "bad_key", f"{why}: {msg.topic} records are keyed by their {field}")
