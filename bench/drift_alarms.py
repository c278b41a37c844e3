"""What each drift detection of a replay was: where it fired and on what evidence (bench only).

:class:`RecordingModel` is the worker's bundle model noting every detection; the functions turn
those notes into ``drift.json`` fields, so that a false alarm can be read from the results file
(the user's last items in the domain, the divergence and agreement that confirmed it) instead
of from an ad-hoc script.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.bundle_model import BundleModel
from inference.drift import coherence, divergence
from inference.interest import UserState
from inference.recency_mix import InterestBefore
from synth.drift import DriftStream

LAST_ITEMS = 8  # of the user's items in the domain, up to the alarm, shown with a user alarm


@dataclass(frozen=True)
class UserAlarm:
    """A confirmed user drift detection: stream index, domain and the evidence behind it."""

    event: int
    domain: str
    divergence: float
    coherence: float | None  # of the confirming event (None: confirmed on divergence alone)


class RecordingModel(BundleModel):
    """The worker's bundle model, noting every drift detection (stream index = offset)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.user_alarms: list[UserAlarm] = []
        self.population_alarms: list[int] = []

    def learn(
        self,
        state: UserState,
        domain: str,
        partition: int,
        offset: int,
        vector: np.ndarray | None = None,
        before: InterestBefore | None = None,
    ) -> list[str]:
        d = state.domains.get(domain)
        # read before learning: a confirmation clears what the agreement was computed from
        agree = coherence(d, vector) if d is not None and d.drift_pending is not None else None
        levels = super().learn(state, domain, partition, offset, vector, before)
        if "user" in levels and d is not None:
            # a detection scales the long-term sum and weight alike: the divergence is unchanged
            x = divergence(d.short, d.mean())
            self.user_alarms.append(UserAlarm(offset, domain, round(x or 0.0, 4), agree))
        if "population" in levels:
            self.population_alarms.append(offset)
        return levels


def alarms_before_switch(stream: DriftStream, alarms: list[int]) -> dict:
    """User detections on switching users' own histories, before their switch: false alarms.

    A person's real history may drift too, so on real data these bound the false-alarm rate
    from above; the ``none`` stream cannot show it (its users are too short-lived).
    """
    user_of = [e["user_id"] for e in stream.events]
    before = [o for o in alarms if o < stream.switch_at.get(user_of[o], -1)]
    events = sum(1 for k, u in enumerate(user_of) if k < stream.switch_at.get(u, -1))
    return {
        "user_detections_before_switch": len(before),
        "user_events_before_switch": events,
        "users_alarmed_before_switch": len({user_of[o] for o in before}),
        "switching_users": len(stream.switch_at),
    }


def describe_user_alarms(stream: DriftStream, alarms: list[UserAlarm]) -> list[dict]:
    """Each alarm with its user and their last items in the domain up to it (``none`` stream:
    every one is a false alarm, and this is what to read it from)."""
    out = []
    for a in alarms:
        user = stream.events[a.event]["user_id"]
        items = [
            e["item_id"]
            for e in stream.events[: a.event + 1]
            if e["user_id"] == user and e["domain"] == a.domain
        ]
        out.append(
            {
                "event": a.event,
                "user": user,
                "domain": a.domain,
                "divergence": a.divergence,
                "coherence": None if a.coherence is None else round(a.coherence, 4),
                "last_items": items[-LAST_ITEMS:],
                "user_events_in_domain": len(items),
            }
        )
    return out


def divergence_at_detections(stream: DriftStream, alarms: list[UserAlarm]) -> dict | None:
    """``user_switch``: the divergence at the detections after each user's switch (what a floor
    on it would cost)."""
    user_of = [e["user_id"] for e in stream.events]
    xs = [
        a.divergence
        for a in alarms
        if a.event >= stream.switch_at.get(user_of[a.event], len(user_of))
    ]
    if not xs:
        return None
    q = np.quantile(xs, [0.0, 0.01, 0.5])
    return {
        "detections": len(xs),
        "min": round(float(q[0]), 4),
        "p01": round(float(q[1]), 4),
        "median": round(float(q[2]), 4),
    }
