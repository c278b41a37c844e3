"""How a list is split between the blended query and the short-term interest's own."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from inference.short_term_slots import merge_lists, short_term_slots


@dataclass(frozen=True)
class _Hit:
    item_id: str


def _hits(*ids: str) -> list[_Hit]:
    return [_Hit(i) for i in ids]


@pytest.mark.parametrize(
    ("share", "k", "slots"),
    [(0.0, 10, 0), (0.04, 10, 0), (0.05, 10, 1), (0.25, 10, 3), (0.63, 10, 6), (0.8, 50, 40)],
)
def test_the_share_of_places_is_the_learned_weight_rounded_half_up(share, k, slots) -> None:
    assert short_term_slots(share, k) == slots


@pytest.mark.parametrize("share", [-0.2, math.nan, 1.7])
def test_a_weight_outside_zero_to_one_gives_no_or_all_places(share) -> None:
    assert short_term_slots(share, 10) == (10 if share > 1 else 0)


def test_the_blended_head_comes_first_then_the_short_term_items_each_once() -> None:
    blended = _hits("a", "b", "c", "d", "e")
    short = _hits("c", "x", "y", "z")
    merged, taken = merge_lists(blended, short, 5, 2)
    assert [h.item_id for h in merged] == ["a", "b", "c", "x", "y"] and taken == 2


def test_no_places_leave_the_blended_list_as_it_was() -> None:
    blended = _hits("a", "b", "c")
    assert merge_lists(blended, _hits("x", "y"), 3, 0) == (blended, 0)


def test_a_list_running_short_leaves_its_places_to_the_other() -> None:
    blended = _hits("a", "b", "c", "d")
    # the short-term query found one new item only: the blended list fills the rest, and the
    # list says one item came from it, not the three places it was given
    merged, taken = merge_lists(blended, _hits("a", "x"), 4, 3)
    assert [h.item_id for h in merged] == ["a", "x", "b", "c"] and taken == 1
    # the short-term query found only items the blended head holds: the list is the blend's
    assert merge_lists(blended, _hits("b", "a"), 4, 2) == (blended, 0)
    # the blended query found two: the short-term list fills the rest
    merged, taken = merge_lists(_hits("a", "b"), _hits("x", "y", "z"), 4, 1)
    assert [h.item_id for h in merged] == ["a", "b", "x", "y"] and taken == 2
    assert merge_lists([], [], 4, 2) == ([], 0)
