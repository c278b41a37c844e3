"""Drift scenarios for the synthetic event generator: streams whose interest really moves.

A two-domain world (``books`` -> ``video``) of latent topics. Every user has a topic; in the
source domain they touch items of their topic, in the target domain items of the topic that
``mapping`` assigns to it (the relation between the domains that the projection learns). The
offline bundle is fitted on a history drawn with the initial mapping; the stream follows.

Scenarios (:class:`Scenario`):

* ``none``: no change (false alarms are counted here);
* ``user_switch``: long-lived users each switch topic, in both domains, after ``SWITCH_BEFORE``
  of their own events, and go on for ``SWITCH_TAIL`` more (user-level drift); the long tail
  lets a variant that never forgets be seen recovering, so its recovery is a count rather than
  a bound;
* ``population_swap``: from the middle of the stream on, newly arriving users follow a
  different mapping (population-level drift: a new trend);
* ``gradual``: the share of arriving users on the new mapping grows linearly over a window.

Streams are plain behaviour-event dicts in production order, with the index where drift
starts, so they can be produced to Kafka or fed to the worker's processor alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

SOURCE, TARGET = "books", "video"
Plan = tuple[str, list[tuple[str, str]]]  # a user id and their (domain, item id) events in order
# A user_switch user's events before and after their switch. The long tail: static needs about
# 27 of its own events per domain to get back to 90% of its pre-switch recall (45 per domain
# here; `xrec bench-drift`); with 30 events after the switch it never did within the stream.
SWITCH_BEFORE, SWITCH_TAIL = 30, 90


class Scenario(StrEnum):
    """Which drift a stream carries."""

    NONE = "none"
    USER_SWITCH = "user_switch"
    POPULATION_SWAP = "population_swap"
    GRADUAL = "gradual"


@dataclass(frozen=True)
class DriftStream:
    """A generated stream and the truth behind it."""

    scenario: Scenario
    events: list[dict]
    onset: int  # index in ``events`` where drift starts (len(events) when it never does)
    switch_at: dict[str, int] = field(default_factory=dict)  # user_switch: user -> event index
    # the domain whose events the drift acts on and recall is scored on (None: every event)
    scored_domain: str | None = None


@dataclass
class DriftWorld:
    """Items of ``topics`` latent topics in two domains, and users who follow a mapping."""

    topics: int = 6
    items_per_topic: int = 25
    noise: float = 0.1  # share of a user's events off their topic
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.items = {
            (d, t): [f"{d}-{t}-{k}" for k in range(self.items_per_topic)]
            for d in (SOURCE, TARGET)
            for t in range(self.topics)
        }
        self.mapping = np.arange(self.topics)  # source topic t -> target topic mapping[t]
        # the new relation: a derangement, so every source topic changes its target topic
        self.new_mapping = np.roll(np.arange(self.topics), 1)
        # within a topic some items are far more popular (as in real data)
        self.appeal = self.rng.pareto(1.5, self.items_per_topic) + 1.0

    # -- catalogue and history ------------------------------------------------------------

    def item_ids(self) -> list[str]:
        """Every item id, source domain first."""
        return [i for d in (SOURCE, TARGET) for t in range(self.topics) for i in self.items[d, t]]

    def pick(self, domain: str, topic: int) -> str:
        """One item a user of ``topic`` touches in ``domain``."""
        if self.rng.random() < self.noise:
            topic = int(self.rng.integers(self.topics))
        p = self.appeal / self.appeal.sum()
        return self.items[domain, topic][int(self.rng.choice(self.items_per_topic, p=p))]

    def history(self, users: int, per_domain: int = 6) -> list[list[str]]:
        """Item sequences of both-domain users under the initial mapping (the offline fit)."""
        out = []
        for _ in range(users):
            t = int(self.rng.integers(self.topics))
            seq = [self.pick(SOURCE, t) for _ in range(per_domain)]
            seq += [self.pick(TARGET, int(self.mapping[t])) for _ in range(per_domain)]
            out.append(seq)
        return out

    # -- streams --------------------------------------------------------------------------

    def stream(self, scenario: Scenario, size: int = 12_000) -> DriftStream:
        """A stream of about ``size`` events carrying ``scenario``."""
        if scenario is Scenario.USER_SWITCH:
            return self._long_lived(size, switch=True)
        if scenario is Scenario.NONE:
            half = self._arrivals(size // 2, lambda _: self.mapping)
            rest = self._long_lived(size - len(half.events), switch=False)
            events = _interleave(half.events, rest.events)
            return DriftStream(scenario, events, len(events))
        onset_arrival = size // 16  # arrivals of 8 events each: drift from the middle
        window = size // 32 if scenario is Scenario.GRADUAL else 0

        def mapping_for(arrival: int) -> np.ndarray:
            share = np.clip((arrival - onset_arrival) / max(window, 1), 0.0, 1.0)
            if window == 0:
                share = float(arrival >= onset_arrival)
            return self.new_mapping if self.rng.random() < share else self.mapping

        s = self._arrivals(size, mapping_for, onset_arrival)
        return DriftStream(scenario, s.events, s.onset)

    def _arrivals(self, size: int, mapping_for, onset_arrival: int | None = None) -> DriftStream:
        """New users arriving: 4 source events, then 4 target events (cold start in target)."""
        plans, onset_user = [], None
        for a in range(size // 8):
            t = int(self.rng.integers(self.topics))
            m = mapping_for(a)
            user = f"u{self.seed}-a{a}"
            if onset_arrival is not None and a == onset_arrival:
                onset_user = user
            seq = [(SOURCE, self.pick(SOURCE, t)) for _ in range(4)]
            seq += [(TARGET, self.pick(TARGET, int(m[t]))) for _ in range(4)]
            plans.append((user, seq))
        events = list(round_robin(plans, active=40))
        onset = next((k for k, e in enumerate(events) if e["user_id"] == onset_user), len(events))
        return DriftStream(Scenario.NONE, events, onset)

    def _long_lived(self, size: int, switch: bool) -> DriftStream:
        """``size // 60`` users alternating domains: 60 events each, or with ``switch``
        ``SWITCH_BEFORE`` on one topic and then ``SWITCH_TAIL`` on another."""
        per_user, before, plans = 60, SWITCH_BEFORE, []
        for u in range(max(1, size // per_user)):
            t = int(self.rng.integers(self.topics))
            t2 = (t + 1 + int(self.rng.integers(self.topics - 1))) % self.topics
            seq = []
            for k in range(before + SWITCH_TAIL if switch else per_user):
                topic = t2 if switch and k >= before else t
                d = SOURCE if k % 2 == 0 else TARGET
                seq.append((d, self.pick(d, topic if d == SOURCE else int(self.mapping[topic]))))
            plans.append((f"u{self.seed}-l{u}", seq))
        events = list(round_robin(plans, active=60))
        halves = {user: before for user, _ in plans} if switch else {}
        return switching_stream(events, halves)


def switching_stream(events: list[dict], first_half: dict[str, int]) -> DriftStream:
    """A user_switch stream: each user of ``first_half`` switches after that many events."""
    seen: dict[str, int] = {}
    switch_at: dict[str, int] = {}
    for k, e in enumerate(events):
        user = e["user_id"]
        seen[user] = seen.get(user, 0) + 1
        if user in first_half and seen[user] == first_half[user] + 1:
            switch_at[user] = k
    onset = min(switch_at.values()) if switch_at else len(events)
    return DriftStream(Scenario.USER_SWITCH, events, onset, switch_at)


def round_robin(plans: list[Plan], active: int) -> Iterator[dict]:
    """Interleave users' plans of (domain, item), ``active`` at a time, one event per turn.

    Events are purchases stamped one second apart, in the shape of the behaviour topic.
    """
    t0, n = 1_700_000_000.0, 0
    waiting = list(reversed(plans))
    live: list[tuple[str, list[tuple[str, str]], int]] = []
    while waiting or live:
        while waiting and len(live) < active:
            user, seq = waiting.pop()
            live.append((user, seq, 0))
        nxt = []
        for user, seq, k in live:
            domain, item = seq[k]
            yield {
                "event_id": f"{user}#{k}",
                "user_id": user,
                "domain": domain,
                "action": "purchase",
                "item_id": item,
                "event_time": t0 + n,
            }
            n += 1
            if k + 1 < len(seq):
                nxt.append((user, seq, k + 1))
        live = nxt


def _interleave(a: list[dict], b: list[dict]) -> list[dict]:
    out = []
    for x, y in zip(a, b, strict=False):
        out += [x, y]
    longer = a if len(a) > len(b) else b
    return out + longer[min(len(a), len(b)) :]
