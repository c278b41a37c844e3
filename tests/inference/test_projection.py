"""Cross-domain projections: planted maps are recovered; the prior and online updates behave."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import ConfigError
from inference.projection import (
    ProjectionStats,
    fit_projection,
    own_projection,
    residual,
)


def _pairs(n: int = 2000, dim: int = 8, rank: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, dim))
    a = rng.standard_normal((rank, rank)) * 0.5 + np.eye(rank)
    m = np.zeros((n, dim))
    m[:, :rank] = z[:, :rank] @ a
    m += 0.01 * rng.standard_normal(m.shape)
    return z, m, a


def test_planted_map_is_recovered_on_top_rank() -> None:
    z, m, a = _pairs()
    p = fit_projection(z, m, rank=4, l2=1e-6)
    np.testing.assert_allclose(p[:4, :4], a, atol=0.01)
    assert not p[4:].any() and not p[:, 4:].any()  # weak coordinates do not transfer


def test_strong_prior_and_no_evidence_give_identity() -> None:
    z, m, _ = _pairs()
    np.testing.assert_allclose(fit_projection(z, m, rank=4, l2=1e9)[:4, :4], np.eye(4), atol=1e-6)
    empty = ProjectionStats.empty(3).solve(l2=1.0, dim=5)
    np.testing.assert_array_equal(empty, own_projection(5, 3))


def test_l2_is_scale_free() -> None:
    z, m, _ = _pairs()
    p1 = fit_projection(z, m, rank=4, l2=0.5)
    p2 = fit_projection(10 * z, 10 * m, rank=4, l2=0.5)
    np.testing.assert_allclose(p1, p2, atol=1e-9)


def test_online_updates_match_batch_and_forget() -> None:
    z, m, _ = _pairs(n=50)
    online = ProjectionStats.empty(4)
    for a, b in zip(z, m, strict=True):
        online = online.update(a, b)
    batch = ProjectionStats.from_pairs(z, m, rank=4)
    np.testing.assert_allclose(online.gram, batch.gram)
    np.testing.assert_allclose(online.cross, batch.cross)
    assert online.weight == 50
    decayed = online.update(z[0], m[0], forget=0.5)
    assert decayed.weight == pytest.approx(26.0)
    with pytest.raises(ConfigError):
        online.update(z[0], m[0], forget=0.0)


def test_online_projection_tracks_a_drifted_map() -> None:
    rng = np.random.default_rng(4)
    stats = ProjectionStats.empty(2)
    old, new = np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])
    for step in range(600):
        z = rng.standard_normal(2)
        stats = stats.update(z, z @ (old if step < 300 else new), forget=0.97)
    np.testing.assert_allclose(stats.solve(l2=1e-6, dim=2), new, atol=1e-3)


def test_own_projection_and_residual() -> None:
    p = own_projection(4, 2)
    assert np.diag(p).tolist() == [1, 1, 0, 0]
    assert residual(np.ones(4), np.array([1.0, 1.0, 0.0, 2.0]), p) == pytest.approx(4.0)
    with pytest.raises(ConfigError):
        own_projection(4, 5)
    with pytest.raises(ConfigError):
        fit_projection(np.ones((3, 4)), np.ones((3, 4)), rank=0, l2=1.0)


def test_a_non_finite_pair_is_not_folded() -> None:
    z, m, _ = _pairs(n=5)
    stats = ProjectionStats.from_pairs(z, m, rank=4)
    bad = z[0].copy()
    bad[0] = np.inf
    assert stats.update(bad, m[0]) is stats
    assert stats.update(z[0], np.full_like(m[0], np.nan), forget=0.5) is stats


def test_statistics_whose_pairs_were_all_taken_out_give_the_prior() -> None:
    z, m, _ = _pairs(n=3, seed=3)
    prior = np.diag([2.0, 1.0, 1.0, 1.0])
    stats, ages = ProjectionStats.empty(4), []
    for k in range(3):
        stats = stats.update(z[k], m[k], 0.8)
        ages.append(stats.age)
    for k in range(3):
        stats = stats.retract(z[k], m[k], ages[k])
    assert 0 < stats.weight < 1e-9  # rounding is all that is left
    np.testing.assert_allclose(stats.solve(0.1, 8, prior)[:4, :4], prior)
