"""Per-user interest state: updated incrementally, one event at a time, idempotently.

A user's state holds, for each domain they touched, a long-term interest vector (a recency- and
action-weighted mean of the vectors of what they touched), a short-term one (a fast EMA), counts,
the last event time and a bounded window of consumed items. Events are applied at most once:
the state remembers the broker offset of the last applied event per partition (replays after a
crash are skipped) and a short window of event ids (producer retries are skipped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ACTION_WEIGHTS: Mapping[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "cart": 2.0,
    "purchase": 3.0,
    "review": 2.0,
    "search": 1.0,
    "skip": -0.5,
    "dislike": -2.0,
}


@dataclass(frozen=True)
class InterestParams:
    """How events move interest. Half-lives are in events and in seconds of event time."""

    half_life_events: float = 50.0
    half_life_s: float = 30 * 86_400.0
    short_alpha: float = 0.3
    recent_items: int = 200
    event_id_window: int = 32

    def weight(self, action: str, rating: float | None) -> float:
        """Signed weight of one action; a rating maps 0..5 stars onto dislike..purchase."""
        if action == "rating":
            return 3.0 * ((rating if rating is not None else 2.5) - 2.5) / 2.5
        return ACTION_WEIGHTS[action]


@dataclass
class DomainInterest:
    """Interest of one user in one domain."""

    long_sum: np.ndarray
    long_weight: float = 0.0
    short: np.ndarray | None = None
    count: int = 0
    last_time: float = 0.0
    recent: list[str] = field(default_factory=list)
    # user-level drift (inference.drift): Page-Hinkley state, events left in drift mode
    drift_ph: list[float] | None = None
    drift_left: int = 0
    drift_pending: float | None = None  # a detection's divergence, awaiting confirmation
    drift_pending_short: np.ndarray | None = None  # ... and the short-term interest it saw
    # Of ``recent``, the items whose latest event moved interest away (skip, dislike, a low
    # rating): a rebase into a new model space folds them with a negative sign.
    negative: list[str] = field(default_factory=list)

    @property
    def liked(self) -> bool:
        """True once the user has shown interest here (short-term interest forms only from
        events that raise it): a mean made of skips alone points away from what they
        dislike, not at anything they want, so it is neither queried nor learned from."""
        return self.long_weight > 0 and self.short is not None

    def keep_recent(self, n: int) -> None:
        """Keep the ``n`` newest recent items (and the negative marks among them)."""
        if len(self.recent) > n:
            dropped = set(self.recent[: len(self.recent) - n])
            del self.recent[: len(self.recent) - n]
            if self.negative:
                self.negative = [i for i in self.negative if i not in dropped]

    def mean(self) -> np.ndarray:
        """Long-term interest: the decayed, weighted mean of touched vectors."""
        if self.long_weight <= 0.0:
            return np.zeros_like(self.long_sum)
        return self.long_sum / self.long_weight


@dataclass
class FoldedPairs:
    """What a user last contributed to the online projections (``inference.online_projection``):
    their domain means then (top coordinates) and each pair's statistics age after the fold, so
    that their next fold can take it out again and each user counts once."""

    space: str  # which statistics hold the pairs: bundle version and epoch
    partition: int  # whose statistics hold the pairs
    ages: dict[str, float]  # pair key -> the statistics' age after the fold
    means: dict[str, np.ndarray]  # domain -> its mean's top coordinates
    weights: dict[str, float] = field(default_factory=dict)  # pair key -> its weight (1)


@dataclass
class UserState:
    """Everything the worker keeps about one user."""

    domains: dict[str, DomainInterest] = field(default_factory=dict)
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> last applied offset
    event_ids: list[str] = field(default_factory=list)
    events_applied: int = 0
    space: str = ""  # version of the model whose item space the vectors live in
    # Per-user rate limit (token bucket on the record-timestamp clock; None = full bucket).
    rate_tokens: float | None = None
    rate_at: float = 0.0
    folded: FoldedPairs | None = None

    def seen(self, event_id: str, partition: int | None, offset: int | None) -> bool:
        """True when this event was applied already (replayed offset or repeated id)."""
        if partition is not None and offset is not None:
            last = self.offsets.get(partition)
            if last is not None and offset <= last:
                return True
        return event_id in self.event_ids

    def consumed(self, domain: str) -> list[str]:
        """Items this user touched in ``domain`` (newest last, bounded)."""
        d = self.domains.get(domain)
        return list(d.recent) if d else []


def apply_event(
    state: UserState,
    *,
    event_id: str,
    domain: str,
    action: str,
    event_time: float,
    vector: np.ndarray | None,
    item_id: str | None,
    rating: float | None,
    params: InterestParams,
    partition: int | None = None,
    offset: int | None = None,
    item_ids: Sequence[str] = (),
) -> bool:
    """Apply one event to ``state`` in place. Returns False when it was already applied.

    ``vector`` is what the event says about interest (the item's vector, or the encoded text of a
    search, or the mean of a basket's items); None when the event carries no usable vector (it is
    still counted once). ``item_ids`` names the items of a multi-item event, like ``item_id``.
    """
    if state.seen(event_id, partition, offset):
        return False
    d = state.domains.get(domain)
    if vector is not None:
        vector = np.asarray(vector, dtype=np.float32)
        if not np.isfinite(vector).all():
            # One NaN would stay in the user's sums forever, and through the user's pairs
            # reach the projections every user's transfer reads.
            raise ValueError("the event's vector has NaN or inf values")
    if d is None:
        dim = vector.shape[0] if vector is not None else _dim_of(state)
        d = state.domains[domain] = DomainInterest(long_sum=np.zeros(dim, np.float32))
    if vector is not None and vector.shape != d.long_sum.shape and d.long_weight == 0.0:
        # nothing known in this domain yet (e.g. a rebase found none of its items): start at
        # the new vectors' size
        d.long_sum, d.short = np.zeros(vector.shape, np.float32), None
    if vector is not None and vector.shape != d.long_sum.shape:
        raise ValueError(f"vector dim {vector.shape} != state dim {d.long_sum.shape}")
    w = float(params.weight(action, rating))  # numpy scalars would change the stored dtypes
    event_time = float(event_time)
    # Older interest fades both per event and with event time, so one binge or one idle
    # month each count. An event older than the domain's newest (it arrived late) fades
    # instead by how much older it is: it counts as it would have, had it come in order.
    dt = event_time - d.last_time if d.count else 0.0
    fade = 0.5 ** (max(0.0, dt) / params.half_life_s)
    late = 0.5 ** (max(0.0, -dt) / params.half_life_s)
    if vector is None and fade < 1.0:
        # the clock moves on below (last_time): the time that passed must fade interest now,
        # or the next event's gap would start from here and a long idle spell be forgotten
        d.long_sum = (d.long_sum * fade).astype(np.float32, copy=False)
        d.long_weight = float(d.long_weight * fade)
    if vector is not None:
        decay = 0.5 ** (1.0 / params.half_life_events) * fade
        d.long_sum = (d.long_sum * decay + (w * late) * vector).astype(np.float32, copy=False)
        d.long_weight = float(d.long_weight * decay + abs(w) * late)
        if w > 0:
            # short-term interest forgets idle time too: after a quiet month it is the new
            # event, not what the user did before the month (the long-term mean has moved on)
            keep = (1.0 - params.short_alpha * late) * fade
            d.short = (
                vector.copy()
                if d.short is None
                else (keep * d.short + (1.0 - keep) * vector).astype(np.float32, copy=False)
            )
    d.count += 1
    d.last_time = max(d.last_time, event_time)
    for item in (item_id, *item_ids) if item_id is not None else item_ids:
        if item in d.recent:
            d.recent.remove(item)
        d.recent.append(item)
        if item in d.negative:
            d.negative.remove(item)
        if w < 0:
            d.negative.append(item)
    d.keep_recent(params.recent_items)
    if partition is not None and offset is not None:
        state.offsets[partition] = offset
    state.event_ids.append(event_id)
    del state.event_ids[: -params.event_id_window]
    state.events_applied += 1
    return True


def trim_recent(state: UserState, keep: int) -> None:
    """Keep each domain's ``keep`` newest recent items (what a state too large to store gives
    up first: exclusions and rebases reach back less far; interest itself is untouched)."""
    for d in state.domains.values():
        d.keep_recent(keep)


def _dim_of(state: UserState) -> int:
    for d in state.domains.values():
        return d.long_sum.shape[0]
    raise ValueError("the first event of a user in a domain must carry a vector")


def rebase(
    state: UserState, item_inputs: dict[str, np.ndarray], space: str, params: InterestParams
) -> None:
    """Rebuild every domain's vectors in a new model space from its recent items.

    After a model reload the old vectors mean nothing in the new space; the recent-items window
    is what we still know, so interest is re-folded from it: each item with weight 1, or -1
    when its latest event moved interest away (the window keeps no other action detail).
    Counts, offsets and event ids are untouched, so idempotence is unaffected. A domain none
    of whose items the new model has keeps no interest (its next vector sets its size).
    """
    decay = 0.5 ** (1.0 / params.half_life_events)
    for d in state.domains.values():
        # a detection awaiting confirmation compared vectors of the old space: let it go
        d.drift_pending, d.drift_pending_short = None, None
        known = [i for i in d.recent if i in item_inputs]
        if not known:
            dim = next(iter(item_inputs.values())).shape[0] if item_inputs else 0
            d.long_sum, d.long_weight, d.short = np.zeros(dim, np.float32), 0.0, None
            continue
        negative = set(d.negative)
        sign = np.array([-1.0 if i in negative else 1.0 for i in known])
        w = decay ** np.arange(len(known) - 1, -1, -1)
        vecs = np.asarray([item_inputs[i] for i in known], np.float32)
        d.long_sum = ((w * sign)[:, None] * vecs).sum(axis=0).astype(np.float32)
        d.long_weight = float(w.sum())
        liked = [i for i in known if i not in negative]
        d.short = np.asarray(item_inputs[liked[-1]], np.float32).copy() if liked else None
    state.space = space


def is_finite(state: UserState) -> bool:
    """Guard used by tests and the worker: no NaN ever enters a stored state."""
    return all(
        math.isfinite(d.long_weight) and np.isfinite(d.long_sum).all()
        for d in state.domains.values()
    )
