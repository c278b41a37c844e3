"""Interest state: incremental updates, idempotence, negative feedback, serialisation."""

from __future__ import annotations

import numpy as np

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
