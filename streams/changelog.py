"""A Faust table whose changelog writes can be awaited before a batch is acknowledged.

Faust sends a table's changelog records through its producer buffer, and neither its consumer
commit nor ``Producer.flush`` waits for that buffer to drain: ``ProducerBuffer.flush`` gives up
as soon as one hand-over takes longer than 0.1 s, which happens on a busy worker. An offset
could then be committed for an event whose new state never reached the changelog, and a crash
at that moment would lose the event (found by reading Faust; the buffer usually drains before
the next commit). The behaviour agent therefore takes each batch's changelog futures
(:meth:`AckedTable.take_unacked`) and acknowledges the batch only once they resolved
(:mod:`streams.publish`).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import FutureMessage


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
        """Send the record as Faust does, and keep its future for :meth:`take_unacked`."""
        fut = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._unacked.append(fut)
        return fut

    def take_unacked(self) -> list[FutureMessage]:
        """The futures of the changelog records sent since the last call, handed to the caller."""
        pending, self._unacked = self._unacked, []
        return pending
