"""The optional diversity step: re-rank a query's nearest items so a list is not ten near-copies.

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
    if not 0.0 <= diversity < 1.0:
        raise ValueError(f"diversity must be in [0, 1), got {diversity}")
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    if features.shape[0] != n:
        raise ValueError(f"{n} scores but {features.shape[0]} feature rows")
    k = min(k, n)
    if k <= 0:
        return []
    order = np.argsort(-s, kind="stable")  # candidates by score: ties broken by position
    if diversity == 0.0:
        return order[:k].tolist()
    span = s.max() - s.min()
    relevance = (s - s.min()) / span if span > 0 else np.zeros(n)
    unit = unit_rows(features)[order]
    relevance = relevance[order]
    closest = np.full(n, -np.inf)  # each candidate's highest cosine to a picked one
    free = np.ones(n, dtype=bool)
    picked: list[int] = []
    for step in range(k):
        if step == 0:
            gain = relevance.copy()
        else:
            gain = (1.0 - diversity) * relevance - diversity * closest
        gain[~free] = -np.inf
        best = int(np.argmax(gain))  # first maximum: the better-scored of tied candidates
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, unit @ unit[best])
    return order[picked].tolist()


def list_similarity(features: np.ndarray) -> float:
    """Mean cosine over the distinct pairs of a list's items (1 = all alike); 0 below two."""
    n = features.shape[0]
    if n < 2:
        return 0.0
    unit = unit_rows(features)
    gram = unit @ unit.T
    return float((gram.sum() - np.trace(gram)) / (n * (n - 1)))
