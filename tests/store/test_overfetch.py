"""Exclusions answered by over-fetching (store.overfetch): when a query must be asked again."""

from __future__ import annotations

import numpy as np

from store.base import Hit, ItemQuery
from store.overfetch import OVERFETCH, keep, plan


def _q(k: int, excluded: int) -> ItemQuery:
    return ItemQuery(np.ones(4), "d", k, tuple(f"x{i}" for i in range(excluded)))


def _hits(*ids: str) -> list[Hit]:
    return [Hit(i, "d", 1.0 / (n + 1)) for n, i in enumerate(ids)]


def test_a_query_asks_for_one_extra_hit_per_exclusion_up_to_the_cap() -> None:
    assert plan(_q(10, 0)).limit == 10 and plan(_q(10, 0)).exact
    assert plan(_q(10, 3)).limit == 13 and plan(_q(10, 3)).exact
    many = plan(_q(10, 200))
    assert many.limit == 10 + OVERFETCH and not many.exact
    assert len(many.excluded) == 200


def test_excluded_hits_are_dropped_and_only_a_crowded_full_page_asks_again() -> None:
    p = plan(_q(2, OVERFETCH + 5))  # limit 2 + OVERFETCH; excluded: x0 .. x20
    crowded = _hits(*[f"x{i}" for i in range(OVERFETCH + 1)], "a")
    assert len(crowded) == p.limit
    # one left of k = 2 from a full page: ask again
    assert keep(crowded, len(crowded), p, 2) is None
    enough = _hits(*[f"x{i}" for i in range(OVERFETCH)], "a", "b")
    assert [h.item_id for h in keep(enough, len(enough), p, 2)] == ["a", "b"]
    short = _hits("x0", "a")  # fewer hits than asked for: the domain has no more
    assert [h.item_id for h in keep(short, len(short), p, 2)] == ["a"]
    # a full page of which the store dropped a point it could not name: still a full page
    assert keep(crowded[:-1], p.limit, p, 2) is None
    mixed = _hits("x0", "a", "x1", "b", "c")  # all exclusions fit the extra hits: exact
    assert [h.item_id for h in keep(mixed, len(mixed), plan(_q(2, 2)), 2)] == ["a", "b"]
