"""Leave a user's consumed items out of their hits by asking for a few more, not by filtering.

An exclusion filter (``must_not has_id``) costs in proportion to its size, twice: building it
(the point ids cross into the engine one by one) and searching with it. A user's consumed items
in a domain grow to ``WORKER_RECENT_ITEMS``; with 100 of them a filtered query cost twice what
this module's way costs (``python -m bench.store_probe --data synthetic --consumed 200``: 0.38
against 0.19 ms a query, 36k items). Few of them are ever among the nearest items: 1.35 of the
top 26 on average and 5 at most for the Food/Kitchen users of that probe (README,
"Vector-store queries"). So a query asks for
``k + min(len(excluded), OVERFETCH)`` hits with no filter and drops the excluded ones; only
when they crowd out so many that fewer than ``k`` remain from a full page is it asked again
with the filter (``plan.exact`` says when that cannot happen). The hits are the same as the
filtered query's, up to the engine's approximation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from store.base import Hit, ItemQuery

#: Extra hits a query asks for in place of its exclusions (see the module docstring).
OVERFETCH = 16

#: One engine batch: (query, limit, with the exclusion filter) -> (hits, points returned) each.
Ask = Callable[[list[tuple[ItemQuery, int, bool]]], list[tuple[list[Hit], int]]]


@dataclass(frozen=True)
class Overfetch:
    """How one query is asked: ``limit`` hits, of which those in ``excluded`` are dropped."""

    limit: int
    excluded: frozenset[str]
    exact: bool  # every excluded item fits in the extra hits: k always remain from a full page


def plan(q: ItemQuery) -> Overfetch:
    """The unfiltered request that stands in for ``q``'s exclusion filter."""
    excluded = frozenset(q.exclude_item_ids)
    extra = min(len(excluded), OVERFETCH)
    return Overfetch(q.k + extra, excluded, extra == len(excluded))


def keep(hits: Sequence[Hit], page: int, p: Overfetch, k: int) -> list[Hit] | None:
    """The first ``k`` hits not excluded, or None when the query must be asked again with the
    filter: fewer than ``k`` remain from a full page (``page``: the points the engine returned,
    before any was dropped for another reason)."""
    kept = [h for h in hits if h.item_id not in p.excluded] if p.excluded else list(hits)
    if len(kept) >= k or p.exact or page < p.limit:
        return kept[:k]
    return None


def query_batch(qs: Sequence[ItemQuery], ask: Ask) -> list[list[Hit]]:
    """Answer ``qs`` (all k > 0) with one unfiltered engine batch, then one filtered batch for
    the queries whose exclusions crowded out their page (usually none)."""
    plans = [plan(q) for q in qs]
    pages = ask([(q, p.limit, False) for q, p in zip(qs, plans, strict=True)])
    out: list[list[Hit]] = []
    again = []
    for i, (q, p, (hits, page)) in enumerate(zip(qs, plans, pages, strict=True)):
        kept = keep(hits, page, p, q.k)
        out.append(kept if kept is not None else [])
        if kept is None:
            again.append(i)
    if again:
        filtered = ask([(qs[i], qs[i].k, True) for i in again])
        for i, (hits, _) in zip(again, filtered, strict=True):
            out[i] = hits
    return out
