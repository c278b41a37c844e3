"""Collaborative item embeddings fitted from interaction sequences (offline bootstrap).

A truncated SVD of the user×item matrix (PureSVD), with two twists that the Food→Kitchen data
asked for:

* columns are scaled by ``count ** -pop_exponent`` before the factorisation, so the factors are
  not all spent on the few blockbuster items (without it the top factors are just popularity);
* rows of users active in more than one domain are weighted up (``link_weight``): they are the
  only rows that tie the domains together, and they are a small minority (7.5k of 51k here).

The right singular vectors are the item embeddings; they nest (the first r columns of a rank-k fit
are the rank-r fit), which lets a projection use only the top of the spectrum while own-domain
scoring uses all of it. Fitting needs scipy (sparse products); using the result needs numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular

from inference.errors import ConfigError


@dataclass(frozen=True)
class CollabParams:
    """Hyper-parameters of the collaborative factorisation."""

    dim: int = 128
    pop_exponent: float = 0.3
    link_weight: float = 3.0
    power_iterations: int = 5
    oversample: int = 16
    seed: int = 0


@dataclass(frozen=True)
class CollabEmbedding:
    """Item factors of a fitted collaborative model."""

    vectors: np.ndarray  # [n_items, dim] float32, orthonormal columns (right singular vectors)
    singular_values: np.ndarray  # [dim], descending
    counts: np.ndarray  # [n_items] number of users who touched each item

    @property
    def dim(self) -> int:
        """Number of factors."""
        return int(self.vectors.shape[1])


def interaction_matrix(
    sequences: Sequence[Sequence[int]], n_items: int, row_weights: np.ndarray | None = None
) -> sp.csr_matrix:
    """Binary user×item matrix (a repeated item counts once), optionally row-weighted."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    cols = (
        np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
        if len(sequences)
        else np.zeros(0, dtype=np.int64)
    )
    if cols.size and (cols.min() < 0 or cols.max() >= n_items):
        raise ConfigError(f"item index out of range 0..{n_items - 1} in the sequences")
    rows = np.repeat(np.arange(len(sequences)), lengths)
    m = sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float64), (rows, cols)), shape=(len(sequences), n_items)
    )
    m.data[:] = 1.0  # duplicates were summed by the constructor: binarise
    if row_weights is not None:
        m = sp.diags(np.asarray(row_weights, dtype=np.float64)) @ m
    return m.tocsr()


def multi_domain_rows(sequences: Sequence[Sequence[int]], item_domains: np.ndarray) -> np.ndarray:
    """Boolean mask of the users whose sequence touches more than one domain."""
    codes = np.unique(item_domains, return_inverse=True)[1]
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if not lengths.sum():
        return np.zeros(len(sequences), dtype=bool)
    flat = codes[np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nonempty = lengths > 0
    lo = np.zeros(len(sequences), dtype=np.int64)
    hi = np.zeros(len(sequences), dtype=np.int64)
    lo[nonempty] = np.minimum.reduceat(flat, starts[nonempty])
    hi[nonempty] = np.maximum.reduceat(flat, starts[nonempty])
    return hi != lo


def orthonormalise(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the columns of a tall ``block`` (Cholesky-QR, applied twice).

    Householder QR of a 50k×150 block takes seconds on a small CPU and ran 22 times per fit;
    Cholesky-QR is two small products, and the second pass restores the orthogonality the
    first loses when the block is ill-conditioned.
    """
    q = block
    for _ in range(2):
        gram = q.T @ q
        jitter = 1e-12 * max(float(np.trace(gram)), 1e-300) / gram.shape[0]
        factor = np.linalg.cholesky(gram + jitter * np.eye(gram.shape[0]))
        q = solve_triangular(factor, q.T, lower=True, check_finite=False).T  # q @ inv(L).T
    return q


def randomized_svd(
    matrix: sp.spmatrix, rank: int, power_iterations: int, oversample: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``rank`` singular values and right singular vectors of a sparse matrix.

    Halko-Martinsson-Tropp with QR-normalised power iterations; deterministic for a seed.
    """
    n_rows, n_cols = matrix.shape
    width = min(rank + oversample, min(n_rows, n_cols))
    rng = np.random.default_rng(seed)
    basis = orthonormalise(matrix @ rng.standard_normal((n_cols, width)))
    for _ in range(power_iterations):
        # re-orthonormalise after each half step: without it the small directions drown in
        # rounding error once the spectrum decays
        basis = orthonormalise(matrix.T @ basis)
        basis = orthonormalise(matrix @ basis)
    small = (matrix.T @ basis).T  # [width, n_cols]
    _, values, right = np.linalg.svd(small, full_matrices=False)
    right = right[:rank].T
    # fix each vector's sign so that refits on the same data agree exactly
    signs = np.sign(right[np.abs(right).argmax(axis=0), np.arange(right.shape[1])])
    return values[:rank], right * np.where(signs == 0, 1.0, signs)


def fit_collab(
    sequences: Sequence[Sequence[int]],
    item_domains: np.ndarray,
    params: CollabParams = CollabParams(),
) -> CollabEmbedding:
    """Fit item embeddings from interaction sequences (item indices into ``item_domains``)."""
    n_items = len(item_domains)
    if params.dim < 1 or params.dim >= n_items:
        raise ConfigError(f"collab dim must be in 1..{n_items - 1}, got {params.dim}")
    if params.dim > len(sequences):
        # the interaction matrix has rank <= its rows: asked for more, the SVD would hand
        # back fewer factors than the bundle declares
        raise ConfigError(
            f"collab dim {params.dim} needs at least as many users, got {len(sequences)}: "
            "lower the dim or fit on more history"
        )
    binary = interaction_matrix(sequences, n_items)
    counts = np.asarray(binary.sum(axis=0)).ravel()
    row_w = np.where(multi_domain_rows(sequences, item_domains), params.link_weight, 1.0)
    col_w = np.maximum(counts, 1.0) ** -params.pop_exponent
    scaled = (sp.diags(row_w) @ binary @ sp.diags(col_w)).tocsr()
    values, vectors = randomized_svd(
        scaled, params.dim, params.power_iterations, params.oversample, params.seed
    )
    # items nobody touched get an exact zero vector rather than numerical noise
    vectors[counts == 0] = 0.0
    return CollabEmbedding(
        vectors=vectors.astype(np.float32),
        singular_values=values.astype(np.float32),
        counts=counts.astype(np.int64),
    )
