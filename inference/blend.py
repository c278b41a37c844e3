"""Turn a user's per-domain interest into one query vector for a target domain.

Without a fitted bundle the item space is the text encoder's space, where a topic means the same
thing in every domain, so the projection between domains is the identity and the blend is a
confidence weighting of the user's own target-domain interest against their other domains'.
With a fitted bundle (:mod:`inference.transfer`) the same call shape uses learned projections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from inference.drift import DriftParams, observe_user
from inference.interest import DomainInterest, UserState
from inference.recency_mix import InterestBefore


class Strategy:
    OWN = "own"
    TRANSFER = "transfer"
    BLEND = "blend"
    POPULAR = "popular"


@dataclass(frozen=True)
class Query:
    """A target-domain query vector and where it came from.

    ``short_share``: the share of the list the nearest items of the user's short-term interest
    alone are to fill (:mod:`inference.short_term_slots`; 0 where the model does not split).
    """

    vector: np.ndarray
    strategy: str
    weights: dict[str, float]
    short_share: float = 0.0


class InterestModel(Protocol):
    """What the worker needs from a model: a version, item vectors, and query vectors."""

    version: str

    def item_input(self, item: ItemLike) -> np.ndarray:
        """The vector a user's interest accumulates when they touch ``item``."""
        ...

    def item_inputs(self, stored: np.ndarray) -> np.ndarray:
        """``item_input`` of many items at once, from their stored vectors (one per row)."""
        ...

    def short_weight_of(self, domain: str) -> float:
        """The weight queries give the short-term interest in ``domain`` now."""
        ...

    def text_input(self, text_vector: np.ndarray, domain: str) -> np.ndarray:
        """The interest vector of free text (a search, a review) in ``domain``."""
        ...

    def catalogue_vector(self, item_id: str, text_vector: np.ndarray, domain: str) -> np.ndarray:
        """The vector stored for a catalogue item (the model's own, or placed from its text)."""
        ...

    def query(self, state: UserState, target: str) -> Query | None:
        """The target-domain query vector for this user, or None when nothing is known."""
        ...

    def short_term_query(self, state: UserState, target: str) -> np.ndarray | None:
        """The query of this user's short-term interest alone, for a list ``query`` split."""
        ...

    @property
    def serving_version(self) -> str:
        """The version recommendations report (advances as the model adapts online)."""
        ...

    def learn(
        self,
        state: UserState,
        domain: str,
        partition: int,
        offset: int,
        vector: np.ndarray | None = None,
        before: InterestBefore | None = None,
    ) -> list[str]:
        """Adapt after an event applied to ``state`` in ``domain``; the drift levels detected.

        ``vector`` is what the event added to the short-term interest (None when nothing);
        ``before`` the user's interest in ``domain`` before the event (``interest_before``).
        """
        ...


class ItemLike(Protocol):
    item_id: str
    domain: str
    vector: np.ndarray


def domain_vector(d: DomainInterest, short_weight: float, drifting: float = 0.8) -> np.ndarray:
    """Long-term mean nudged towards the short-term EMA; ``drifting`` while a user drifts.

    ``d.drift_left`` is only ever set by the user drift detector (:mod:`inference.drift`).
    """
    mean = d.mean()
    if d.drift_left > 0:
        short_weight = max(short_weight, drifting)
    if d.short is None or short_weight <= 0:
        return mean
    return (1.0 - short_weight) * mean + short_weight * d.short


@dataclass(frozen=True)
class TextSpaceModel:
    """Identity projection in the text space; own-domain confidence ``n / (n + own_prior)``."""

    version: str
    own_prior: float = 3.0
    short_weight: float = 0.3
    drift: DriftParams = field(default_factory=DriftParams)

    @property
    def serving_version(self) -> str:
        return self.version

    def learn(
        self,
        state: UserState,
        domain: str,
        partition: int,
        offset: int,
        vector: np.ndarray | None = None,
        before: InterestBefore | None = None,
    ) -> list[str]:
        """User drift only: the text space has no projection to refine (its short-term weight
        stays fixed too)."""
        d = state.domains.get(domain)
        return ["user"] if d is not None and observe_user(d, self.drift, vector) else []

    def item_input(self, item: ItemLike) -> np.ndarray:
        return item.vector

    def item_inputs(self, stored: np.ndarray) -> np.ndarray:
        return stored

    def short_weight_of(self, domain: str) -> float:
        return self.short_weight

    def text_input(self, text_vector: np.ndarray, domain: str) -> np.ndarray:
        return text_vector

    def catalogue_vector(self, item_id: str, text_vector: np.ndarray, domain: str) -> np.ndarray:
        return text_vector

    def query(self, state: UserState, target: str) -> Query | None:
        """Blend own interest in ``target`` with the count-weighted interest of other domains."""
        own = state.domains.get(target)
        others = {k: d for k, d in state.domains.items() if k != target and d.liked}
        n_own = own.count if own is not None and own.liked else 0
        c_own = n_own / (n_own + self.own_prior) if n_own else 0.0
        total_other = sum(d.count for d in others.values())
        if not n_own and not total_other:
            return None
        weights: dict[str, float] = {}
        # sized from a domain that takes part: one a rebase emptied may have no size at all
        vec = np.zeros_like((own if n_own else next(iter(others.values()))).long_sum)
        if n_own:
            weights[target] = c_own if total_other else 1.0
            vec += weights[target] * domain_vector(
                own, self.short_weight, self.drift.user_short_weight
            )
        for name, d in others.items():
            weights[name] = (1.0 - (c_own if n_own else 0.0)) * d.count / total_other
            vec += weights[name] * domain_vector(d, self.short_weight, self.drift.user_short_weight)
        strategy = (
            Strategy.BLEND
            if n_own and total_other
            else Strategy.OWN
            if n_own
            else Strategy.TRANSFER
        )
        return Query(vec.astype(np.float32), strategy, {k: round(v, 4) for k, v in weights.items()})

    def short_term_query(self, state: UserState, target: str) -> np.ndarray | None:
        """None: the text space does not split lists (its short-term weight is fixed, not
        learned, so it says nothing about where the population's next items are)."""
        return None
