"""Drift detection and online adaptation of interest migration.

Two levels, one standard detector (Page-Hinkley, "up" mode: a rise in the mean of a signal):

* **User drift** watches, per user and domain, the divergence ``1 - cos(short, long)`` between
  short-term interest (a fast EMA) and long-term interest (the decayed mean). A user whose taste
  moves sees it rise and stay up; a detection is confirmed by a later event of the user in the
  domain that keeps the divergence up (and at 0.2 at least) and agrees more with the short-term
  interest than with the long-term one (a new topic carries on; scattered off-topic events do
  not). Then the
  long-term interest forgets faster (its weight shrinks) and, for ``user_hold_events`` events,
  queries give the short-term interest more weight.
* **Population drift** watches the relative residual of the cross-domain projections on the
  pairs they are refined with (:mod:`inference.online_projection`). On detection the projections
  forget faster for ``pop_hold_updates`` updates, so the new relation replaces the old one.

Besides the detectors, one continuous adaptation: how much queries weigh short-term interest is
learned per domain from every event (:mod:`inference.recency_mix`), so when many users' tastes
move at once, every query follows recent behaviour more, detected or not.

The detector keeps four floats (and, while a detection awaits confirmation, the short-term
vector it saw), so a user's detector lives in their state (the users table) and survives
restarts with it. It is the same recurrence as ``river.drift.PageHinkley``
(``mode="up"``), checked against river in the tests; river is not needed at run time.
numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inference.errors import ConfigError
from inference.interest import DomainInterest


@dataclass(frozen=True)
class PageHinkleyParams:
    """``delta``: tolerated rise; ``threshold``: evidence needed; ``alpha``: memory (<= 1)."""

    delta: float
    threshold: float
    min_instances: int
    alpha: float = 1.0 - 1e-4

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.min_instances < 1 or not 0 < self.alpha <= 1:
            raise ConfigError(f"bad Page-Hinkley parameters: {self}")


@dataclass
class PageHinkley:
    """Page-Hinkley state: running mean of the signal and the cumulative rise above it."""

    n: int = 0
    mean: float = 0.0
    cum: float = 0.0
    cum_min: float = math.inf

    def update(self, x: float, p: PageHinkleyParams) -> bool:
        """Fold in one value; True on a detection (the state then starts over)."""
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.cum = p.alpha * self.cum + (x - self.mean) - p.delta
        self.cum_min = min(self.cum_min, self.cum)
        if self.n >= p.min_instances and self.cum - self.cum_min > p.threshold:
            self.n, self.mean, self.cum, self.cum_min = 0, 0.0, 0.0, math.inf
            return True
        return False

    def as_list(self) -> list[float]:
        """Compact form for the user state (JSON-safe: no infinities)."""
        return [self.n, self.mean, self.cum, self.cum_min if math.isfinite(self.cum_min) else 0.0]

    @classmethod
    def from_list(cls, v: list[float]) -> PageHinkley:
        """Inverse of :meth:`as_list`."""
        n = int(v[0])
        return cls(n, float(v[1]), float(v[2]), float(v[3]) if n else math.inf)


@dataclass(frozen=True)
class DriftParams:
    """How drift is detected and what a detection changes. ``adaptive=False`` turns it all off."""

    adaptive: bool = True
    # user level: divergence 1 - cos(short, long) in [0, 2]
    # threshold 0.4 with the confirmation below, 0.6 without it: the same recovery after a
    # switch on synthetic seeds 0-2 (6, 6, 5 events) with no false alarm on their no-drift
    # streams (2 with the next-event check alone, 8 acting at once; README, drift "User false
    # alarms")
    user_detector: PageHinkleyParams = PageHinkleyParams(delta=0.05, threshold=0.4, min_instances=8)
    # a user detection acts only once a later event in the domain confirms it: the divergence
    # has not fallen (it falls back after a burst of off-topic events) and the event agrees more
    # with the short-term interest than with the long-term one by more than user_coherence
    # (coherence(); scattered off-topic events do not). An event that keeps the divergence up
    # but does not agree leaves the detection waiting; -2 turns the agreement check off.
    user_confirm: bool = True
    user_coherence: float = 0.0
    # ... and the divergence at that event has reached this: a rise that leaves short- and
    # long-term interest this close (cos > 0.8) is a wander within the user's interests, not a
    # new one (Page-Hinkley sees rises, not levels)
    user_min_divergence: float = 0.2
    user_hold_events: int = 20  # events with the boosted short-term weight after a detection
    user_short_weight: float = 0.9  # short-term weight in queries while a user drifts
    user_keep: float = 0.01  # long-term weight kept at a detection (faster forgetting)
    # population level: relative residual per refining pair, capped at 1 (worse than predicting
    # nothing), so one odd pair cannot count as a trend
    pop_detector: PageHinkleyParams = PageHinkleyParams(
        delta=0.15, threshold=40.0, min_instances=200
    )
    pop_forget: float = 0.9995  # projection forgetting factor per pair, normally
    pop_forget_drift: float = 0.99  # ... while the population drifts
    pop_hold_updates: int = 500  # pairs folded with the fast forgetting after a detection
    pop_l2: float = 0.25  # pull of the online projection towards the bundle's (relative)
    # population level, continuous: the short-term interest's weight in queries, learned per
    # domain from every event (inference.recency_mix); it forgets per event, like the projections
    online_mix: bool = True
    mix_forget: float = 0.999
    mix_prior_events: float = 200.0  # pull towards the fitted weight, in events
    mix_max: float = 0.8  # below user_short_weight (0.9), so a user detection still adds to it

    def __post_init__(self) -> None:
        for name in ("pop_forget", "pop_forget_drift", "mix_forget"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 <= self.user_short_weight <= 1 or not 0 < self.user_keep <= 1:
            raise ConfigError("user_short_weight must be in [0, 1] and user_keep in (0, 1]")
        if not 0 <= self.mix_max <= 1 or self.mix_prior_events < 0:
            raise ConfigError("mix_max must be in [0, 1] and mix_prior_events >= 0")


def divergence(short: np.ndarray | None, long_mean: np.ndarray) -> float | None:
    """``1 - cos(short, long)``; None while either is still empty."""
    if short is None:
        return None
    a, b = float(np.linalg.norm(short)), float(np.linalg.norm(long_mean))
    if a == 0.0 or b == 0.0:
        return None
    return 1.0 - float(short @ long_mean) / (a * b)


def relative_residual(predicted: np.ndarray, target: np.ndarray) -> float:
    """``|predicted - target|^2 / |target|^2``: scale-free, so one detector fits every pair."""
    t = float(target @ target)
    if t == 0.0:
        return 0.0
    d = predicted - target
    return float(d @ d) / t


def coherence(d: DomainInterest, vector: np.ndarray | None) -> float | None:
    """How much more an event agrees with a pending detection's short-term interest than with
    the long-term one: ``cos(v, short then) - cos(v, long)``.

    Positive when the event carries on the change (a new topic), about zero or negative for a
    scattered off-topic event; None without an event vector or a kept short-term vector (a skip,
    or a state saved before the short-term vector was kept).
    """
    if vector is None or d.drift_pending_short is None:
        return None
    vector = np.asarray(vector, np.float32)
    v = float(np.linalg.norm(vector))
    s, m = d.drift_pending_short, d.mean()
    ns, nm = float(np.linalg.norm(s)), float(np.linalg.norm(m))
    if v == 0.0 or ns == 0.0 or nm == 0.0:
        return None
    return float(vector @ s) / (v * ns) - float(vector @ m) / (v * nm)


def observe_user(d: DomainInterest, params: DriftParams, vector: np.ndarray | None = None) -> bool:
    """After an event in domain ``d``: update its detector; True on a user drift detection.

    A detection shrinks the long-term interest's weight to ``user_keep`` (what came before the
    change fades fast) and starts ``user_hold_events`` events of short-term-weighted queries.
    With ``user_confirm`` it waits for a later event in the domain: a fall of the divergence
    drops the detection (a passing burst), an event that carries the change on (``coherence``
    above ``user_coherence``) with the divergence at ``user_min_divergence`` or more confirms
    it, anything else keeps it waiting. ``vector`` is what this event added to the short-term
    interest (None when nothing: the divergence alone then decides).
    """
    if not params.adaptive:
        return False
    d.drift_left = max(0, d.drift_left - 1)
    x = divergence(d.short, d.mean())
    if x is None:
        return False
    confirmed = False
    if d.drift_pending is not None:
        c = coherence(d, vector)
        held = x >= d.drift_pending
        far = x >= params.user_min_divergence
        confirmed = held and far and (c is None or c > params.user_coherence)
        if confirmed or not held:
            d.drift_pending, d.drift_pending_short = None, None
    ph = PageHinkley.from_list(d.drift_ph) if d.drift_ph else PageHinkley()
    if ph.update(x, params.user_detector):
        if params.user_confirm:
            d.drift_pending = x
            d.drift_pending_short = None if d.short is None else d.short.copy()
        else:
            confirmed = True
    d.drift_ph = ph.as_list()
    if confirmed:
        d.long_sum = d.long_sum * params.user_keep
        d.long_weight *= params.user_keep
        d.drift_left = params.user_hold_events
    return confirmed
