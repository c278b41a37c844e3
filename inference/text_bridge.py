"""Map a text-encoder vector into the collaborative item space (the new-item path).

A brand-new item has a title but no interactions, so it has no collaborative vector. The bridge
is a ridge regression, one per domain, from the title vector (plus a bias) to the item's fitted
vectors, learned on the items that do have interactions (weighted by how well their vectors are
known). Domains get their own map because the same words mean different interests in them.

Applying a bridge is a matrix product: numpy only, safe for the streaming worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from inference.errors import ConfigError, ModelError


@dataclass(frozen=True)
class TextBridge:
    """Per-domain linear maps from text vectors (``text_dim``) to item vectors (``out_dim``)."""

    domains: tuple[str, ...]
    weights: np.ndarray  # [n_domains, text_dim + 1, out_dim]; last input row is the bias

    @property
    def text_dim(self) -> int:
        """Dimension of the text vectors the bridge takes."""
        return int(self.weights.shape[1] - 1)

    @property
    def out_dim(self) -> int:
        """Dimension of the vectors the bridge produces."""
        return int(self.weights.shape[2])

    def apply(self, text_vectors: np.ndarray, domain: str) -> np.ndarray:
        """Predicted item vectors [n, out_dim] (or [out_dim] for one text vector)."""
        if domain not in self.domains:
            raise ModelError(f"the text bridge knows domains {self.domains}, not {domain!r}")
        x = np.asarray(text_vectors, dtype=np.float32)
        one = x.ndim == 1
        x = np.atleast_2d(x)
        if x.shape[1] != self.text_dim:
            raise ModelError(
                f"text vector has dim {x.shape[1]}, the bridge was fitted on {self.text_dim}: "
                "the bundle and the text encoder do not match"
            )
        w = self.weights[self.domains.index(domain)]
        out = x @ w[:-1] + w[-1]
        return out[0] if one else out

    def as_arrays(self) -> Mapping[str, np.ndarray]:
        """Arrays to store in a bundle."""
        return {"bridge_weights": self.weights}


def fit_text_bridge(
    text_vectors: np.ndarray,
    targets: np.ndarray,
    item_domains: np.ndarray,
    sample_weight: np.ndarray,
    l2: float = 1.0,
) -> TextBridge:
    """Fit one ridge map per domain from ``text_vectors`` to ``targets``.

    Items with ``sample_weight == 0`` (no interactions: nothing to learn from) are left out.
    ``l2`` is the ridge penalty on the weights (the bias is not penalised).
    """
    x = np.asarray(text_vectors, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] != len(item_domains):
        raise ConfigError("text_vectors, targets and item_domains must have one row per item")
    domains = tuple(sorted(np.unique(item_domains).tolist()))
    weights = np.zeros((len(domains), x.shape[1] + 1, y.shape[1]), dtype=np.float64)
    for k, domain in enumerate(domains):
        rows = np.flatnonzero((item_domains == domain) & (sample_weight > 0))
        if rows.size == 0:
            continue  # a domain with no interactions yet: new items there map to zero
        sw = np.sqrt(sample_weight[rows])[:, None]
        design = np.hstack([x[rows], np.ones((rows.size, 1))]) * sw
        penalty = l2 * np.eye(design.shape[1])
        penalty[-1, -1] = 0.0
        weights[k] = np.linalg.solve(design.T @ design + penalty, design.T @ (y[rows] * sw))
    return TextBridge(domains=domains, weights=weights.astype(np.float32))
