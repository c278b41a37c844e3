"""Per-user migration: one target-domain query vector from a user's per-domain interest.

The worker keeps, per user and domain, a recency-decayed mean of the *input* vectors of the items
the user touched there (:func:`summarise` is the reference computation) and an event count. For a
target domain the query is a confidence-weighted blend:

    q = c_own * (own mean @ P[t->t]) + (1 - c_own) * sum_s share_s * gain * (mean_s @ P[s->t])
    q_pop = pop_weight

with ``c_own = n_t / (n_t + own_prior)`` and ``share_s`` the source's share of the user's events
outside the target domain. Items are ranked by ``q · output_vector`` where the last output
coordinate is the item's log-popularity, so popularity is one more dot-product term and a user
known nowhere falls back to pure popularity. The blend weights come from the bundle, fitted on
evidence, not hard-coded here. numpy only: this runs in the streaming worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from inference.errors import ModelError

if TYPE_CHECKING:
    from inference.bundle import ModelBundle


class Strategy:
    """How a query was formed (reported with every recommendation)."""

    OWN = "own"  # only the user's own target-domain interest
    TRANSFER = "transfer"  # only projections of other domains' interest
    BLEND = "blend"  # both
    POPULAR = "popular"  # the user is known nowhere: popularity alone


@dataclass(frozen=True)
class DomainSummary:
    """A user's interest in one domain: decayed mean of item input vectors, and event count."""

    mean: np.ndarray
    count: int


@dataclass(frozen=True)
class Explanation:
    """Which domains produced a query, with what weight, and how."""

    strategy: str
    weights: Mapping[str, float] = field(default_factory=dict)
    popularity: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the recommendation event."""
        return {
            "strategy": self.strategy,
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
            "popularity": round(self.popularity, 4),
        }


def decay_factor(half_life_events: float) -> float:
    """Per-event multiplier of older evidence; a half-life of 0 or inf means no decay."""
    if half_life_events <= 0 or math.isinf(half_life_events):
        return 1.0
    return 0.5 ** (1.0 / half_life_events)


def summarise(item_input_vectors: np.ndarray, half_life_events: float) -> DomainSummary:
    """Decayed mean of item input vectors given in sequence order (oldest first).

    The same result as folding events one at a time into ``sum = d * sum + v`` and
    ``weight = d * weight + 1`` with ``d = decay_factor(half_life_events)`` and taking
    ``sum / weight`` — the form the worker keeps incrementally.
    """
    vectors = np.atleast_2d(np.asarray(item_input_vectors, dtype=np.float64))
    n = vectors.shape[0] if np.asarray(item_input_vectors).size else 0
    if n == 0:
        width = vectors.shape[1] if vectors.ndim == 2 else 0
        return DomainSummary(mean=np.zeros(width, dtype=np.float32), count=0)
    d = decay_factor(half_life_events)
    w = d ** np.arange(n - 1, -1, -1, dtype=np.float64)  # newest event has weight 1
    mean = (w[:, None] * vectors).sum(axis=0) / w.sum()
    return DomainSummary(mean=mean.astype(np.float32), count=n)


def domain_summaries(
    sequence: Sequence[int] | np.ndarray,
    item_domains: np.ndarray,
    inputs: np.ndarray,
    half_life_events: float,
) -> dict[str, DomainSummary]:
    """A user's per-domain interest after a sequence of item rows (``inputs``' row indices)."""
    seq = np.asarray(sequence, dtype=np.int64)
    doms = item_domains[seq]
    return {str(d): summarise(inputs[seq[doms == d]], half_life_events) for d in np.unique(doms)}


def query_vector(
    states: Mapping[str, DomainSummary],
    target: str,
    bundle: ModelBundle,
    projection: Callable[[str, str], np.ndarray] | None = None,
) -> tuple[np.ndarray, Explanation]:
    """The target-domain query (length ``bundle.output_dim``) and how it was formed.

    ``projection(source, target)`` overrides the bundle's projections (the online ones).
    """
    project = projection or bundle.projection
    if target not in bundle.domains:
        raise ModelError(f"the bundle has no domain {target!r} (it has {bundle.domains})")
    params = bundle.params
    dim = bundle.input_dim
    q = np.zeros(bundle.output_dim, dtype=np.float64)
    own = states.get(target)
    n_own = own.count if own is not None else 0
    sources = {
        name: s
        for name, s in states.items()
        if name != target and s.count > 0 and bundle.has_projection(name, target)
    }
    n_other = sum(s.count for s in sources.values())
    if n_own == 0 and n_other == 0:
        q[dim] = 1.0  # known nowhere: rank by popularity alone
        return q.astype(np.float32), Explanation(Strategy.POPULAR, {}, 1.0)

    weights: dict[str, float] = {}
    c_own = 0.0
    if own is not None and n_own > 0:
        c_own = n_own / (n_own + params.own_prior) if n_other else 1.0
        weights[target] = c_own
        q[:dim] += c_own * (_checked(own.mean, dim) @ project(target, target))
    for name, s in sources.items():
        w = (1.0 - c_own) * s.count / n_other
        weights[name] = w
        q[:dim] += w * params.transfer_gain * (_checked(s.mean, dim) @ project(name, target))
    q[dim] = params.pop_weight
    strategy = Strategy.BLEND if n_own and n_other else Strategy.OWN if n_own else Strategy.TRANSFER
    return q.astype(np.float32), Explanation(strategy, weights, params.pop_weight)


def _checked(mean: np.ndarray, dim: int) -> np.ndarray:
    vec = np.asarray(mean, dtype=np.float64)
    if vec.shape != (dim,):
        raise ModelError(
            f"interest vector has shape {vec.shape}, the bundle's input space is ({dim},): "
            "the state was built with another bundle; rebuild it or reload the matching bundle"
        )
    return vec
