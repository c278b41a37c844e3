"""A Faust table whose changelog writes can be awaited, and held back behind another table's.

Faust sends a table's changelog records through its producer buffer, and neither its consumer
commit nor ``Producer.flush`` waits for that buffer to drain: ``ProducerBuffer.flush`` gives up
as soon as one hand-over takes longer than 0.1 s, which happens on a busy worker. An offset
could then be committed for an event whose new state never reached the changelog, and a crash
at that moment would lose the event (found by reading Faust; the buffer usually drains before
the next commit). The behaviour agent therefore takes each batch's changelog futures
(:meth:`AckedTable.take_unacked`) and acknowledges the batch only once they resolved
(:mod:`streams.publish`).

Two tables are two changelogs, and the broker may take their records in any order. Where one
table's records must land first (the learned statistics before the user states they came
from, see ``streams.behaviour.LearnedState``), the other table holds its records back
(:meth:`AckedTable.send_after`, :meth:`AckedTable.release`) and sends them once the first
table's are acknowledged, without making the agent wait: the batch is acknowledged when the
held records are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import faust


class AckedTable(faust.Table):
    """A ``faust.Table`` that remembers its changelog sends until they are acknowledged.

    Used through the app's ``Table`` setting, so ``app.Table(...)`` builds one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacked: list[asyncio.Future] = []
        self._gate: list[asyncio.Future] | None = None
        self._held: list[tuple[tuple[Any, ...], asyncio.Future]] = []
        self._releasing: asyncio.Future | None = None  # the last release, to keep order

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        """Send the record as Faust does (or hold it, see :meth:`send_after`), and keep its
        future for :meth:`take_unacked`."""
        args = (partition, key, value, key_serializer, value_serializer)
        if self._gate is None:
            fut = super().send_changelog(*args)
        else:
            if partition is None:  # Faust would pick it when sending: too late to hold
                raise RuntimeError(f"{self.name}: a held changelog record needs its partition")
            fut = _HeldRecord(partition)
            self._held.append((args, fut))
        self._unacked.append(fut)
        return fut

    def pending(self) -> list[asyncio.Future]:
        """The futures of the records sent since the last :meth:`take_unacked` (kept)."""
        return list(self._unacked)

    def take_unacked(self) -> list[asyncio.Future]:
        """The futures of the changelog records sent since the last call, handed to the caller."""
        pending, self._unacked = self._unacked, []
        return pending

    def send_after(self, gate: Sequence[asyncio.Future]) -> None:
        """Hold the records set from now until :meth:`release` until ``gate`` resolved.

        With nothing to wait for (no gate, no earlier release still holding records) they
        are sent at once, as without this call.
        """
        earlier = self._releasing
        if not gate and (earlier is None or (earlier.done() and not _failed(earlier))):
            return
        self._gate = list(gate)

    def release(self) -> None:
        """Stop holding: the held records go out once their gate resolved, after any records
        an earlier release still holds. Their futures fail if a gate future failed."""
        gate, held, previous = self._gate or [], self._held, self._releasing
        self._gate, self._held = None, []
        if held:
            self._releasing = asyncio.ensure_future(self._send_held(gate, held, previous))

    async def _send_held(
        self,
        gate: list[asyncio.Future],
        held: list[tuple[tuple[Any, ...], asyncio.Future]],
        previous: asyncio.Future | None,
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
                if _failed(previous):
                    raise RuntimeError("records held before these were not delivered")
            if gate:
                await asyncio.wait(gate)  # not gather: Faust's futures must not be cancelled
            failed = next((f for f in gate if _failed(f)), None)
            if failed is not None:
                raise RuntimeError(f"a record these wait for was not delivered: {failed!r}")
            for args, proxy in held:
                _follow(super().send_changelog(*args), proxy)
        except BaseException as exc:
            for _, proxy in held:
                if not proxy.done():
                    proxy.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            raise  # later held records must not go out either (see above)


class _HeldRecord(asyncio.Future):
    """The future of a held record: resolves as its send does, and names its partition where
    Faust's table reads it from a send's future (``fut.message.partition``)."""

    def __init__(self, partition: int) -> None:
        super().__init__()
        self.message = SimpleNamespace(partition=partition)


def _failed(fut: asyncio.Future) -> bool:
    """Whether a done future was cancelled or raised."""
    return fut.cancelled() or fut.exception() is not None


def _follow(source: asyncio.Future, proxy: asyncio.Future) -> None:
    """Resolve ``proxy`` as ``source`` resolves."""

    def copy(f: asyncio.Future) -> None:
        if proxy.done():
            return
        if f.cancelled():
            proxy.cancel()
        elif f.exception() is not None:
            proxy.set_exception(f.exception())
        else:
            proxy.set_result(f.result())

    source.add_done_callback(copy)
