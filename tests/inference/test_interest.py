"""Interest state: incremental updates, idempotence, negative feedback, serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from inference.blend import Strategy, TextSpaceModel
from inference.interest import InterestParams, UserState, apply_event
from inference.interest_codec import dumps, loads

P = InterestParams(recent_items=3)


def unit(i: int, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def apply(
    state: UserState,
    n: int,
    *,
    domain: str = "a",
    vec: np.ndarray | None = None,
    action: str = "click",
    offset: int | None = None,
    event_id: str | None = None,
) -> bool:
    return apply_event(
        state,
        event_id=event_id or f"e{n}",
        domain=domain,
        action=action,
        event_time=1e9 + n,
        vector=unit(0) if vec is None else vec,
        item_id=f"i{n}",
        rating=None,
        params=P,
        partition=0,
        offset=n if offset is None else offset,
    )


def test_mean_follows_what_the_user_touched() -> None:
    s = UserState()
    for n in range(5):
        apply(s, n, vec=unit(1))
    apply(s, 5, vec=unit(2))
    mean = s.domains["a"].mean()
    assert mean[1] > mean[2] > 0 and s.domains["a"].count == 6


def test_replayed_offsets_and_repeated_ids_apply_once() -> None:
    s = UserState()
    assert apply(s, 1)
    assert not apply(s, 1)  # same offset again (replay after a crash)
    assert not apply(s, 2, event_id="e1")  # same id at a new offset (producer retry)
    assert apply(s, 3)
    assert s.events_applied == 2 and s.domains["a"].count == 2


def test_negative_feedback_pushes_interest_away() -> None:
    s = UserState()
    apply(s, 1, vec=unit(1))
    apply(s, 2, vec=unit(1) + unit(2))
    apply(s, 3, vec=unit(2), action="dislike")
    mean = s.domains["a"].mean()
    assert mean[2] < 0 < mean[1]


def test_recent_items_window_is_bounded_and_ordered() -> None:
    s = UserState()
    for n in range(6):
        apply(s, n)
    assert s.consumed("a") == ["i3", "i4", "i5"]


def test_round_trip_serialisation() -> None:
    s = UserState()
    for n in range(4):
        apply(s, n, domain="a" if n % 2 else "b", vec=unit(n))
    back = loads(dumps(s))
    assert back.offsets == s.offsets and back.event_ids == s.event_ids
    for name, d in s.domains.items():
        np.testing.assert_array_equal(back.domains[name].long_sum, d.long_sum)
        np.testing.assert_array_equal(back.domains[name].short, d.short)
        assert back.domains[name].recent == d.recent
    assert loads(None).domains == {}


def test_text_space_model_transfers_and_blends() -> None:
    model = TextSpaceModel(version="t")
    s = UserState()
    for n in range(3):
        apply(s, n, domain="books", vec=unit(4))
    q = model.query(s, "video")
    assert q is not None and q.strategy == Strategy.TRANSFER and int(np.argmax(q.vector)) == 4
    apply(s, 9, domain="video", vec=unit(5))
    q2 = model.query(s, "video")
    assert q2 is not None and q2.strategy == Strategy.BLEND
    assert q2.vector[4] > 0 and q2.vector[5] > 0
    assert abs(sum(q2.weights.values()) - 1.0) < 1e-3
    assert model.query(UserState(), "video") is None


def test_rebase_refolds_recent_items_in_the_new_space() -> None:
    from inference.interest import rebase

    s = UserState(space="old")
    for n in range(3):
        apply(s, n, vec=unit(n))
    new = {f"i{n}": unit(7 - n) for n in range(3)}  # the same items, placed elsewhere
    rebase(s, new, "new", InterestParams(half_life_events=1e9))
    d = s.domains["a"]
    np.testing.assert_allclose(d.mean()[5:8], [1 / 3] * 3, atol=1e-6)
    assert s.space == "new" and d.count == 3 and s.events_applied == 3
    assert loads(dumps(s)).space == "new"


def test_rebase_lets_a_detection_awaiting_confirmation_go() -> None:
    from inference.interest import rebase

    s = UserState(space="old")
    for n in range(3):
        apply(s, n, vec=unit(n))
    d = s.domains["a"]
    d.drift_pending, d.drift_pending_short = 0.5, unit(1)  # a vector of the old space
    rebase(s, {f"i{n}": np.ones(4, np.float32) for n in range(3)}, "new", InterestParams())
    assert d.drift_pending is None and d.drift_pending_short is None
    back = loads(dumps(s)).domains["a"]  # and the state still round-trips at the new width
    assert back.long_sum.shape == (4,) and back.drift_pending_short is None


def test_rebase_folds_items_the_user_turned_away_from_negatively() -> None:
    from inference.interest import rebase

    s = UserState(space="old")
    apply(s, 0, vec=unit(0), action="purchase")
    apply(s, 1, vec=unit(1), action="dislike")
    assert loads(dumps(s)).domains["a"].negative == ["i1"]  # kept in the stored state
    new = {"i0": unit(6), "i1": unit(7)}
    rebase(s, new, "new", InterestParams(half_life_events=1e9))
    d = s.domains["a"]
    assert d.mean()[6] > 0 > d.mean()[7]
    np.testing.assert_array_equal(d.short, unit(6))  # the short-term interest: liked items only
    apply_event(  # i1 bought after all: no longer negative
        s,
        event_id="e2",
        domain="a",
        action="purchase",
        event_time=1e9 + 2,
        vector=unit(7),
        item_id="i1",
        rating=None,
        params=P,
    )
    assert s.domains["a"].negative == []


def test_a_domain_rebased_to_nothing_takes_the_next_vector() -> None:
    from inference.interest import rebase

    s = UserState(space="old")
    apply(s, 0, vec=unit(0))
    rebase(s, {}, "new", InterestParams())  # the new model has none of the user's items
    assert s.domains["a"].long_sum.shape == (0,)
    assert apply(s, 1, vec=unit(2, dim=4))  # not refused for its size
    assert s.domains["a"].long_sum.shape == (4,) and s.domains["a"].mean()[2] == 1.0
    assert apply(s, 2, vec=unit(3, dim=4))


def test_a_non_finite_vector_is_refused() -> None:
    s = UserState()
    bad = unit(0)
    bad[1] = np.nan
    try:
        apply(s, 0, vec=bad)
    except ValueError as exc:
        assert "NaN" in str(exc)
    else:
        raise AssertionError("a NaN vector was applied")
    assert s.domains == {} and s.events_applied == 0


def test_a_domain_rebased_to_nothing_does_not_break_queries_in_the_others() -> None:
    from inference.interest import rebase

    s = UserState(space="old")
    apply(s, 0, vec=unit(0), domain="a")
    apply(s, 1, vec=unit(1), domain="b")
    rebase(s, {}, "new", InterestParams())  # none of the items in the new space: both emptied
    apply(s, 2, vec=unit(2, dim=4), domain="b")  # "b" takes the new size, "a" has none
    model = TextSpaceModel(version="new")
    for target in ("a", "b"):
        q = model.query(s, target)
        assert q is not None and q.vector.shape == (4,) and q.weights == {"b": 1.0}


def test_skips_alone_are_neither_queried_nor_transferred() -> None:
    s = UserState()
    apply(s, 0, vec=unit(1), domain="a", action="skip")
    assert s.domains["a"].mean()[1] < 0  # the skip is remembered...
    model = TextSpaceModel(version="v")
    assert model.query(s, "a") is None  # ...but not asked for its opposite
    apply(s, 1, vec=unit(2), domain="b")
    q = model.query(s, "a")
    assert q is not None and q.weights == {"b": 1.0} and q.vector[1] == 0.0
    apply(s, 2, vec=unit(3), domain="a")  # a liked item in "a": its own interest serves again
    assert "a" in model.query(s, "a").weights


def test_idle_time_fades_interest_even_across_an_event_without_a_vector() -> None:
    year = 365 * 86400.0

    def mean_after(gap_event: bool) -> np.ndarray:
        s = UserState()
        kw = {"domain": "a", "action": "purchase", "rating": None, "params": P}
        apply_event(s, event_id="e0", event_time=0.0, vector=unit(0), item_id="i0", **kw)
        if gap_event:
            apply_event(s, event_id="e1", event_time=year, vector=None, item_id=None, **kw)
        apply_event(s, event_id="e2", event_time=year + 1, vector=unit(1), item_id="i2", **kw)
        return s.domains["a"].mean()

    np.testing.assert_allclose(mean_after(True), mean_after(False), atol=1e-6)
    assert mean_after(True)[0] < 0.01  # a year-old item has faded


def test_numpy_scalars_leave_the_stored_types_alone() -> None:
    s = UserState()
    apply_event(
        s,
        event_id="e0",
        domain="a",
        action="rating",
        event_time=np.float64(1e9),
        vector=unit(0),
        item_id="i0",
        rating=np.float32(5.0),
        params=P,
    )
    d = s.domains["a"]
    assert d.long_sum.dtype == np.float32 and type(d.long_weight) is float
    assert loads(dumps(s)).domains["a"].long_weight == d.long_weight  # dumps no longer fails


def test_trim_recent_keeps_the_newest_items_and_their_negative_marks() -> None:
    from inference.interest import trim_recent

    s = UserState()
    params = InterestParams(recent_items=10)
    for n in range(6):
        apply_event(
            s,
            event_id=f"e{n}",
            domain="a",
            action="skip" if n in (1, 4) else "click",
            event_time=1e9 + n,
            vector=unit(n % 8),
            item_id=f"i{n}",
            rating=None,
            params=params,
        )
    mean = s.domains["a"].mean().copy()
    trim_recent(s, 3)
    assert s.domains["a"].recent == ["i3", "i4", "i5"] and s.domains["a"].negative == ["i4"]
    np.testing.assert_array_equal(s.domains["a"].mean(), mean)  # interest itself untouched


def _purchase(s: UserState, n: int, t: float, vec: np.ndarray, params: InterestParams) -> None:
    apply_event(
        s,
        event_id=f"e{n}",
        domain="a",
        action="purchase",
        event_time=t,
        vector=vec,
        item_id=f"i{n}",
        rating=None,
        params=params,
    )


def test_a_late_event_counts_as_it_would_have_in_order() -> None:
    params = InterestParams(half_life_events=float("inf"), half_life_s=3600.0)
    ordered, late = UserState(), UserState()
    _purchase(ordered, 0, 0.0, unit(0), params)
    _purchase(ordered, 1, 7200.0, unit(1), params)
    _purchase(late, 1, 7200.0, unit(1), params)
    _purchase(late, 0, 0.0, unit(0), params)  # two half-lives older than what came before it
    np.testing.assert_allclose(late.domains["a"].mean(), ordered.domains["a"].mean(), atol=1e-6)
    assert late.domains["a"].mean()[0] == pytest.approx(0.2)  # a quarter of the newer's weight
    assert late.domains["a"].short[1] > 0.9  # the late event barely moves recent interest


def test_short_term_interest_forgets_idle_time_too() -> None:
    params = InterestParams(half_life_s=86_400.0)
    s = UserState()
    for n in range(5):
        _purchase(s, n, float(n), unit(0), params)
    _purchase(s, 5, 10 * 86_400.0, unit(1), params)  # after ten idle half-lives
    assert s.domains["a"].short[1] > 0.99  # not 0.3: the old burst is as stale as in the mean
    assert s.domains["a"].mean()[1] > 0.99
    quick = UserState()
    for n in range(5):
        _purchase(quick, n, float(n), unit(0), params)
    _purchase(quick, 5, 6.0, unit(1), params)  # a second later: the usual step
    assert quick.domains["a"].short[1] == pytest.approx(params.short_alpha, rel=1e-4)
