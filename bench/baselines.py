"""Baselines of the Food→Kitchen transfer evaluation (the README's four, plus two references).

Every scorer maps a batch of user histories (item indices in time order, any domain) to scores
over all items of the target domain, so one ranking/metric code path serves every method:

* ``popularity``: train interaction count in the target domain;
* ``cooc-knn``: item co-occurrence over all train sequences, cosine-normalised
  (``C_ij / sqrt(n_i n_j)``), summed over the history — the README's co-occurrence baseline;
* ``cooc-knn-raw``: the same with raw counts (not in the README; stronger here because it keeps
  the popularity bias, so it is reported as the toughest baseline);
* ``text-only``: normalised mean title vector of the history, cosine to target titles;
* ``text-ridge``: ridge map from the source-domain mean title vector to the target-domain one,
  fitted on train users active in both, then cosine to target titles + 0.3 · log-popularity
  scaled to [0, 1];
* ``random``: uniform scores (reference for the item cold-start protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from inference.collab import interaction_matrix, multi_domain_rows


class Scorer(Protocol):
    """A recommendation method under evaluation."""

    name: str

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """Scores [len(histories), n_target_items] over the target domain's items (sorted)."""
        ...


@dataclass(frozen=True)
class TrainData:
    """What baselines may fit on: train sequences and the catalogue's domains."""

    sequences: Sequence[np.ndarray]
    item_domains: np.ndarray
    matrix: sp.csr_matrix = field(init=False)
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        m = interaction_matrix(self.sequences, len(self.item_domains))
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "counts", np.asarray(m.sum(axis=0)).ravel())

    def items_of(self, domain: str) -> np.ndarray:
        """Item indices of one domain."""
        return np.flatnonzero(self.item_domains == domain)


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary batch×item matrix of the histories."""
    return interaction_matrix(histories, n_items)


@dataclass(frozen=True)
class Popularity:
    """Target-domain train popularity; ties broken at random per user (seeded), never by id.

    ``counts`` overrides the train counts (the item cold-start protocol's oracle reference).
    """

    data: TrainData
    seed: int = 0
    name: str = "popularity"
    counts: np.ndarray | None = None

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """Same ranking for everyone, up to the order of equally popular items."""
        items = self.data.items_of(target)
        counts = self.data.counts if self.counts is None else self.counts
        # jitter < 1 only reorders items with equal integer counts
        jitter = np.random.default_rng(self.seed).random((len(histories), items.size)) * 0.5
        return counts[items][None, :] + jitter


@dataclass(frozen=True)
class RandomScores:
    """Uniform random scores (seeded per call)."""

    n_items_by_domain: dict[str, int]
    seed: int = 0
    name: str = "random"

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """A fresh random permutation per user."""
        rng = np.random.default_rng(self.seed)
        return rng.random((len(histories), self.n_items_by_domain[target]))


@dataclass(frozen=True)
class CoocKNN:
    """Item co-occurrence k-NN: sum over history items of their co-occurrence with each item."""

    data: TrainData
    normalise: bool = True
    name: str = "cooc-knn"
    _sim: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        x = self.data.matrix
        c = (x.T @ x).tocsr()
        c.setdiag(0)
        c.eliminate_zeros()
        if self.normalise:
            inv = 1.0 / np.sqrt(np.maximum(self.data.counts, 1.0))
            c = (sp.diags(inv) @ c @ sp.diags(inv)).tocsr()
        object.__setattr__(self, "_sim", c.tocsc())

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """History rows times the similarity columns of the target domain."""
        h = history_matrix(histories, len(self.data.item_domains))
        return (h @ self._sim[:, self.data.items_of(target)]).toarray()


def _mean_direction(text: np.ndarray, items: np.ndarray) -> np.ndarray:
    m = text[items].mean(axis=0)
    return m / (np.linalg.norm(m) + 1e-12)


@dataclass(frozen=True)
class TextOnly:
    """Cosine between the history's mean title vector and every target title."""

    text: np.ndarray
    item_domains: np.ndarray
    name: str = "text-only"

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """No learning: titles only."""
        q = np.stack([_mean_direction(self.text, h) for h in histories])
        return q @ self.text[np.flatnonzero(self.item_domains == target)].T


@dataclass(frozen=True)
class TextRidge:
    """Ridge map between domains' mean title vectors, plus scaled log-popularity."""

    data: TrainData
    text: np.ndarray
    l2: float = 1.0
    pop_weight: float = 0.3
    name: str = "text-ridge"
    _maps: dict[tuple[str, str], np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        dom = self.data.item_domains
        linked = [
            s
            for s, keep in zip(
                self.data.sequences, multi_domain_rows(self.data.sequences, dom), strict=True
            )
            if keep
        ]
        maps = {}
        for source in np.unique(dom):
            for target in np.unique(dom):
                if source == target:
                    continue
                pairs = [(s[dom[s] == source], s[dom[s] == target]) for s in linked]
                pairs = [(a, b) for a, b in pairs if a.size and b.size]
                z = np.stack([_mean_direction(self.text, a) for a, _ in pairs]).astype(np.float64)
                m = np.stack([_mean_direction(self.text, b) for _, b in pairs]).astype(np.float64)
                w = np.linalg.solve(z.T @ z + self.l2 * np.eye(z.shape[1]), z.T @ m)
                maps[(str(source), str(target))] = w
        object.__setattr__(self, "_maps", maps)

    def scores(self, histories: Sequence[np.ndarray], target: str) -> np.ndarray:
        """Map each history's source-domain mean into the target domain, then cosine."""
        dom = self.data.item_domains
        items = self.data.items_of(target)
        lp = np.log1p(self.data.counts)
        pop = lp[items] / lp.max()
        queries = np.empty((len(histories), self.text.shape[1]))
        for i, h in enumerate(histories):
            src = h[dom[h] != target]
            source = str(dom[src[0]])  # headline histories hold one source domain
            p = _mean_direction(self.text, src) @ self._maps[(source, target)]
            queries[i] = p / (np.linalg.norm(p) + 1e-12)
        return queries @ self.text[items].T + self.pop_weight * pop[None, :]
