"""Cross-domain projections that keep learning from the stream (RLS with a forgetting factor).

Every event of a user active in two domains gives, for each ordered pair of their domains, one
pair (source-domain mean, target-domain mean): the same pairs the offline fit used. They are
folded into decayed sufficient statistics (:class:`ProjectionStats`) and the projection is
re-solved as a ridge regression pulled towards the offline projection, so with little evidence
the bundle's projection serves, and with much the stream's.

Before a pair is folded in, its relative residual under the current projection feeds the
population drift detector; a detection switches to fast forgetting for a while.

Statistics are kept per source partition so each one can be stored with the partition's
offset (the worker persists them in a table next to user state): a restart restores them and
skips the events they already hold, so no event is folded twice. The same statistics carry the
per-domain short-term weight of queries (:mod:`inference.recency_mix`), learned from the same
events under the same offsets. numpy only.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np

from inference.bundle import ModelBundle, pair_key
from inference.drift import DriftParams, PageHinkley, relative_residual
from inference.interest import FoldedPairs, UserState
from inference.projection import ProjectionStats
from inference.recency_mix import InterestBefore, MixStats, solve_mix

MIN_PAIRS = 20.0  # decayed pairs before the online solve replaces the offline projection
# A user's pair weighs n / (n + RELIABLE_EVENTS), n the fewer of the events behind its two
# means: a mean of one or two events is mostly noise, one of many is the user's taste.
RELIABLE_EVENTS = 2.0


@dataclass
class PartitionStats:
    """What one source partition contributed, and up to which offset."""

    stats: dict[str, ProjectionStats] = field(default_factory=dict)
    mix: dict[str, MixStats] = field(default_factory=dict)  # by domain
    offset: int = -1
    space: str = ""  # the bundle version the statistics live in
    folded: int = 0  # pairs and events folded in, ever (the online model version's share)
    # Which statistics these are: new ones (started afresh) get another, so that a user's
    # pair folded into earlier ones is never taken out of these (FoldedPairs.space).
    epoch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def dumps(self) -> bytes:
        """Serialise for the worker's projection table."""
        arrays: dict[str, np.ndarray] = {
            "offset": np.array([self.offset]),
            "space": np.array([self.space]),
            "folded": np.array([self.folded]),
            "epoch": np.array([self.epoch]),
        }
        for key, s in self.stats.items():
            arrays[f"{key}|gram"] = s.gram
            arrays[f"{key}|cross"] = s.cross
            arrays[f"{key}|weight"] = np.array([s.weight])
            arrays[f"{key}|age"] = np.array([s.age])
        if self.mix:
            arrays["mix_domains"] = np.array(list(self.mix))
            arrays["mix_sums"] = np.array([m.as_list() for m in self.mix.values()])
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def loads(cls, raw: bytes | None) -> PartitionStats:
        """Inverse of :meth:`dumps`; None gives empty statistics."""
        if not raw:
            return cls()
        z = np.load(io.BytesIO(raw))
        keys = {name.split("|")[0] for name in z.files if "|" in name}
        stats = {
            k: ProjectionStats(
                z[f"{k}|gram"],
                z[f"{k}|cross"],
                float(z[f"{k}|weight"][0]),
                float(z[f"{k}|age"][0]) if f"{k}|age" in z.files else 0.0,
            )
            for k in keys
        }
        mix: dict[str, MixStats] = {}
        if "mix_domains" in z.files:  # absent from statistics stored before it was learned
            sums = z["mix_sums"]
            mix = {str(d): MixStats.from_list(sums[k]) for k, d in enumerate(z["mix_domains"])}
        folded = int(z["folded"][0]) if "folded" in z.files else 0
        epoch = str(z["epoch"][0]) if "epoch" in z.files else ""  # stored before epochs
        return cls(stats, mix, int(z["offset"][0]), str(z["space"][0]), folded, epoch)


class OnlineProjections:
    """The bundle's cross-domain projections, refined online; ``version`` counts refinements."""

    def __init__(self, bundle: ModelBundle, params: DriftParams) -> None:
        self.bundle = bundle
        self.params = params
        self.rank = min(int(bundle.fit_info.get("transfer_rank", 32)), bundle.input_dim)
        self.parts: dict[int, PartitionStats] = {}
        self._saved: dict[int, int] = {}  # folds of each partition as last read or written
        self.detector = PageHinkley()
        self.hold = 0  # updates left with fast forgetting
        self.updates = 0
        self.detections = 0
        self._solved: dict[str, np.ndarray] = {}
        # Pairs whose statistics changed since the last solve: solved once when next served,
        # so a micro-batch pays one solve per pair instead of one per event.
        self._dirty: set[tuple[str, str]] = set()
        self.mix_updates = 0
        self._mix: dict[str, float] = {}  # solved short-term weight by domain
        self._mix_dirty: set[str] = set()

    # -- serving -------------------------------------------------------------------------

    def projection(self, source: str, target: str) -> np.ndarray:
        """The projection to serve: the online one once it has evidence, else the bundle's."""
        if (source, target) in self._dirty:
            self._dirty.discard((source, target))
            self._solve(source, target)
        return self._current(source, target)

    def _current(self, source: str, target: str) -> np.ndarray:
        """The last solved projection (no solve: residuals inside a batch use this one)."""
        return self._solved.get(pair_key(source, target), self.bundle.projection(source, target))

    def short_weight(self, domain: str, fitted: float) -> float:
        """The short-term weight to serve in ``domain`` (``fitted`` until the stream says more)."""
        if not (self.params.adaptive and self.params.online_mix):
            return fitted
        if domain in self._mix_dirty:
            self._mix_dirty.discard(domain)
            total = None
            for part in self.parts.values():
                m = part.mix.get(domain)
                if m is not None:
                    total = m if total is None else total + m
            p = self.params
            self._mix[domain] = solve_mix(total, fitted, p.mix_prior_events, p.mix_max)
        return self._mix.get(domain, fitted)

    @property
    def version(self) -> int:
        """Pairs and events folded into the statistics this worker holds, ever: it advances
        with every refinement and carries on across restarts (it is stored with them)."""
        return sum(p.folded for p in self.parts.values())

    # -- learning ------------------------------------------------------------------------

    def observe(
        self,
        state: UserState,
        partition: int,
        offset: int,
        mix: tuple[str, InterestBefore, np.ndarray] | None = None,
    ) -> bool:
        """Fold the pairs of a user's current state in; True when population drift was detected.

        Call once per applied event. An event at or before the partition's stored offset was
        folded in before a restart and is skipped. ``mix``: the event's domain, the user's
        interest there before it and the vector it added, for the short-term weight.
        """
        if not self.params.adaptive:
            return False
        part = self.parts.setdefault(partition, PartitionStats(space=self.bundle.version))
        if offset <= part.offset:
            # Folded before (a replay after a crash, a failed batch's retry): the user's pairs
            # are in the statistics, folded at ages not known here but no earlier than the
            # user's previous fold. Marked at that age, their later retraction takes out no
            # more than is left of them (a little less), so the statistics stay a sum of pairs.
            self._mark_folded(state, partition, part, self._means(state))
            return False
        part.offset = offset
        if mix is not None and self.params.online_mix and mix[0] in self.bundle.domains:
            domain, before, vector = mix
            old = part.mix.get(domain) or MixStats()
            new = old.update(before, vector, self.params.mix_forget)
            if new is not old:  # an event that cannot tell weights apart is left out
                part.mix[domain] = new
                part.folded += 1
                self.mix_updates += 1
                self._mix_dirty.add(domain)
        r = self.rank
        means = self._means(state)
        # The user's previous pairs, taken out as their new ones go in: each user counts once,
        # with their latest means (as in the offline fit), however many events they send.
        prev = self._folded_here(state, partition, part)
        detected = False
        ages: dict[str, float] = {}
        weights: dict[str, float] = {}
        for source, target in permutations(sorted(means), 2):
            key = pair_key(source, target)
            if not self.bundle.has_projection(source, target):
                continue
            z, m = means[source], means[target]
            if not (np.isfinite(z).all() and np.isfinite(m).all()):
                continue  # kept out of the detector and the user's folded pairs as well
            predicted = z @ self._current(source, target)[:r, :r]
            residual = min(1.0, relative_residual(predicted, m))
            if self.detector.update(residual, self.params.pop_detector):
                detected = True
                self.detections += 1
                self.hold = self.params.pop_hold_updates
            forget = self.params.pop_forget_drift if self.hold > 0 else self.params.pop_forget
            self.hold = max(0, self.hold - 1)
            stats = part.stats.get(key) or ProjectionStats.empty(r)
            if prev is not None and key in prev.ages:
                stats = stats.retract(
                    prev.means[source],
                    prev.means[target],
                    prev.ages[key],
                    prev.weights.get(key, 1.0),
                )
            weights[key] = self._reliability(state, source, target)
            stats = part.stats[key] = stats.update(z, m, forget, weights[key])
            ages[key] = stats.age
            part.folded += 1
            self.updates += 1
            self._dirty.add((source, target))
        if ages:
            state.folded = FoldedPairs(self._identity(part), partition, ages, means, weights)
        return detected

    def _means(self, state: UserState) -> dict[str, np.ndarray]:
        """The user's long-term means that take part in pairs (top coordinates)."""
        return {
            name: d.mean()[: self.rank]
            for name, d in state.domains.items()
            if d.liked and name in self.bundle.domains
        }

    @staticmethod
    def _reliability(state: UserState, source: str, target: str) -> float:
        """The weight of a user's pair: n / (n + RELIABLE_EVENTS), n the fewer of the events
        behind its two means."""
        n = min(state.domains[source].count, state.domains[target].count)
        return n / (n + RELIABLE_EVENTS)

    def _identity(self, part: PartitionStats) -> str:
        return f"{self.bundle.version}#{part.epoch}"

    def _folded_here(
        self, state: UserState, partition: int, part: PartitionStats
    ) -> FoldedPairs | None:
        """The user's last folded pairs if they are in these statistics, else None (another
        bundle's, another partition's, or statistics since started afresh)."""
        prev = state.folded
        if prev is None or (prev.space, prev.partition) != (self._identity(part), partition):
            return None
        return prev

    def _mark_folded(
        self, state: UserState, partition: int, part: PartitionStats, means: dict
    ) -> None:
        prev = self._folded_here(state, partition, part)
        since = prev.ages if prev is not None else {}
        ages, weights = {}, {}
        for source, target in permutations(sorted(means), 2):
            key = pair_key(source, target)
            if key in part.stats:
                ages[key] = min(since.get(key, 0.0), part.stats[key].age)
                weights[key] = self._reliability(state, source, target)
        if ages:
            state.folded = FoldedPairs(self._identity(part), partition, ages, means, weights)

    def _solve(self, source: str, target: str) -> None:
        key = pair_key(source, target)
        total = None
        for part in self.parts.values():
            s = part.stats.get(key)
            if s is not None:
                total = s if total is None else total + s
        if total is None or total.weight < MIN_PAIRS:
            self._solved.pop(key, None)  # e.g. a revoked partition took the evidence away
            return
        prior = self.bundle.projection(source, target)
        solved = total.solve(self.params.pop_l2, self.bundle.input_dim, prior)
        self._solved[key] = solved.astype(np.float32)

    # -- persistence ---------------------------------------------------------------------

    def restore(self, partition: int, raw: bytes | None) -> None:
        """Load a partition's statistics (at start, or when the partition is assigned)."""
        part = PartitionStats.loads(raw)
        self._saved[partition] = part.folded
        if part.space != self.bundle.version:  # learned for another bundle: start afresh,
            part = PartitionStats(offset=part.offset, space=self.bundle.version)  # once
            if raw:  # the table holds the other bundle's: write this one over it
                self._saved[partition] = -1
        self.parts[partition] = part
        for key in {k for p in self.parts.values() for k in p.stats}:
            source, target = key.split("->")
            self._dirty.add((source, target))
        self._mix_dirty.update(d for p in self.parts.values() for d in p.mix)

    def forget(self, partitions: set[int]) -> None:
        """Drop what revoked ``partitions`` contributed: another worker learns them now, and
        if they come back, their statistics are read again from the table, not this copy."""
        for partition in partitions:
            self._saved.pop(partition, None)
            part = self.parts.pop(partition, None)
            if part is None:
                continue
            for key in part.stats:
                source, target = key.split("->")
                self._dirty.add((source, target))
            self._mix_dirty.update(part.mix)

    def changed(self, partition: int) -> bool:
        """Whether the partition folded anything since its statistics were last read or
        written. Only then does the table need a record: events that advanced the offset
        without a fold fold nothing when replayed either (same states, same decisions)."""
        part = self.parts.get(partition)
        return part is not None and part.folded != self._saved.get(partition, 0)

    def dumps(self, partition: int) -> bytes:
        """A partition's statistics for the projection table (counted as written)."""
        part = self.parts.get(partition, PartitionStats(space=self.bundle.version))
        self._saved[partition] = part.folded
        return part.dumps()
