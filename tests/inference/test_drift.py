"""Drift detection and online projections (numpy only; river for the parity check)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.drift import (
    DriftParams,
    PageHinkley,
    PageHinkleyParams,
    coherence,
    divergence,
    observe_user,
)
from inference.interest import DomainInterest, InterestParams, UserState, apply_event
from inference.interest_codec import dumps, loads
from inference.projection import ProjectionStats


def _signal(seed: int, n: int, shift_at: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2, 0.05, n)
    if shift_at is not None:
        x[shift_at:] += 0.5
    return x


@pytest.mark.parametrize("seed", range(5))
def test_page_hinkley_detects_as_river_does(seed: int) -> None:
    river_drift = pytest.importorskip("river.drift", reason="river (drift extra) not installed")
    p = PageHinkleyParams(delta=0.05, threshold=2.0, min_instances=10)
    ref = river_drift.PageHinkley(
        min_instances=10, delta=0.05, threshold=2.0, alpha=p.alpha, mode="up"
    )
    ours = PageHinkley()
    theirs, mine = [], []
    for k, x in enumerate(_signal(seed, 600, shift_at=300 + 20 * seed)):
        ref.update(x)
        if ref.drift_detected:
            theirs.append(k)
        if ours.update(float(x), p):
            mine.append(k)
    assert mine == theirs and mine, (mine, theirs)


def test_page_hinkley_is_quiet_without_a_change_and_survives_serialisation() -> None:
    p = PageHinkleyParams(delta=0.05, threshold=2.0, min_instances=10)
    ph = PageHinkley()
    assert not any(ph.update(float(x), p) for x in _signal(1, 2000, None))
    again = PageHinkley.from_list(ph.as_list())
    xs = _signal(2, 400, 0)
    assert [again.update(float(x), p) for x in xs] == [ph.update(float(x), p) for x in xs]


def _feed(state: UserState, vectors: np.ndarray, params: DriftParams, start: int = 0) -> list[int]:
    detected = []
    for k, v in enumerate(vectors):
        apply_event(
            state,
            event_id=f"e{start + k}",
            domain="books",
            action="purchase",
            event_time=1.7e9 + start + k,
            vector=v,
            item_id=f"i{start + k}",
            rating=None,
            params=InterestParams(),
        )
        # a purchase adds its vector to the short-term interest: the worker passes it on
        if observe_user(state.domains["books"], params, v):
            detected.append(start + k)
    return detected


def test_a_user_switching_topic_is_detected_and_the_long_term_interest_forgets() -> None:
    rng = np.random.default_rng(0)
    old, new = np.eye(8)[0], np.eye(8)[1]
    before = old + 0.1 * rng.normal(size=(40, 8))
    after = new + 0.1 * rng.normal(size=(20, 8))
    adaptive, static = UserState(), UserState()
    assert _feed(adaptive, before, DriftParams()) == []  # a stable user: no alarm
    _feed(static, before, DriftParams(adaptive=False))
    hits = _feed(adaptive, after, DriftParams(), start=40)
    assert hits and hits[0] < 40 + 6, hits
    _feed(static, after, DriftParams(adaptive=False), start=40)
    d = adaptive.domains["books"]
    assert divergence(d.mean(), new) < divergence(static.domains["books"].mean(), new)
    assert loads(dumps(adaptive)).domains["books"].drift_ph == d.drift_ph  # kept in state


def test_static_params_never_touch_the_state() -> None:
    d = DomainInterest(np.ones(4, np.float32), 1.0, np.array([0, 1, 0, 0], np.float32), 5)
    assert not observe_user(d, DriftParams(adaptive=False))
    assert d.drift_ph is None and d.drift_left == 0


def test_forgetting_statistics_follow_a_changed_relation() -> None:
    rng = np.random.default_rng(3)
    r = 4
    a, b = np.eye(r), np.roll(np.eye(r), 1, axis=1)  # the relation swaps half-way
    stats = ProjectionStats.empty(r)
    for rel in (a, b):
        for _ in range(400):
            z = rng.normal(size=r)
            stats = stats.update(z, z @ rel + 0.05 * rng.normal(size=r), forget=0.98)
    p = stats.solve(0.01, r, prior=a)
    assert np.abs(p - b).max() < 0.1


def test_a_burst_of_off_topic_events_is_not_confirmed_but_a_switch_is() -> None:
    rng = np.random.default_rng(1)
    topics = np.eye(8)
    stable = topics[0] + 0.1 * rng.normal(size=(30, 8))
    burst = topics[[3, 5]] + 0.1 * rng.normal(size=(2, 8))  # two off-topic events in a row
    back = topics[0] + 0.1 * rng.normal(size=(10, 8))
    # eager enough that the burst alone (divergence 0.06, 0.15, then back) crosses it
    eager = PageHinkleyParams(delta=0.05, threshold=0.08, min_instances=8)
    unconfirmed, confirmed = UserState(), UserState()
    stream = np.vstack([stable, burst, back])
    assert _feed(unconfirmed, stream, DriftParams(user_detector=eager, user_confirm=False))
    assert _feed(confirmed, stream, DriftParams(user_detector=eager)) == []
    # a real switch is still caught, one event later than without the confirmation
    switch = np.vstack([stable, topics[1] + 0.1 * rng.normal(size=(10, 8))])
    late = _feed(UserState(), switch, DriftParams(user_detector=eager))
    early = _feed(UserState(), switch, DriftParams(user_detector=eager, user_confirm=False))
    assert late and early and late[0] == early[0] + 1


def test_a_detection_awaiting_confirmation_survives_a_restart() -> None:
    d = DomainInterest(np.ones(4, np.float32), 1.0, np.array([0, 1, 0, 0], np.float32), 5)
    d.drift_ph, d.drift_pending = [3.0, 0.1, 0.0, 0.0], 0.42
    d.drift_pending_short = np.array([0.5, 0.5, 0, 0], np.float32)
    video = DomainInterest(np.full(4, 2.0, np.float32), 2.0, np.ones(4, np.float32), 3)
    state = UserState(domains={"books": d, "video": video})
    raw = dumps(state)
    # kept after every domain's vectors: a reader from before it was kept still reads the rest
    assert raw.endswith(d.drift_pending_short.tobytes())
    back = loads(raw).domains["books"]
    assert back.drift_pending == 0.42
    np.testing.assert_array_equal(back.drift_pending_short, d.drift_pending_short)
    np.testing.assert_array_equal(back.short, d.short)
    np.testing.assert_array_equal(loads(raw).domains["video"].long_sum, video.long_sum)
    d.drift_pending, d.drift_pending_short = None, None
    back = loads(dumps(state)).domains["books"]
    assert back.drift_pending is None and back.drift_pending_short is None


def test_scattered_off_topic_events_are_not_confirmed_but_a_new_topic_is() -> None:
    rng = np.random.default_rng(2)
    topics = np.eye(8)
    stable = topics[0] + 0.1 * rng.normal(size=(30, 8))
    # four off-topic events, each on another topic: the divergence keeps rising all along
    scattered = topics[[3, 5, 6, 2]] + 0.1 * rng.normal(size=(4, 8))
    back = topics[0] + 0.1 * rng.normal(size=(10, 8))
    eager = PageHinkleyParams(delta=0.05, threshold=0.08, min_instances=8)
    stream = np.vstack([stable, scattered, back])
    by_divergence = DriftParams(user_detector=eager, user_coherence=-2.0)  # any event agrees
    assert _feed(UserState(), stream, by_divergence)
    assert _feed(UserState(), stream, DriftParams(user_detector=eager)) == []
    switch = np.vstack([stable, topics[1] + 0.1 * rng.normal(size=(10, 8))])
    assert _feed(UserState(), switch, DriftParams(user_detector=eager))


def test_coherence_compares_the_event_with_short_and_long_term_interest() -> None:
    d = DomainInterest(np.array([2.0, 0, 0, 0], np.float32), 2.0)  # long-term: topic 0
    d.drift_pending_short = np.array([0.3, 0.7, 0, 0], np.float32)  # moving to topic 1
    assert coherence(d, np.array([0, 1.0, 0, 0])) > 0.5  # carries the move on
    assert coherence(d, np.array([0, 0, 1.0, 0])) == 0.0  # unrelated to either
    assert coherence(d, np.array([1.0, 0, 0, 0])) < 0  # back to the old topic
    assert coherence(d, None) is None  # no vector (a skip): the divergence alone decides
    d.drift_pending_short = None
    assert coherence(d, np.array([0, 1.0, 0, 0])) is None


def test_an_event_that_does_not_agree_leaves_the_detection_waiting() -> None:
    d = DomainInterest(np.array([2.0, 0, 0, 0], np.float32), 2.0)  # long-term: topic 0
    d.short = np.array([0.3, 0.7, 0, 0], np.float32)  # divergence 0.61
    d.drift_pending, d.drift_pending_short = 0.5, d.short.copy()
    params = DriftParams()
    assert not observe_user(d, params, np.array([0, 0, 1.0, 0]))  # unrelated: keeps waiting
    assert d.drift_pending == 0.5 and d.drift_pending_short is not None
    assert observe_user(d, params, np.array([0, 1.0, 0, 0]))  # carries the move on
    assert d.drift_pending is None and d.drift_pending_short is None
    assert d.long_weight == pytest.approx(2.0 * params.user_keep)  # acted: forgets faster
    # the divergence falling back drops a waiting detection whatever the event
    d.drift_pending, d.drift_pending_short = 0.9, d.short.copy()
    assert not observe_user(d, params, np.array([0, 1.0, 0, 0]))
    assert d.drift_pending is None and d.drift_pending_short is None


def test_a_wander_within_the_users_interest_is_not_a_switch() -> None:
    rng = np.random.default_rng(4)
    topics = np.eye(8)
    stable = topics[0] + 0.1 * rng.normal(size=(30, 8))
    # the same interest, leaning a little towards topic 1: the divergence rises, to about 0.1
    wander = topics[0] + 0.5 * topics[1] + 0.1 * rng.normal(size=(15, 8))
    eager = PageHinkleyParams(delta=0.01, threshold=0.05, min_instances=8)
    stream = np.vstack([stable, wander])
    assert _feed(UserState(), stream, DriftParams(user_detector=eager, user_min_divergence=0.0))
    assert _feed(UserState(), stream, DriftParams(user_detector=eager)) == []
    # a real switch goes past the floor and is confirmed
    switch = np.vstack([stable, topics[1] + 0.1 * rng.normal(size=(10, 8))])
    assert _feed(UserState(), switch, DriftParams(user_detector=eager))
