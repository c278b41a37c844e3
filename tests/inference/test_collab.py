"""Collaborative item embeddings: linear algebra and recovery of a planted structure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from inference.collab import (
    CollabParams,
    fit_collab,
    interaction_matrix,
    multi_domain_rows,
    orthonormalise,
    randomized_svd,
)
from inference.errors import ConfigError
from tests.inference.planted_data import planted


def test_interaction_matrix_is_binary_and_checks_range() -> None:
    m = interaction_matrix([np.array([0, 2, 2]), np.array([1])], n_items=3)
    assert m.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]
    with pytest.raises(ConfigError):
        interaction_matrix([np.array([3])], n_items=3)


def test_multi_domain_rows_handles_empty_and_single_domain() -> None:
    doms = np.array(["a", "a", "b"])
    seqs = [np.array([0, 1]), np.array([1, 2]), np.array([], dtype=np.int64), np.array([2])]
    assert multi_domain_rows(seqs, doms).tolist() == [False, True, False, False]


def test_orthonormalise_gives_orthonormal_basis_of_same_span() -> None:
    rng = np.random.default_rng(0)
    block = rng.standard_normal((500, 12)) @ np.diag(np.logspace(0, 4, 12))  # ill-conditioned
    q = orthonormalise(block)
    np.testing.assert_allclose(q.T @ q, np.eye(12), atol=1e-8)
    # same column space: projecting the block onto q loses nothing
    np.testing.assert_allclose(q @ (q.T @ block), block, rtol=1e-6, atol=1e-6)


def test_randomized_svd_matches_dense_svd() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((300, 80)) < 0.05).astype(float) * rng.random((300, 80))
    values, right = randomized_svd(
        sp.csr_matrix(dense), 6, power_iterations=6, oversample=20, seed=0
    )
    _, exact, vt = np.linalg.svd(dense, full_matrices=False)
    np.testing.assert_allclose(values, exact[:6], rtol=1e-3)
    # singular vectors agree up to sign (signs are fixed deterministically, so compare |cos|)
    cos = np.abs((right * vt[:6].T).sum(axis=0))
    assert cos.min() > 0.99


def test_fit_is_deterministic_and_zero_for_untouched_items() -> None:
    data = planted()
    seqs = [s[s != 0] for s in data.sequences]  # item 0 never touched
    a = fit_collab(seqs, data.items.domains, CollabParams(dim=6))
    b = fit_collab(seqs, data.items.domains, CollabParams(dim=6))
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.counts[0] == 0 and not a.vectors[0].any()
    assert a.vectors.shape == (len(data.items.ids), 6)
    assert np.all(np.diff(a.singular_values) <= 0)


def test_planted_cross_domain_groups_are_recovered() -> None:
    data = planted(seed=3)
    fit = fit_collab(data.sequences, data.items.domains, CollabParams(dim=6))
    food, kitchen = data.domain_items("food"), data.domain_items("kitchen")
    v = fit.vectors / np.maximum(np.linalg.norm(fit.vectors, axis=1, keepdims=True), 1e-9)
    sim = v[food] @ v[kitchen].T
    nearest = kitchen[sim.argmax(axis=1)]
    agree = (data.item_cluster[nearest] == data.item_cluster[food]).mean()
    assert agree > 0.85, f"only {agree:.0%} of food items land next to their kitchen group"


def test_fit_rejects_bad_dimension() -> None:
    data = planted()
    with pytest.raises(ConfigError):
        fit_collab(data.sequences, data.items.domains, CollabParams(dim=0))
    # more factors than users: the SVD would return fewer than asked (zero singular values)
    with pytest.raises(ConfigError, match="needs at least as many users, got 3"):
        fit_collab(data.sequences[:3], data.items.domains, CollabParams(dim=4))
