"""The fitted bundle as the worker's interest model (the same code the offline evaluation runs).

The vector store holds, per item, ``[output | input]``: the output part is what items are ranked
by (collaborative + text, last coordinate log-popularity), the input part is what a user's
interest accumulates when they touch the item. Queries carry zeros over the input part, so the
dot product the store computes is exactly ``q · output``, and the worker reads an item's input
vector back from the same point: one lookup, no second store, nothing lost on restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.blend import ItemLike, Query, domain_vector
from inference.bundle import ModelBundle
from inference.drift import DriftParams, observe_user
from inference.errors import ModelError
from inference.interest import InterestParams, UserState
from inference.online_projection import OnlineProjections
from inference.recency_mix import InterestBefore
from inference.transfer import DomainSummary, Explanation, query_vector


@dataclass
class BundleModel:
    """Adapter from :class:`ModelBundle` to the worker's ``InterestModel`` protocol."""

    bundle: ModelBundle
    # the offline fit used long-term means only; adaptive, the stream moves it per domain
    # (OnlineProjections.short_weight)
    short_weight: float = 0.0
    drift: DriftParams = field(default_factory=DriftParams)
    version: str = field(init=False)  # the item space: user states are rebased when it changes
    online: OnlineProjections = field(init=False)

    def __post_init__(self) -> None:
        self.version = f"bundle@{self.bundle.version}"
        self._out = self.bundle.output_dim
        self._in = self.bundle.input_dim
        self.online = OnlineProjections(self.bundle, self.drift)

    @property
    def serving_version(self) -> str:
        """The bundle plus how many pairs and events have refined it online (projections,
        short-term weights): it advances with nearly every event while adapting."""
        return f"{self.version}+{self.online.version}" if self.drift.adaptive else self.version

    def learn(
        self,
        state: UserState,
        domain: str,
        partition: int,
        offset: int,
        vector: np.ndarray | None = None,
        before: InterestBefore | None = None,
    ) -> list[str]:
        """User drift in ``domain``, then refine the projections with the user's pairs and the
        domain's short-term weight with the event (when ``before`` and ``vector`` are given)."""
        levels = []
        d = state.domains.get(domain)
        if d is not None and observe_user(d, self.drift, vector):
            levels.append("user")
        mix = (domain, before, vector) if before is not None and vector is not None else None
        if self.online.observe(state, partition, offset, mix):
            levels.append("population")
        return levels

    @classmethod
    def load(cls, folder: Path) -> BundleModel:
        """Load a bundle folder written by ``xrec eval-transfer --bundle-out DIR``."""
        return cls(ModelBundle.load(folder))

    @property
    def stored_dim(self) -> int:
        """Dimension of item (and user) points in the vector store."""
        return self._out + self._in

    def interest_params(self, base: InterestParams) -> InterestParams:
        """The worker's update parameters with the bundle's fitted recency half-life."""
        h = self.bundle.params.half_life_events
        return InterestParams(
            half_life_events=h if h > 0 else math.inf,
            half_life_s=base.half_life_s,
            short_alpha=base.short_alpha,
            recent_items=base.recent_items,
            event_id_window=base.event_id_window,
        )

    def stored_vector(self, output: np.ndarray, inp: np.ndarray) -> np.ndarray:
        return np.concatenate([output, inp]).astype(np.float32)

    def short_weight_of(self, domain: str) -> float:
        """The short-term weight queries use in ``domain``: fitted, or learned online."""
        return self.online.short_weight(domain, self.short_weight)

    def item_input(self, item: ItemLike) -> np.ndarray:
        vec = np.asarray(item.vector, np.float32)
        if vec.shape[0] != self.stored_dim:
            raise ModelError(
                f"item {item.item_id!r} has a {vec.shape[0]}-d vector, this bundle "
                f"stores {self.stored_dim}: re-index the catalogue for {self.version}"
            )
        return vec[self._out :]

    def item_inputs(self, stored: np.ndarray) -> np.ndarray:
        return stored[:, self._out :]

    def text_input(self, text_vector: np.ndarray, domain: str) -> np.ndarray:
        return self.bundle.text_input(text_vector, domain)

    def catalogue_vector(self, item_id: str, text_vector: np.ndarray, domain: str) -> np.ndarray:
        idx = self.bundle.index_of(item_id)
        if idx is not None:  # fitted item: keep its collaborative vectors
            return self.stored_vector(self.bundle.outputs[idx], self.bundle.inputs[idx])
        if domain not in self.bundle.domains:
            raise ModelError(
                f"domain {domain!r} is not in bundle {self.bundle.version} "
                f"(it has {', '.join(self.bundle.domains)}); refit with it"
            )
        new = self.bundle.vector_for_new_item(text_vector, domain)
        return self.stored_vector(new.output, new.input)

    def query(self, state: UserState, target: str) -> Query | None:
        """The blended query in ``target``, with the share of the list the short-term interest
        alone is to fill: the domain's served short-term weight (0 as fitted)."""
        if target not in self.bundle.domains:
            return None
        q, why = self._query(state, target, None)
        weights = {k: round(v, 4) for k, v in why.weights.items()}
        return Query(q, why.strategy, weights, short_share=self.short_weight_of(target))

    def short_term_query(self, state: UserState, target: str) -> np.ndarray | None:
        """The query of every domain's short-term interest alone (a domain without one: its
        long-term mean), for the places ``Query.short_share`` gives it."""
        if target not in self.bundle.domains:
            return None
        return self._query(state, target, 1.0)[0]

    def _query(
        self, state: UserState, target: str, short_weight: float | None
    ) -> tuple[np.ndarray, Explanation]:
        """The padded query with each domain's served short-term weight (None) or this one."""
        summaries = {
            name: DomainSummary(
                domain_vector(
                    d,
                    self.short_weight_of(name) if short_weight is None else short_weight,
                    self.drift.user_short_weight,
                ),
                d.count,
            )
            for name, d in state.domains.items()
            if d.liked
        }
        q, why = query_vector(summaries, target, self.bundle, self.online.projection)
        padded = np.zeros(self.stored_dim, np.float32)
        padded[: self._out] = q
        return padded, why

    def bootstrap_points(self) -> list[tuple[str, str, np.ndarray]]:
        """(item id, domain, stored vector) of every fitted item, to seed the store."""
        return [
            (i, d, self.stored_vector(self.bundle.outputs[k], self.bundle.inputs[k]))
            for k, (i, d) in enumerate(
                zip(self.bundle.item_ids, self.bundle.item_domains, strict=True)
            )
        ]
