"""Offline bootstrap: fit a ``ModelBundle`` from interaction history and the catalogue.

Steps (each reusable on its own, so evaluation can tune the cheap ones without refitting all):

1. ``fit_item_space``: collaborative factors (``inference.collab``) turned into item *input*
   vectors ``v * count**-a_in`` (rare items say more about a user) and *output* vectors
   ``v * count**a_out`` (popular items are likelier to be consumed), fused with the text
   encoder: a ridge bridge predicts both from the title, and an item's vectors are
   ``λ collab + (1 - λ) bridge`` with ``λ = n / (n + fusion_prior)``, so an item with no
   interactions gets exactly the vector the stream will give a brand-new item.
2. ``fit_projections``: per ordered domain pair, the ridge projection between users' decayed
   interest means (``inference.projection``), fitted on users active in both domains.
3. ``assemble``: the versioned bundle.

Fitting needs scipy (via ``inference.collab``); nothing here is imported by the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import permutations

import numpy as np

from inference.bundle import BundleParams, ModelBundle, pair_key
from inference.collab import CollabEmbedding, CollabParams, fit_collab, multi_domain_rows
from inference.errors import ConfigError
from inference.projection import fit_projection, own_projection
from inference.text_bridge import TextBridge, fit_text_bridge
from inference.transfer import domain_summaries


@dataclass(frozen=True)
class ItemCatalogue:
    """Item ids (as the stream names them) and their domains, row i = item index i."""

    ids: tuple[str, ...]
    domains: np.ndarray  # [n_items] str

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.domains):
            raise ConfigError("item ids and domains differ in length")


@dataclass(frozen=True)
class FitParams:
    """Everything ``fit_bundle`` needs besides data."""

    collab: CollabParams = field(default_factory=CollabParams)
    input_pop_exponent: float = 0.3
    output_pop_exponent: float = 0.45
    fusion_prior: float = 3.0  # interactions at which collab and text count equally
    bridge_l2: float = 1.0
    bridge_max_weight: float = 20.0  # cap of an item's weight (its count) in the bridge fit
    transfer_rank: int = 32
    own_rank: int = 128
    projection_l2: float = 1.0
    bundle: BundleParams = field(default_factory=BundleParams)


@dataclass(frozen=True)
class ItemSpace:
    """Fused item vectors and the text bridge that reproduces them for new items."""

    inputs: np.ndarray  # [n_items, dim]
    outputs: np.ndarray  # [n_items, dim + 1], last = log1p(count)
    bridge: TextBridge
    collab: CollabEmbedding


def fit_item_space(
    sequences: Sequence[Sequence[int]],
    items: ItemCatalogue,
    text_vectors: np.ndarray,
    params: FitParams,
) -> ItemSpace:
    """Collaborative factors fused with the text bridge (step 1)."""
    if text_vectors.shape[0] != len(items.ids):
        raise ConfigError(f"{text_vectors.shape[0]} text vectors for {len(items.ids)} items")
    collab = fit_collab(sequences, items.domains, params.collab)
    counts = collab.counts.astype(np.float64)
    safe = np.maximum(counts, 1.0)
    v = collab.vectors.astype(np.float64)
    dim = collab.dim
    both = np.hstack(
        [
            v * safe[:, None] ** -params.input_pop_exponent,
            v * safe[:, None] ** params.output_pop_exponent,
        ]
    )
    bridge = fit_text_bridge(
        text_vectors,
        both,
        items.domains,
        sample_weight=np.minimum(counts, params.bridge_max_weight),
        l2=params.bridge_l2,
    )
    predicted = np.zeros_like(both)
    for domain in bridge.domains:
        rows = np.flatnonzero(items.domains == domain)
        predicted[rows] = bridge.apply(text_vectors[rows], domain)
    if params.fusion_prior > 0:
        trust = counts / (counts + params.fusion_prior)
    else:
        trust = (counts > 0).astype(np.float64)
    fused = trust[:, None] * both + (1.0 - trust[:, None]) * predicted
    outputs = np.hstack([fused[:, dim:], np.log1p(counts)[:, None]])
    return ItemSpace(
        inputs=fused[:, :dim].astype(np.float32),
        outputs=outputs.astype(np.float32),
        bridge=bridge,
        collab=collab,
    )


def linked_means(
    sequences: Sequence[Sequence[int]],
    item_domains: np.ndarray,
    inputs: np.ndarray,
    half_life: float,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per ordered domain pair, the (source means, target means) of users active in both."""
    domains = sorted({str(d) for d in np.unique(item_domains)})
    linked = multi_domain_rows(sequences, item_domains)
    summaries = [
        domain_summaries(seq, item_domains, inputs, half_life)
        for seq, keep in zip(sequences, linked, strict=True)
        if keep
    ]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for source, target in permutations(domains, 2):
        pairs = [(s[source].mean, s[target].mean) for s in summaries if source in s and target in s]
        if pairs:  # no user links these domains yet: no transfer between them
            out[pair_key(source, target)] = (
                np.stack([p[0] for p in pairs]),
                np.stack([p[1] for p in pairs]),
            )
    return out


def projections_from_means(
    means: dict[str, tuple[np.ndarray, np.ndarray]],
    domains: Sequence[str],
    dim: int,
    params: FitParams,
) -> dict[str, np.ndarray]:
    """Cross-domain projections from linked means, plus the own-domain ones."""
    out = {
        key: fit_projection(z, m, min(params.transfer_rank, dim), params.projection_l2)
        for key, (z, m) in means.items()
    }
    for domain in domains:
        out[pair_key(domain, domain)] = own_projection(dim, min(params.own_rank, dim))
    return {k: v.astype(np.float32) for k, v in out.items()}


def fit_projections(
    sequences: Sequence[Sequence[int]],
    item_domains: np.ndarray,
    inputs: np.ndarray,
    params: FitParams,
) -> dict[str, np.ndarray]:
    """Cross-domain projections from users active in both domains, plus own-domain ones (step 2)."""
    means = linked_means(sequences, item_domains, inputs, params.bundle.half_life_events)
    domains = sorted({str(d) for d in np.unique(item_domains)})
    return projections_from_means(means, domains, inputs.shape[1], params)


def assemble(
    items: ItemCatalogue,
    space: ItemSpace,
    projections: dict[str, np.ndarray],
    params: FitParams,
    text_model: str = "",
) -> ModelBundle:
    """The versioned bundle from fitted parts (step 3)."""
    info = {
        "collab": asdict(params.collab),
        "input_pop_exponent": params.input_pop_exponent,
        "output_pop_exponent": params.output_pop_exponent,
        "fusion_prior": params.fusion_prior,
        "bridge_l2": params.bridge_l2,
        "transfer_rank": params.transfer_rank,
        "own_rank": params.own_rank,
        "projection_l2": params.projection_l2,
        "interactions": int(space.collab.counts.sum()),
    }
    return ModelBundle(
        item_ids=tuple(items.ids),
        item_domains=tuple(str(d) for d in items.domains),
        inputs=space.inputs,
        outputs=space.outputs,
        projections=projections,
        bridge=space.bridge,
        params=params.bundle,
        text_model=text_model,
        fit_info=info,
    )


def fit_bundle(
    sequences: Sequence[Sequence[int]],
    items: ItemCatalogue,
    text_vectors: np.ndarray,
    params: FitParams | None = None,
    text_model: str = "",
) -> ModelBundle:
    """Fit everything from history: ``sequences`` hold item indices in time order."""
    params = params or FitParams()
    space = fit_item_space(sequences, items, text_vectors, params)
    projections = fit_projections(sequences, items.domains, space.inputs, params)
    return assemble(items, space, projections, params, text_model)
