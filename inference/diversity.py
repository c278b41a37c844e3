"""The optional diversity step: re-rank a query's nearest items so a list is not all alike.

Maximal marginal relevance (Carbonell & Goldstein, 1998), greedy: each next item maximises
``(1 - diversity) * relevance - diversity * (its highest cosine to an item already picked)``.
Relevance is the engine's score rescaled to [0, 1] over the candidates, so ``diversity`` trades
the same units whatever the model's score scale (dot products with a popularity term in the
bundle's space, cosines in the text space). ``diversity = 0`` keeps the engine's order exactly.

Similarity is read on what a user's interest is built from (the model's item input vectors),
not on the ranking vector, whose popularity coordinate would make popular items look alike.
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(features: np.ndarray) -> np.ndarray:
    """``features`` with every row scaled to unit length (zero rows stay zero)."""
    x = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def mmr(scores: np.ndarray, features: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of ``k`` candidates in recommended order (maximal marginal relevance).

    ``scores``: the candidates' relevance (higher is better), ``features``: one row per
    candidate, compared by cosine. Ties go to the better-scored candidate, so with
    ``diversity = 0`` the result is the candidates sorted by score.
    """
    scores = np.asarray(scores)
    if features.shape[0] != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} scores but {features.shape[0]} feature rows")
    only = [(scores, np.arange(scores.shape[0]))]
    return mmr_batch(only, unit_rows(features), k, diversity)[0]


def mmr_batch(
    lists: Sequence[tuple[np.ndarray, np.ndarray]],
    unit: np.ndarray,
    k: int,
    diversity: float,
) -> list[list[int]]:
    """:func:`mmr` of many lists at once (a micro-batch's queries), in numpy, not per list.

    Each list is (its candidates' scores, their rows in ``unit``: features already scaled to
    unit length by :func:`unit_rows`); lists may share rows (an item that is a candidate of
    many queries is fetched and normalised once). Returns each list's picks as positions in
    that list.
    """
    if not 0.0 <= diversity < 1.0:
        raise ValueError(f"diversity must be in [0, 1), got {diversity}")
    width = max((len(s) for s, _ in lists), default=0)
    if width == 0 or k <= 0:
        return [[] for _ in lists]
    b = len(lists)
    score = np.full((b, width), -np.inf)
    rows = np.zeros((b, width), dtype=np.int64)
    for i, (s, r) in enumerate(lists):
        score[i, : len(s)], rows[i, : len(r)] = s, r
    sizes = np.array([len(s) for s, _ in lists])
    # candidates by score, padding last; ties broken by position
    order = np.argsort(-score, axis=1, kind="stable")
    take = np.minimum(sizes, k)
    if diversity == 0.0:
        return [order[i, : take[i]].tolist() for i in range(b)]
    score = np.take_along_axis(score, order, axis=1)
    valid = np.arange(width)[None, :] < sizes[:, None]
    low = np.where(valid, score, np.inf).min(axis=1, keepdims=True)
    span = score[:, :1] - low  # the best minus the worst
    relevance = np.where(span > 0, (score - low) / np.where(span > 0, span, 1.0), 0.0)
    cand = unit[np.take_along_axis(rows, order, axis=1)]  # [b, width, dim]
    closest = np.full((b, width), -np.inf)  # each candidate's highest cosine to a picked one
    free = valid.copy()
    picked = np.zeros((b, min(k, width)), dtype=np.int64)
    everyone = np.arange(b)
    for step in range(picked.shape[1]):
        if step == 0:
            gain = relevance.copy()
        else:
            gain = (1.0 - diversity) * relevance - diversity * closest
        gain[~free] = -np.inf
        best = np.argmax(gain, axis=1)  # first maximum: the better-scored of tied candidates
        picked[:, step] = best
        free[everyone, best] = False
        cos = np.einsum("bcd,bd->bc", cand, cand[everyone, best])
        closest = np.maximum(closest, cos)
    return [order[i, picked[i, : take[i]]].tolist() for i in range(b)]


def list_similarity(features: np.ndarray) -> float:
    """Mean cosine over the distinct pairs of a list's items (1 = all alike); 0 below two."""
    n = features.shape[0]
    if n < 2:
        return 0.0
    unit = unit_rows(features)
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))
