"""A Faust table whose changelog writes can be awaited before a batch is acknowledged.

Faust sends a table's changelog records through its producer buffer, and neither its consumer
commit nor ``Producer.flush`` waits for that buffer to drain: ``ProducerBuffer.flush`` gives up
as soon as one hand-over takes longer than 0.1 s, which happens on a busy worker. An offset
could then be committed for an event whose new state never reached the changelog, and a crash
at that moment would lose the event (found by reading Faust; the buffer usually drains before
the next commit). The agents therefore await :meth:`AckedTable.changelog_acked` before Faust
acknowledges their batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust
from faust.types import FutureMessage

log = logging.getLogger(__name__)

# Exit status when a changelog write fails for good: see fail_stop.
CHANGELOG_FAILED_EXIT = 70


class AckedTable(faust.Table):
    """A ``faust.Table`` that remembers its changelog sends until they are acknowledged.

    Used through the app's ``Table`` setting, so ``app.Table(...)`` builds one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked: list[FutureMessage] = []

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> FutureMessage:
        """Send the record as Faust does, and keep its future for :meth:`changelog_acked`."""
        fut = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._unacked.append(fut)
        return fut

    async def changelog_acked(self) -> int:
        """Wait until the broker acknowledged every changelog record sent so far.

        Returns how many records were waited for; raises the send error if one failed.
        """
        pending, self._unacked = self._unacked, []
        if not pending:
            return 0
        await asyncio.gather(*pending)
        return len(pending)


async def changelogs_acked(*tables: AckedTable) -> None:
    """Wait for every table's changelog; stop the process when a write failed for good.

    A failed write leaves state the broker never stored. Acknowledging the batch would commit
    its offsets and lose the events; raising would not help either, because Faust's
    ``take_events`` acknowledges the batch on the way out. Exiting at once keeps the committed
    offsets behind the durable state, so a restart (by the supervisor) replays the batch.
    """
    try:
        for table in tables:
            await table.changelog_acked()
    except Exception as exc:  # the producer already retried until its delivery timeout
        fail_stop(f"changelog write failed: {exc!r}")


def fail_stop(reason: str) -> None:
    """Exit without committing offsets; logged first so the operator sees why."""
    log.critical("%s; exiting without committing so a restart replays the batch", reason)
    logging.shutdown()
    os._exit(CHANGELOG_FAILED_EXIT)
