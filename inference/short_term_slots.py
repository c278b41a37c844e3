"""Part of a recommendation list from the user's short-term interest alone.

A query blends each domain's long-term mean with its short-term interest,
``(1 - w) * long + w * short`` (:mod:`inference.blend`), with ``w`` learned online per domain
(:mod:`inference.recency_mix`). After a user's taste switched, the blend points between the old
and the new interest, where neither lies, and the nearest items of both are missed. So where
``w`` is above zero the list is also split: ``round(w * k)`` of its ``k`` places go to the
nearest items of the short-term interest alone, the rest to the blended query's, in that
order, each item once.

Where tastes hold still ``w`` is learned to 0 and the lists are the blended query's alone;
what the split buys after a switch is measured in README, "Drift". numpy-free: pure list arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Ranked(Protocol):
    item_id: str


H = TypeVar("H", bound=Ranked)


def short_term_slots(share: float, k: int) -> int:
    """How many of ``k`` places go to the short-term interest's nearest items (0..k)."""
    if not share > 0:  # NaN included
        return 0
    return min(k, round(float(share) * k))


def merge_lists(blended: Sequence[H], short: Sequence[H], k: int, slots: int) -> list[H]:
    """The first ``k - slots`` of ``blended``, then ``short``'s items not yet listed, then the
    rest of ``blended``, up to ``k`` items; each item once.

    Either list running short leaves its places to the other (a user with few unconsumed
    items near their short-term interest still gets ``k``).
    """
    head = list(blended[: max(0, k - slots)])
    seen = {h.item_id for h in head}
    for h in (*short, *blended[len(head) :]):
        if len(head) >= k:
            break
        if h.item_id not in seen:
            head.append(h)
            seen.add(h.item_id)
    return head
