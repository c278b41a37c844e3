"""Cross-domain projections: predict a user's target-domain interest from another domain's.

Users active in both domains give pairs (source-domain mean, target-domain mean) of their
interest states. A projection ``P`` is the ridge regression between them, pulled towards the
identity rather than towards zero: the item space is fitted jointly over all domains, so "the same
coordinates" is already a sensible transfer, and with little evidence the projection stays there.

Only the top ``rank`` coordinates of the item space (the strongest collaborative factors) take part
in a transfer; the weak ones carry within-domain detail that does not cross domains (measured on
Food→Kitchen: transfer peaks near rank 32 while own-domain scoring keeps improving up to 128+).

The fit is kept as sufficient statistics (``ProjectionStats``) so the worker can keep adapting a
projection online with a forgetting factor, using the same solve as the offline bootstrap.
Row-vector convention: ``projected = mean @ P``. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inference.errors import ConfigError

#: Decayed pairs below which statistics hold no evidence (retractions leave rounding behind).
EMPTY = 1e-6


@dataclass(frozen=True)
class ProjectionStats:
    """Decayed sufficient statistics of (source mean, target mean) pairs, top ``rank`` coords."""

    gram: np.ndarray  # [rank, rank] sum of w * z z^T
    cross: np.ndarray  # [rank, rank] sum of w * z m^T
    weight: float  # decayed number of pairs
    # -log of the forgetting applied so far: a pair folded at age a weighs exp(a - age) now
    age: float = 0.0

    @classmethod
    def empty(cls, rank: int) -> ProjectionStats:
        """Statistics with no evidence (the solve then returns the identity prior)."""
        return cls(np.zeros((rank, rank)), np.zeros((rank, rank)), 0.0)

    @classmethod
    def from_pairs(cls, source: np.ndarray, target: np.ndarray, rank: int) -> ProjectionStats:
        """Statistics of a batch of pairs (rows of ``source`` and ``target``)."""
        if source.shape != target.shape or source.ndim != 2:
            raise ConfigError("source and target means must be equal-shaped 2-D arrays")
        if not 1 <= rank <= source.shape[1]:
            raise ConfigError(f"projection rank must be in 1..{source.shape[1]}, got {rank}")
        z = np.asarray(source[:, :rank], dtype=np.float64)
        m = np.asarray(target[:, :rank], dtype=np.float64)
        return cls(z.T @ z, z.T @ m, float(len(z)))

    @property
    def rank(self) -> int:
        """Number of leading coordinates the projection acts on."""
        return int(self.gram.shape[0])

    def update(
        self, source: np.ndarray, target: np.ndarray, forget: float = 1.0, w: float = 1.0
    ) -> ProjectionStats:
        """Fold in one pair, its products weighted by ``w`` (how reliable it is; it still
        counts as one pair); older evidence is multiplied by ``forget`` (1 = never forget)."""
        if not 0.0 < forget <= 1.0:
            raise ConfigError(f"forgetting factor must be in (0, 1], got {forget}")
        z = np.asarray(source[: self.rank], dtype=np.float64)
        m = np.asarray(target[: self.rank], dtype=np.float64)
        if not (np.isfinite(z).all() and np.isfinite(m).all()):
            return self  # a NaN folded in would poison the statistics for good
        return ProjectionStats(
            forget * self.gram + w * np.outer(z, z),
            forget * self.cross + w * np.outer(z, m),
            forget * self.weight + 1.0,
            self.age - math.log(forget),
        )

    def retract(
        self, source: np.ndarray, target: np.ndarray, folded_at: float, w: float = 1.0
    ) -> ProjectionStats:
        """Take out a pair folded in (with weight ``w``) when the statistics were at age
        ``folded_at``, as much as the forgetting has left of it (how one user's newer pair
        replaces their older)."""
        if folded_at > self.age + 1e-9:
            return self  # folded into statistics newer than these (restored from before it)
        z = np.asarray(source[: self.rank], dtype=np.float64)
        m = np.asarray(target[: self.rank], dtype=np.float64)
        left = math.exp(folded_at - self.age)
        return ProjectionStats(
            self.gram - left * w * np.outer(z, z),
            self.cross - left * w * np.outer(z, m),
            max(0.0, self.weight - left),
            self.age,
        )

    def solve(self, l2: float, dim: int, prior: np.ndarray | None = None) -> np.ndarray:
        """The projection matrix [dim, dim]: ridge towards ``prior`` on the top ``rank``.

        ``prior`` defaults to the identity (the offline fit); the online refinement pulls towards
        the offline projection instead. ``l2`` is relative to the average eigenvalue of the Gram
        matrix, so its meaning does not change with the scale of the vectors or the number of pairs.
        """
        r = self.rank
        out = np.zeros((dim, dim), dtype=np.float64)
        pull = np.eye(r) if prior is None else np.asarray(prior, np.float64)[:r, :r]
        # below EMPTY every pair has been taken out again: what is left is rounding, no evidence
        scale = np.trace(self.gram) / r if self.weight > EMPTY else 0.0
        lam = l2 * scale
        if lam <= 0.0:
            out[:r, :r] = pull  # no evidence (or no pull): the prior
            return out
        # argmin ||Z P - M||^2 + lam ||P - prior||^2
        out[:r, :r] = np.linalg.solve(self.gram + lam * np.eye(r), self.cross + lam * pull)
        return out

    def __add__(self, other: ProjectionStats) -> ProjectionStats:
        # ages belong to one sequence of folds: a sum is only solved, never folded into
        return ProjectionStats(
            self.gram + other.gram, self.cross + other.cross, self.weight + other.weight
        )


def fit_projection(
    source_means: np.ndarray, target_means: np.ndarray, rank: int, l2: float
) -> np.ndarray:
    """Fit ``P`` [dim, dim] so that ``source_mean @ P`` predicts the target-domain mean."""
    stats = ProjectionStats.from_pairs(source_means, target_means, rank)
    return stats.solve(l2, source_means.shape[1])


def own_projection(dim: int, rank: int) -> np.ndarray:
    """The projection of a domain onto itself: identity on the top ``rank`` coordinates."""
    if not 1 <= rank <= dim:
        raise ConfigError(f"own-domain rank must be in 1..{dim}, got {rank}")
    out = np.zeros((dim, dim), dtype=np.float64)
    out[np.arange(rank), np.arange(rank)] = 1.0
    return out


def residual(source_mean: np.ndarray, target_mean: np.ndarray, projection: np.ndarray) -> float:
    """Squared prediction error of one pair (what a population drift detector watches)."""
    diff = source_mean @ projection - target_mean
    return float(diff @ diff)
