"""Synthetic two-domain interaction data with a planted structure, for the transfer tests.

Items of both domains belong to ``clusters`` interest groups; a user has one group and mostly
touches that group's items in each domain they use. Only users active in both domains link the
domains, as on the real data. Titles are per-domain cluster centroids plus noise, so a title
predicts an item's group within its domain (what the text bridge must learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.fit import ItemCatalogue


@dataclass(frozen=True)
class Planted:
    """Generated data and the truth behind it."""

    sequences: list[np.ndarray]
    user_cluster: np.ndarray
    items: ItemCatalogue
    item_cluster: np.ndarray
    text: np.ndarray

    def domain_items(self, domain: str) -> np.ndarray:
        """Item indices of one domain."""
        return np.flatnonzero(self.items.domains == domain)


def planted(
    clusters: int = 4,
    per_cluster: tuple[int, int] = (10, 15),
    users: tuple[int, int, int] = (150, 250, 250),
    noise: float = 0.1,
    text_dim: int = 16,
    seed: int = 0,
) -> Planted:
    """Food-only, kitchen-only and both-domain users (counts in ``users``) over planted groups."""
    rng = np.random.default_rng(seed)
    domains, groups = [], []
    for name, size in zip(("food", "kitchen"), per_cluster, strict=True):
        for c in range(clusters):
            domains += [name] * size
            groups += [c] * size
    item_domains = np.array(domains)
    item_cluster = np.array(groups)
    n = item_domains.size
    centroids = {d: rng.standard_normal((clusters, text_dim)) for d in ("food", "kitchen")}
    text = np.stack(
        [
            centroids[d][c] + 0.5 * rng.standard_normal(text_dim)
            for d, c in zip(item_domains, item_cluster, strict=True)
        ]
    )
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    # within a group, some items are much more popular than others (as in real data)
    appeal = rng.pareto(1.5, n) + 1.0

    def pick(domain: str, cluster: int, k: int) -> np.ndarray:
        mine = np.flatnonzero((item_domains == domain) & (item_cluster == cluster))
        other = np.flatnonzero(item_domains == domain)
        out = []
        for _ in range(k):
            pool = other if rng.random() < noise else mine
            p = appeal[pool] / appeal[pool].sum()
            out.append(rng.choice(pool, p=p))
        return np.unique(np.array(out))

    sequences, user_cluster = [], []
    plan = ["food"] * users[0] + ["kitchen"] * users[1] + ["both"] * users[2]
    for kind in plan:
        c = int(rng.integers(clusters))
        parts = [
            pick(d, c, int(rng.integers(3, 8)))
            for d in (("food", "kitchen") if kind == "both" else (kind,))
        ]
        seq = np.concatenate(parts)
        sequences.append(rng.permutation(seq).astype(np.int64))
        user_cluster.append(c)
    items = ItemCatalogue(tuple(str(i) for i in range(n)), item_domains)
    return Planted(sequences, np.array(user_cluster), items, item_cluster, text.astype(np.float32))
