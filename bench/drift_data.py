"""The real-data drift world: Food -> Kitchen users with permutable cross-domain links.

The bundle is fitted on ``train`` only (the transfer bundle's parameters); the stream's users
are the held-out ``valid`` and ``test`` users, so nothing the stream scores was fitted on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.transfer_data import (
    DEFAULT_MODEL_DIR,
    Dataset,
    load_dataset,
    split_by_domain,
    title_vectors,
)
from inference.bundle import BundleParams, ModelBundle
from inference.fit import FitParams, ItemCatalogue, fit_bundle
from synth.drift_real import LinkedWorld

SOURCE, TARGET = "food", "kitchen"
# the parameters `xrec eval-transfer` chose on valid (bench/results/transfer-food-kitchen.md)
FIT = FitParams(
    own_rank=64,
    projection_l2=0.1,
    bundle=BundleParams(half_life_events=10.0, own_prior=3.0, transfer_gain=1.0),
)


def fit_train_bundle(dataset: Dataset, text: np.ndarray, text_model: str) -> ModelBundle:
    """The offline bundle of the drift runs: fitted on the train split alone."""
    cat = dataset.catalogue
    items = ItemCatalogue(tuple(str(i) for i in range(cat.n_items)), cat.domains)
    return fit_bundle(dataset.train.sequences, items, text, FIT, text_model)


def linked_world(dataset: Dataset, bundle: ModelBundle, seed: int, groups: int = 8) -> LinkedWorld:
    """Held-out users active in both domains; taste = mean input vector of their kitchen items."""
    sources, targets, taste = [], [], []
    for name in ("valid", "test"):
        for seq in dataset.splits[name].sequences:
            parts = split_by_domain(seq, dataset.catalogue.domains)
            if len(parts.get(SOURCE, ())) < 2 or len(parts.get(TARGET, ())) < 2:
                continue
            sources.append([str(i) for i in parts[SOURCE]])
            targets.append([str(i) for i in parts[TARGET]])
            taste.append(bundle.inputs[parts[TARGET]].mean(0))
    return LinkedWorld(sources, targets, np.array(taste), SOURCE, TARGET, groups=groups, seed=seed)


def train_bundle(
    data: Path | None, model_dir: Path = DEFAULT_MODEL_DIR
) -> tuple[Dataset, ModelBundle]:
    """Load the dataset, encode titles (cached) and fit the bundle on train."""
    dataset = load_dataset(data)
    text, text_model = title_vectors(dataset, model_dir)
    return dataset, fit_train_bundle(dataset, text, text_model)


def food_kitchen(
    data: Path | None, seed: int, model_dir: Path = DEFAULT_MODEL_DIR
) -> tuple[LinkedWorld, ModelBundle]:
    """The trained bundle and the linked world of ``seed``."""
    dataset, bundle = train_bundle(data, model_dir)
    return linked_world(dataset, bundle, seed), bundle
