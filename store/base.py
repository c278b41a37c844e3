"""The vector store's interface and value objects, shared by every engine.

Items and users live in two collections. Each point carries its original string id and its
domain in the payload; the point id itself is a UUIDv5 of that string, because Qdrant accepts
only unsigned integers or UUIDs as ids. Scores are plain dot products of the stored vectors:
vectors need not be unit length (a popularity term may be folded in as an extra dimension), so
cosine distance, which renormalises, would be wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np

from inference.errors import RecommenderError, StoreError

T = TypeVar("T")

# Fixed forever: changing it orphans every stored point.
POINT_NAMESPACE = uuid.UUID("6f1c8a52-3d0e-5b7a-9c41-2e8f0d7b5a13")
# Joins user id and domain into one key; a unit separator cannot occur in sane ids.
USER_KEY_SEP = "\x1f"

ITEM_ID_KEY = "item_id"
USER_ID_KEY = "user_id"
DOMAIN_KEY = "domain"


# uuid5 costs a SHA-1 and a UUID object (~2 us): every query excludes up to WORKER_RECENT_ITEMS
# consumed items and every batch upserts its users' points, so the ids are memoised. Bounded:
# ~150 bytes an entry, a few tens of MiB at the limits.
@lru_cache(maxsize=1 << 18)
def item_point_id(item_id: str) -> uuid.UUID:
    """The Qdrant point id of an item."""
    return uuid.uuid5(POINT_NAMESPACE, item_id)


@lru_cache(maxsize=1 << 17)
def user_point_id(user_id: str, domain: str) -> uuid.UUID:
    """The Qdrant point id of one user's vector in one domain."""
    return uuid.uuid5(POINT_NAMESPACE, user_id + USER_KEY_SEP + domain)


def as_vector(values: object) -> np.ndarray:
    """A read-only, finite, 1-D float32 copy of ``values`` (raises ValueError otherwise)."""
    vec = np.array(values, dtype=np.float32)  # always a copy: callers may reuse their buffers
    if vec.ndim != 1 or vec.size == 0:
        raise ValueError(f"a vector must be 1-D and non-empty, got shape {vec.shape}")
    if not np.isfinite(vec).all():
        raise ValueError("a vector must be finite (found NaN or inf)")
    vec.setflags(write=False)
    return vec


# eq=False on the vector-bearing classes: the generated __eq__ would compare numpy arrays,
# whose truth value is ambiguous. Compare vectors with np.allclose instead.
@dataclass(frozen=True, eq=False, slots=True)
class ItemPoint:
    """An item's vector in its domain."""

    item_id: str
    domain: str
    vector: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", as_vector(self.vector))


@dataclass(frozen=True, eq=False, slots=True)
class UserPoint:
    """One user's interest vector in one domain."""

    user_id: str
    domain: str
    vector: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", as_vector(self.vector))


class Hit(NamedTuple):
    """One recommended item with its dot-product score.

    A NamedTuple rather than a frozen dataclass: a micro-batch builds thousands, and the
    dataclass's ``__init__`` (three ``object.__setattr__``) cost ~1.7x as much (timeit,
    Python 3.11: 460 against 270 ns).
    """

    item_id: str
    domain: str
    score: float


@dataclass(frozen=True, eq=False, slots=True)
class ItemQuery:
    """Top-``k`` items of ``domain`` nearest to ``vector``, never any of ``exclude_item_ids``."""

    vector: np.ndarray
    domain: str
    k: int
    exclude_item_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", as_vector(self.vector))
        object.__setattr__(self, "exclude_item_ids", tuple(self.exclude_item_ids))
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")


@runtime_checkable
class VectorStore(Protocol):
    """Item and user vectors with filtered top-k search by dot product.

    Thread-safety: an instance is NOT safe for concurrent use. The worker calls it one call at
    a time, from one executor thread or (Qdrant Edge) the event loop's: the engines' handles accept
    calls from a thread other than the one that opened them, but the domain cache and the lazy
    opening of collections are unsynchronised.

    Errors: every failure of the engine is raised as ``StoreError`` (the original as
    ``__cause__``) so that the caller can back off and retry; a collection whose vector size
    differs from what ``ensure_collections`` asks for raises ``ConfigError``; malformed
    arguments (wrong vector length, NaN) raise ``ValueError`` before reaching the engine.
    """

    #: True when every call holds the GIL from start to end (Qdrant Edge): the worker then calls
    #: the store inline on its event loop, where a thread would only add hand-overs.
    holds_gil: ClassVar[bool]
    #: The folder holding the store when it lives inside this process (Qdrant Edge, client local
    #: mode): each worker then has a store of its own and reads the whole catalogue into it (see
    #: streams.catalogue_replica). None when every worker shares one store (a Qdrant server).
    local_dir: Path | None

    def ensure_collections(self, item_dim: int, user_dim: int | None = None) -> None:
        """Create (or open and check) both collections; ``user_dim`` defaults to ``item_dim``."""
        ...

    def upsert_items(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items; visible to queries when this returns."""
        ...

    def delete_items(self, item_ids: Iterable[str]) -> None:
        """Delete items by id; unknown ids are ignored."""
        ...

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """The stored items among ``item_ids`` (missing ids are absent from the result)."""
        ...

    def upsert_users(self, points: Sequence[UserPoint]) -> None:
        """Insert or replace users' per-domain vectors."""
        ...

    def get_user(self, user_id: str, domain: str) -> np.ndarray | None:
        """The user's stored vector in ``domain``, or None."""
        ...

    def query_items(self, q: ItemQuery) -> list[Hit]:
        """Top-k items of ``q.domain`` by dot product, best first, excluded ids left out."""
        ...

    def query_items_batch(self, qs: Sequence[ItemQuery]) -> list[list[Hit]]:
        """``query_items`` for each query, in order, as one batched engine call."""
        ...

    def count_items(self, domain: str | None = None) -> int:
        """Exact number of items (of ``domain`` when given)."""
        ...

    def domains(self) -> set[str]:
        """Domains with at least one item (cached; refreshed after deletions)."""
        ...

    def optimize(self) -> None:
        """Build indexes now (HNSW on Edge; freezes the process meanwhile, see store.edge).

        A no-op where the engine indexes by itself (server) or never (client local mode).
        """
        ...

    def close(self) -> None:
        """Persist and release the engine; idempotent."""
        ...


@contextmanager
def engine_errors(operation: str) -> Iterator[None]:
    """Re-raise anything the engine throws as StoreError, keeping the original as __cause__.

    Qdrant Edge raises bare ``Exception``; qdrant-client raises transport, HTTP and ValueError
    types: the caller must not need to know which, so everything is caught here. Our own
    errors pass through untouched.
    """
    try:
        yield
    except RecommenderError:
        raise
    except Exception as exc:
        raise StoreError(f"vector store: {operation} failed: {exc}") from exc


def check_dim(vector: np.ndarray, dim: int | None, what: str) -> None:
    """Raise ValueError when ``vector`` does not have the collection's dimension."""
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"{what} vector has {vector.shape[0]} dimensions, the collection {dim}")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
