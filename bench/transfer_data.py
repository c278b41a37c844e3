"""Load the Amazon Food→Kitchen cross-domain dataset (items, train/valid/test sequences).

The dataset is read in place from ``../shared/datasets/amazon-food-kitchen`` (relative to the
repository root) or from an explicit path / ``XREC_DATA_DIR``; it is never copied into the repo.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.errors import ConfigError

DATA_ENV = "XREC_DATA_DIR"
DATASET_NAME = "amazon-food-kitchen"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "datasets" / DATASET_NAME
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "transfer"
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "all-MiniLM-L6-v2"
DOMAINS: tuple[str, str] = ("food", "kitchen")

log = logging.getLogger(__name__)
SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class Catalogue:
    """All items: dense integer ids 0..n-1, their domain and title."""

    domains: np.ndarray  # [n_items] str, one of DOMAINS
    titles: tuple[str, ...]
    asins: tuple[str, ...]

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.titles)

    def items_of(self, domain: str) -> np.ndarray:
        """Sorted item ids of one domain."""
        return np.flatnonzero(self.domains == domain)


@dataclass(frozen=True)
class Split:
    """One split: user ids and their chronological item-id sequences."""

    name: str
    users: tuple[str, ...]
    sequences: tuple[np.ndarray, ...]  # int64 arrays, in time order

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Dataset:
    """The whole dataset: catalogue plus the three splits."""

    root: Path
    catalogue: Catalogue
    splits: dict[str, Split]

    @property
    def train(self) -> Split:
        """Sequences that may be used for fitting."""
        return self.splits["train"]


def resolve_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Find the dataset folder: explicit path, then ``XREC_DATA_DIR``, then the shared default."""
    chosen = Path(path) if path else Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)
    if not (chosen / "items.tsv").is_file():
        raise ConfigError(
            f"dataset not found at {chosen}: pass --data PATH or set {DATA_ENV} to the folder "
            f"holding items.tsv/train.tsv/valid.tsv/test.tsv"
        )
    return chosen


def _rows(path: Path) -> list[list[str]]:
    # Titles contain quotes; QUOTE_NONE keeps them verbatim (tabs never occur inside fields).
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [row for row in reader if row]


def load_catalogue(root: Path) -> Catalogue:
    """Read ``items.tsv``; item ids must be dense and in order."""
    rows = _rows(root / "items.tsv")
    ids = np.array([int(r[0]) for r in rows])
    if not np.array_equal(ids, np.arange(len(rows))):
        raise ConfigError(f"{root / 'items.tsv'}: item ids are not dense 0..n-1 in order")
    return Catalogue(
        domains=np.array([r[1] for r in rows]),
        titles=tuple(r[3] for r in rows),
        asins=tuple(r[2] for r in rows),
    )


def load_split(root: Path, name: str) -> Split:
    """Read one ``<name>.tsv`` of user id + comma-separated item ids."""
    rows = _rows(root / f"{name}.tsv")
    return Split(
        name=name,
        users=tuple(r[0] for r in rows),
        sequences=tuple(np.array(r[1].split(","), dtype=np.int64) for r in rows),
    )


def load_dataset(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Load catalogue and all splits from the resolved dataset folder."""
    root = resolve_data_dir(path)
    return Dataset(
        root=root,
        catalogue=load_catalogue(root),
        splits={name: load_split(root, name) for name in SPLITS},
    )


def split_by_domain(sequence: np.ndarray, item_domains: np.ndarray) -> dict[str, np.ndarray]:
    """The items of one sequence per domain, order kept (domains with no items are absent)."""
    doms = item_domains[sequence]
    return {d: sequence[doms == d] for d in np.unique(doms)}


def subset(split: Split, indices: Sequence[int]) -> Split:
    """A smaller split with the chosen users (for fast tests)."""
    return Split(
        name=split.name,
        users=tuple(split.users[i] for i in indices),
        sequences=tuple(split.sequences[i] for i in indices),
    )


def title_vectors(
    dataset: Dataset,
    model_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, str]:
    """The production text encoder's vectors of every item title, and the encoder's version.

    Encoding 36k titles takes minutes on a small CPU, so the result is cached under ``.cache``
    keyed by the model's version hash and the catalogue's content hash: a re-exported model or a
    changed catalogue can never be served stale vectors.
    """
    from inference.encoder import TextEncoder  # onnxruntime: only needed when encoding
    from inference.model_settings import ModelSettings

    settings = ModelSettings(dir=Path(model_dir or DEFAULT_MODEL_DIR))
    with TextEncoder(settings) as encoder:
        digest = hashlib.sha256("\n".join(dataset.catalogue.titles).encode()).hexdigest()[:12]
        version = f"{encoder.model_version}-{encoder.variant}"
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"titles-{version}-{digest}.npy")
        path = Path(cache_dir or DEFAULT_CACHE_DIR) / name
        if path.is_file():
            vectors = np.load(path)
            if vectors.shape == (dataset.catalogue.n_items, encoder.dim):
                return vectors, version
        started = time.perf_counter()
        vectors = encoder.encode(list(dataset.catalogue.titles)).astype(np.float32)
        log.info("encoded %d titles in %.0f s", len(vectors), time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: a killed run never leaves a truncated cache file
    return vectors, version
