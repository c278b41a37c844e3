"""Part of a recommendation list from the user's short-term interest alone.

A query blends each domain's long-term mean with its short-term interest,
``(1 - w) * long + w * short`` (:mod:`inference.blend`), with ``w`` learned online per domain
(:mod:`inference.recency_mix`). After a user's taste switched, the blend points between the old
and the new interest, where neither lies, and the nearest items of both are missed. So where
the target domain's ``w`` is above zero the list is also split: ``w * k`` of its ``k`` places,
rounded half up, go to the nearest items of the short-term interest alone, after the blended
query's first ``k - w * k``, each item once. The short-term query reads every domain the
blended one does at its short-term interest: ``w`` is how far the population's next items sit
towards recent behaviour in the domain being recommended, and a user known there only from
other domains switched in those. Where tastes hold still ``w`` is learned to 0 and the lists
are the blended query's alone; what the split buys after a switch is measured in README,
"Drift". Pure list arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Ranked(Protocol):
    item_id: str


H = TypeVar("H", bound=Ranked)


def short_term_slots(share: float, k: int) -> int:
    """How many of ``k`` places go to the short-term interest's nearest items (0..k)."""
    if not share > 0:  # NaN included
        return 0
    return min(k, math.floor(float(share) * k + 0.5))


def merge_lists(
    blended: Sequence[H], short: Sequence[H], k: int, slots: int
) -> tuple[list[H], int]:
    """The first ``k - slots`` of ``blended``, then ``short``'s items not yet listed, then the
    rest of ``blended``, up to ``k`` items, each once; and how many came from ``short``.

    Either list running short leaves its places to the other (a user with few unconsumed
    items near their short-term interest still gets ``k``). The items keep their own query's
    score, so a split list is not sorted by score.
    """
    head = list(blended[: max(0, k - slots)])
    seen = {h.item_id for h in head}
    taken = 0

    def fill(hits: Sequence[H], room: int, from_short: bool) -> None:
        nonlocal taken
        for h in hits:
            if len(head) >= room:
                return
            if h.item_id not in seen:
                head.append(h)
                seen.add(h.item_id)
                taken += from_short

    fill(short, len(head) + slots, True)
    fill(blended[len(head) - taken :], k, False)
    fill(short, k, True)  # the blended list ran out too
    return head, taken
