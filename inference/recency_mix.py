"""How much a domain's short-term interest should weigh in queries, learned from the stream.

A query reads each domain's interest as ``(1 - w) * long + w * short`` (``inference.blend``).
The offline fit chose ``w = 0`` (long-term means only), which is right while tastes hold still;
when many users' tastes move (a season, a trend, a catalogue change), the short-term interest
predicts their next item better, and a fixed ``w`` cannot know it. Every event is a label for
that question: before it was applied, the user's long-term mean ``m`` and short-term interest
``s`` in its domain predicted it as ``m + w (s - m)``; the least-squares ``w`` over recent events
is ``sum (v - m).(s - m) / sum |s - m|^2``. :class:`MixStats` keeps those two sums, decayed by a
forgetting factor, per domain and source partition (stored with the projections' statistics,
so a restart counts no event twice); :func:`solve_mix` pulls the estimate
towards the fitted weight while evidence is thin and clips it to ``[0, cap]``.

On the no-drift streams of ``xrec bench-drift`` (synthetic and real) the least-squares weight is
at or below zero, so queries are served as fitted once the stream has had its say (the served
weight reaches 0.15 on the way, while a few hundred events decide it); where many users switch
it rises, up to the cap (README, "Drift"). The user drift detector still acts per user on top
of it. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference.interest import UserState

# |s - m|^2 below this share of |m|^2 + |s|^2 (float32 rounding of equal vectors): the event
# says nothing about the weight
MIN_GAP = 1e-8


@dataclass(frozen=True)
class InterestBefore:
    """A user's long-term mean and short-term interest in one domain before an event."""

    long_mean: np.ndarray
    short: np.ndarray


def interest_before(state: UserState, domain: str) -> InterestBefore | None:
    """What the next event in ``domain`` can be predicted from (None: nothing to predict with).

    No copies: ``apply_event`` replaces the vectors instead of writing into them.
    """
    d = state.domains.get(domain)
    if d is None or not d.liked:
        return None
    return InterestBefore(d.mean(), d.short)


@dataclass(frozen=True)
class MixStats:
    """Decayed sums of one domain's events: ``cross`` of (v - m).(s - m), ``gram`` of |s - m|^2."""

    cross: float = 0.0
    gram: float = 0.0
    weight: float = 0.0  # decayed number of events

    def update(self, before: InterestBefore, vector: np.ndarray, forget: float) -> MixStats:
        """Fold in one event's item vector ``vector``; older events are multiplied by ``forget``.

        An event that cannot tell weights apart (short-term equal to long-term interest, as
        after a user's first item in a domain) or carries a non-finite value is left out
        (``self`` is returned): counted, it would only thin the prior's pull (see solve_mix).
        """
        m = np.asarray(before.long_mean, np.float64)
        s = np.asarray(before.short, np.float64)
        gap, miss = s - m, np.asarray(vector, np.float64) - m
        gram, cross = float(gap @ gap), float(miss @ gap)
        scale = float(m @ m) + float(s @ s)
        if not (math.isfinite(gram) and math.isfinite(cross) and gram > MIN_GAP * scale):
            return self
        return MixStats(
            forget * self.cross + cross, forget * self.gram + gram, forget * self.weight + 1
        )

    def __add__(self, other: MixStats) -> MixStats:
        return MixStats(
            self.cross + other.cross, self.gram + other.gram, self.weight + other.weight
        )

    def as_list(self) -> list[float]:
        """Compact form for the projection table."""
        return [self.cross, self.gram, self.weight]

    @classmethod
    def from_list(cls, v: Sequence[float]) -> MixStats:
        """Inverse of :meth:`as_list`."""
        return cls(float(v[0]), float(v[1]), float(v[2]))


def solve_mix(total: MixStats | None, prior: float, prior_events: float, cap: float) -> float:
    """The short-term weight to serve: least squares pulled towards ``prior``, in ``[0, cap]``.

    The pull is worth ``prior_events`` average events, so a handful of events cannot swing the
    weight, and a stream with thousands of them decides it.
    """
    if total is None or total.weight <= 0 or total.gram <= 0:
        return prior
    ridge = prior_events * total.gram / total.weight
    w = (total.cross + ridge * prior) / (total.gram + ridge)
    return float(min(cap, max(0.0, w)))
