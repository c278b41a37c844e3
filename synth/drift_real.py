"""Drift scenarios on real sequences: the Food -> Kitchen data with permuted cross-domain links.

Real users' item sequences carry no drift we know of, so drift is made by changing which
target-domain behaviour follows which source-domain behaviour, for part of the stream:

* users are grouped by target-domain taste (k-means on the mean of their target item vectors);
* before drift a stream user is a real user, unchanged: their source sequence followed by their
  own target sequence (the real link);
* after drift the link is permuted: the source sequence of a user of taste group g is followed
  by the real target sequence of a *donor* from group sigma(g), sigma a derangement of the
  groups (users who bought like u in the source domain now buy what another group buys in the
  target domain: a new trend, a catalogue change);
* every item sequence stays real, so own-domain interest works as on unpermuted data and only
  the cross-domain relation (what the projection learns) moves.

Scenarios match :class:`synth.drift.Scenario`: ``population_swap`` (arrivals after the onset
follow the permuted link), ``gradual`` (the share on the permuted link grows linearly),
``user_switch`` (users whose behaviour in both domains switches half-way to that of a user of
another taste group; only users with ``switch_per_domain`` events in both domains, so the
long-term interest a switch must overcome is there) and ``none``. Every real user appears at
most once per stream, so nothing is scored twice. Item ids are the dataset's (as strings);
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from inference.errors import ConfigError
from synth.drift import DriftStream, Plan, Scenario, round_robin, switching_stream


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Cluster labels of the rows of ``x`` (Lloyd's algorithm, k-means++ seeding)."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d / d.sum())])
    c = np.array(centres)
    labels = np.zeros(len(x), dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        c = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
    return labels


@dataclass
class LinkedWorld:
    """Real users of two domains whose source -> target link can be permuted.

    ``sources[u]`` / ``targets[u]``: user u's item ids in each domain, in time order;
    ``taste[u]``: a vector of u's target-domain taste (grouped into ``groups`` clusters).
    """

    sources: Sequence[Sequence[str]]
    targets: Sequence[Sequence[str]]
    taste: np.ndarray
    source: str
    target: str
    groups: int = 8
    per_domain: int = 5  # events per domain and user (sequences are cut, never padded)
    # user_switch halves: long enough for a user's long-term interest to outweigh the change
    # (with 5 events per domain both variants follow a switch at once), so only users with at
    # least this many events in both domains take part
    switch_per_domain: int = 10
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        if not len(self.sources) == len(self.targets) == len(self.taste):
            raise ConfigError("sources, targets and taste must describe the same users")
        self.rng = np.random.default_rng(self.seed)
        norm = np.linalg.norm(self.taste, axis=1, keepdims=True)
        self.group = kmeans(self.taste / np.maximum(norm, 1e-12), self.groups, self.seed)
        self.members = [np.flatnonzero(self.group == g) for g in range(self.groups)]
        if any(len(m) < 2 for m in self.members):
            raise ConfigError(
                f"{self.groups} taste groups need at least 2 users each: pass fewer groups"
            )
        order = self.rng.permutation(self.groups)
        self.link = np.arange(self.groups)
        self.new_link = np.empty(self.groups, dtype=np.int64)
        self.new_link[order] = np.roll(order, 1)  # a derangement: every group's link changes

    # -- building blocks ----------------------------------------------------------------

    def donor(self, user: int, link: np.ndarray) -> int:
        """Whose target sequence follows ``user``'s source sequence under ``link``."""
        if link[self.group[user]] == self.group[user]:
            return user  # the real link
        pool = self.members[int(link[self.group[user]])]
        return int(pool[self.rng.integers(len(pool))])

    def _cut(
        self, items: Sequence[str], domain: str, n: int | None = None
    ) -> list[tuple[str, str]]:
        return [(domain, i) for i in list(items)[: n or self.per_domain]]

    def _arrival(self, user: int, link: np.ndarray) -> list[tuple[str, str]]:
        """Source events first, then the (donor's) target events: cold start in the target."""
        donor = self.donor(user, link)
        return self._cut(self.sources[user], self.source) + self._cut(
            self.targets[donor], self.target
        )

    def _alternating(self, user: int, n: int) -> list[tuple[str, str]]:
        """``n`` of the user's own source and target events alternating: active in both."""
        a = self._cut(self.sources[user], self.source, n)
        b = self._cut(self.targets[user], self.target, n)
        return [e for pair in zip(a, b, strict=False) for e in pair]

    # -- streams --------------------------------------------------------------------------

    def stream(self, scenario: Scenario) -> DriftStream:
        """Every user once, in a seeded order, carrying ``scenario``."""
        # the same draws for every scenario: streams agree up to the drift onset
        self.rng = np.random.default_rng(self.seed + 1)
        if scenario is Scenario.USER_SWITCH:
            return self._switching()
        users = self.rng.permutation(len(self.sources))
        arrivals = len(users)
        onset_arrival = arrivals // 2 if scenario is not Scenario.NONE else arrivals
        window = arrivals // 4 if scenario is Scenario.GRADUAL else 0
        plans: list[Plan] = []
        for a, u in enumerate(users):
            share = float(a >= onset_arrival)
            if window:
                share = float(np.clip((a - onset_arrival) / window, 0.0, 1.0))
            link = self.new_link if self.rng.random() < share else self.link
            plans.append((f"r{self.seed}-a{a}", self._arrival(int(u), link)))
        events = list(round_robin(plans, active=40))
        onset = len(events)
        if onset_arrival < arrivals:
            first = f"r{self.seed}-a{onset_arrival}"
            onset = next(k for k, e in enumerate(events) if e["user_id"] == first)
        return DriftStream(scenario, events, onset, scored_domain=self.target)

    def _switching(self) -> DriftStream:
        """Pairs of real users of different taste groups: one's events, then the other's."""
        plans: list[Plan] = []
        first_half: dict[str, int] = {}
        n = self.switch_per_domain
        order = np.array(
            [
                u
                for u in self.rng.permutation(len(self.sources))
                if min(len(self.sources[u]), len(self.targets[u])) >= n
            ]
        )
        firsts, rest = order[: len(order) // 2], list(order[len(order) // 2 :])
        for i, u in enumerate(firsts):
            k = next((k for k, v in enumerate(rest) if self.group[v] != self.group[u]), None)
            if k is None:
                break
            before = self._alternating(int(u), n)
            user = f"r{self.seed}-l{i}"
            plans.append((user, before + self._alternating(int(rest.pop(k)), n)))
            first_half[user] = len(before)
        return switching_stream(list(round_robin(plans, active=60)), first_half)
