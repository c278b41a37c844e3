"""The short-term weight of queries, learned online (inference.recency_mix, online_projection)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift_bench import fit_world_bundle
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.interest import UserState
from inference.online_projection import OnlineProjections, PartitionStats
from inference.recency_mix import InterestBefore, MixStats, interest_before, solve_mix
from synth.drift import SOURCE, TARGET, DriftWorld
from tests.fixtures.switching import purchase, teach_switches

DIM = 16


def _fold(true_w: float, n: int, seed: int = 0, forget: float = 1.0) -> MixStats:
    """Events whose item lies ``true_w`` of the way from the long- to the short-term interest."""
    rng = np.random.default_rng(seed)
    stats = MixStats()
    for _ in range(n):
        m, s = rng.normal(size=DIM), rng.normal(size=DIM)
        v = m + true_w * (s - m) + 0.3 * rng.normal(size=DIM)
        stats = stats.update(InterestBefore(m, s), v, forget)
    return stats


@pytest.mark.parametrize("true_w", [0.2, 0.6])
def test_least_squares_finds_the_weight_that_predicts_the_next_item(true_w: float) -> None:
    stats = _fold(true_w, 2000)
    free = solve_mix(stats, prior=0.0, prior_events=0, cap=1.0)
    assert free == pytest.approx(true_w, abs=0.03)
    # the prior is worth 200 events: with 2,000 it pulls the estimate 1/11 of the way to 0
    pulled = solve_mix(stats, prior=0.0, prior_events=200, cap=1.0)
    assert pulled == pytest.approx(free * 2000 / 2200, rel=1e-9)


def test_events_that_cannot_tell_weights_apart_are_left_out() -> None:
    stats = _fold(0.6, 50)
    v = np.ones(DIM)
    same = InterestBefore(v, v.copy())  # after a user's first item: short == long
    assert stats.update(same, 2 * v, 0.999) is stats
    nan = InterestBefore(v, np.full(DIM, np.nan))
    assert stats.update(nan, v, 0.999) is stats
    # counted, they would thin the prior's pull: the estimate would move for no evidence
    assert solve_mix(stats, 0.0, 200, 1.0) == pytest.approx(0.6 * 50 / 250, abs=0.05)


def test_the_weight_is_clipped_and_thin_evidence_keeps_the_prior() -> None:
    assert solve_mix(_fold(-0.5, 500), 0.0, 0, 1.0) == 0.0  # never extrapolate away from short
    assert solve_mix(_fold(1.4, 500), 0.0, 0, 0.8) == 0.8
    assert solve_mix(None, 0.3, 200, 0.8) == 0.3
    assert solve_mix(_fold(0.9, 3), 0.0, 200, 1.0) < 0.1  # three events barely move it


def test_forgetting_lets_a_new_regime_replace_the_old_one() -> None:
    def regimes(forget: float) -> MixStats:
        stats = _fold(0.0, 3000, forget=forget)
        rng = np.random.default_rng(9)
        for _ in range(4000):
            m, s = rng.normal(size=DIM), rng.normal(size=DIM)
            stats = stats.update(InterestBefore(m, s), m + 0.7 * (s - m), forget)
        return stats

    forgetting, remembering = regimes(0.999), regimes(1.0)
    assert forgetting.weight == pytest.approx(sum(0.999**k for k in range(7000)), rel=1e-9)
    # about 1,000 events of memory: the old regime is gone, the prior still pulls by ~1/6
    assert 0.5 < solve_mix(forgetting, 0.0, 200, 1.0) < 0.7
    assert solve_mix(remembering, 0.0, 200, 1.0) < 0.45  # the old regime's 3,000 still count


def test_interest_before_is_unchanged_by_the_event_it_predicts() -> None:
    st = UserState()
    assert interest_before(st, "books") is None  # nothing known: nothing to learn from
    purchase(st, 0, "books", np.ones(DIM, np.float32))
    before = interest_before(st, "books")
    long_mean, short = before.long_mean.copy(), before.short.copy()
    purchase(st, 1, "books", -np.ones(DIM, np.float32))
    np.testing.assert_array_equal(before.long_mean, long_mean)
    np.testing.assert_array_equal(before.short, short)


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def test_switching_users_raise_the_weight_which_survives_a_restart_exactly_once(bundle) -> None:
    online = OnlineProjections(bundle, DriftParams())
    assert online.short_weight(TARGET, 0.0) == 0.0  # no evidence yet: as fitted
    end = teach_switches(bundle, online, users=40)
    learned = online.short_weight(TARGET, 0.0)
    assert 0.2 < learned <= DriftParams().mix_max
    assert online.version == online.updates + online.mix_updates > online.updates

    again = OnlineProjections(bundle, DriftParams())
    again.restore(0, online.dumps(0))
    assert again.short_weight(TARGET, 0.0) == pytest.approx(learned, rel=1e-9)
    teach_switches(bundle, again, users=40)  # the same offsets again: a replay after a crash
    assert again.mix_updates == 0 and again.short_weight(TARGET, 0.0) == pytest.approx(learned)
    teach_switches(bundle, again, users=1, start=end)
    assert again.mix_updates > 0


def test_without_online_mix_or_adaptation_queries_keep_the_fitted_weight(bundle) -> None:
    off = OnlineProjections(bundle, DriftParams(online_mix=False))
    teach_switches(bundle, off, users=10)
    assert off.mix_updates == 0 and off.short_weight(TARGET, 0.25) == 0.25
    static = OnlineProjections(bundle, DriftParams(adaptive=False))
    assert static.short_weight(TARGET, 0.0) == 0.0
    # statistics stored before the weight was learned carry no mix sums: they still load
    old = PartitionStats(offset=7, space=bundle.version)
    assert PartitionStats.loads(old.dumps()).mix == {}


def test_queries_follow_the_learned_weight(bundle) -> None:
    adaptive, fixed = BundleModel(bundle), BundleModel(bundle, drift=DriftParams(online_mix=False))
    for model in (adaptive, fixed):
        teach_switches(bundle, model.online, users=40)
    assert adaptive.short_weight_of(TARGET) > 0.2 and fixed.short_weight_of(TARGET) == 0.0
    st = UserState()
    for k in range(12):  # long-term: topic 0; the last three: topic 5
        topic = 0 if k < 9 else 5
        item = f"{TARGET}-{topic}-{k}"
        purchase(st, k, TARGET, bundle.inputs[bundle.index_of(item)])
    new = bundle.outputs[bundle.index_of(f"{TARGET}-5-0")]
    # the learned weight pulls the query towards what the user bought last
    q, as_fitted = adaptive.query(st, TARGET), fixed.query(st, TARGET)
    assert q.vector[: len(new)] @ new > as_fitted.vector[: len(new)] @ new
    # and gives that share of the list to the short-term interest's own query, which points
    # there more than the blend; as fitted (weight 0) the list is the blend's alone
    assert q.short_share == adaptive.short_weight_of(TARGET) and as_fitted.short_share == 0.0
    short = adaptive.short_term_query(st, TARGET)
    assert short[: len(new)] @ new > q.vector[: len(new)] @ new


def test_a_revoked_partition_is_forgotten_and_read_again_from_its_bytes(bundle) -> None:
    online = OnlineProjections(bundle, DriftParams())
    teach_switches(bundle, online, users=40)
    learned, projection = online.short_weight(TARGET, 0.0), online.projection(SOURCE, TARGET)
    stored = online.dumps(0)
    online.forget({0, 5})  # 5 was never seen here: nothing to drop
    assert 0 not in online.parts and online.short_weight(TARGET, 0.0) == 0.0
    np.testing.assert_array_equal(
        online.projection(SOURCE, TARGET), bundle.projection(SOURCE, TARGET)
    )
    online.restore(0, stored)  # the partition comes back: the table's copy, not a stale one
    assert online.short_weight(TARGET, 0.0) == pytest.approx(learned, rel=1e-9)
    np.testing.assert_allclose(online.projection(SOURCE, TARGET), projection, rtol=1e-6)
