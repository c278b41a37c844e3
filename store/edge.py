"""VectorStore on Qdrant Edge: the Qdrant engine embedded in-process, persistent on disk.

Users live in one shard, ``<path>/<users>/`` (see ``store.edge_users``); items in one shard
per domain, ``<path>/<items>/<domain>/`` (see ``store.edge_domains``). What the worker's
author must know about the engine (qdrant-edge-py 0.9, checked by the tests here):

* Durability: every update goes to a write-ahead log before ``update`` returns, so a killed
  process loses nothing; ``close`` flushes segments so that the next open need not replay it.
  A directory can be open by one shard at a time (the WAL is locked): one worker per path.
* Indexing: Edge has no background optimiser. Points land in a plain (brute-force) segment
  until ``optimize()`` builds HNSW; unindexed items cost ~0.2 us each per query (36k items:
  ~7 ms a query, against ~0.3 ms with HNSW). ``optimize`` is a ~50 us no-op until the plain
  segment holds ``indexing_threshold_kb`` of vectors (see ``store.settings``); then it merges
  it into the indexed segment (36k items from scratch: ~5 s with int8, ~15 s without, on 2
  cores; adding to a built graph reuses it: 1-2.5 s). It HOLDS THE GIL throughout, as does
  every query (measured with a ticker thread): an executor thread does not keep the event
  loop running. The worker calls it at startup and when the catalogue stream goes idle
  (``Runtime.optimize_store``).
* Filters: ``Filter(must_not=[HasIdCondition({uuid, ...})])`` drops a user's consumed items;
  ``HasIdCondition`` takes a *set* of UUIDs (or ints/UUID strings). Never assume
  ``len(hits) == k`` even when the domain has enough items.
* Errors are bare ``Exception`` ("Service runtime error: ..."), hence ``engine_errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import qdrant_edge as qe

from inference.errors import ConfigError, StoreError
from store import overfetch
from store.base import (
    DOMAIN_KEY,
    ITEM_ID_KEY,
    Hit,
    ItemPoint,
    ItemQuery,
    UserPoint,
    check_dim,
    chunks,
    engine_errors,
    item_point_id,
)
from store.edge_config import search_params
from store.edge_domains import DomainShards, check_domain
from store.edge_users import UserShard
from store.item_cache import ItemCache
from store.settings import QdrantSettings


class EdgeStore:
    """VectorStore on Qdrant Edge shards under ``settings.path`` (see module docstring)."""

    # Every call holds the GIL from start to end (see the module docstring): the worker runs
    # them on the event loop's thread instead of handing them to an executor thread.
    holds_gil: ClassVar[bool] = True

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._root = Path(settings.path)
        self.local_dir: Path | None = self._root
        self._items = DomainShards(settings, self._root / settings.items_collection)
        self._items_open = False
        self._users = UserShard(settings, self._root / settings.users_collection)
        self._domains: set[str] | None = None
        # point id -> (item id, domain): hits come back without payload (converting payloads
        # to Python dicts was ~20% of a query), and an item's domain names its shard; see
        # _item_names.
        self._names_by_id: dict[int, tuple[str, str]] | None = None
        self._cache = ItemCache(settings.item_cache)  # see store.item_cache
        self._search = search_params(settings)
        self._closed = False

    def __repr__(self) -> str:
        return f"Qdrant Edge (embedded) at {self._root}"

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("vector store is closed")

    def _item_shards(self) -> DomainShards:
        self._check_open()
        if not self._items_open:
            self._items.open_all(None)
            self._items_open = True
        return self._items

    def _refuse_resize(self, item_dim: int, user_dim: int) -> None:
        """Shards holding vectors of another size cannot take these: refuse before closing
        anything, so the store keeps serving what it holds (e.g. a bundle reload that
        changed the vector size is refused and the old bundle goes on)."""
        held = []
        has_items = next(self._items.items(), None) is not None
        if self._items_open and self._items.dim not in (None, item_dim) and has_items:
            held.append(f"items of {self._items.dim} dimensions, not {item_dim}")
        if users := self._users.resize_refused(user_dim):
            held.append(users)
        if held:
            raise ConfigError(
                f"{self._settings.path} holds {' and '.join(held)}: a new vector size needs a "
                "new QDRANT_PATH (restart the worker with it; the catalogue is read again)"
            )

    def ensure_collections(self, item_dim: int, user_dim: int | None = None) -> None:
        """Open (or prepare) the item and user shards, checking their vector size."""
        user_dim = user_dim or item_dim
        for role, dim in (("items", item_dim), ("users", user_dim)):
            if dim < 1:
                raise ValueError(f"{role} dimension must be >= 1, got {dim}")
        self._check_open()
        self._refuse_resize(item_dim, user_dim)
        if not self._items_open or self._items.dim != item_dim:
            self._items.open_all(item_dim)  # item shards are created with their first item
            self._items_open = True
            self._names_by_id = self._domains = None
        self._users.ensure(user_dim)

    def optimize(self) -> None:
        """Build HNSW over the items waiting in plain segments; blocks, holding the GIL.

        A no-op (~50 us a domain) unless at least ``indexing_threshold_kb`` of new vectors are
        waiting: after the first build, later calls index only the new segment, not the shard.
        The users shard is never indexed (see ``store.edge_config``).
        """
        for domain, shard in self._item_shards().items():
            with engine_errors(f"optimizing the items of {domain}"):
                shard.optimize()

    def index_stats(self) -> dict[str, int]:
        """Items, all domains: points, vectors in HNSW segments, segments (for logs, metrics)."""
        stats = {"points": 0, "indexed_vectors": 0, "segments": 0}
        for _, shard in self._item_shards().items():
            with engine_errors("reading shard info"):
                info = shard.info()
            stats["points"] += info.points_count
            stats["indexed_vectors"] += info.indexed_vectors_count
            stats["segments"] += info.segments_count
        return stats

    def close(self) -> None:
        """Flush and close every shard; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._cache.clear()
        users = self._users.detach()
        self._items.close(also=[users] if users is not None else [])

    # -- items -----------------------------------------------------------------------------

    def upsert_items(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items, ``upsert_batch`` points per engine call.

        An item that changes domain is deleted from its old domain's shard first: a crash
        between the two leaves it in no domain until the catalogue event is replayed (it was
        not acknowledged), never in two.
        """
        shards = self._item_shards()
        if shards.dim is None and points:  # before any write: a refused call changes nothing
            raise StoreError("call ensure_collections before storing items")
        for p in points:
            check_dim(p.vector, shards.dim, f"item {p.item_id!r}")
        names = self._item_names()
        latest = {p.item_id: p for p in points}  # the last write of an id wins, as in one shard
        moved: dict[str, list[uuid.UUID]] = {}
        by_domain: dict[str, list[ItemPoint]] = {}
        for p in latest.values():
            old = names.get(item_point_id(p.item_id).int)
            if old is not None and old[1] != p.domain:
                moved.setdefault(old[1], []).append(item_point_id(p.item_id))
            by_domain.setdefault(p.domain, []).append(p)
        for domain in by_domain:  # before any write: a refused call changes nothing
            check_domain(domain)
        if moved:
            self._delete(moved)
        for domain, group in by_domain.items():
            shard = shards.get_or_create(domain)
            for batch in chunks(group, self._settings.upsert_batch):
                ops = [
                    qe.Point(
                        id=item_point_id(p.item_id),
                        vector=p.vector.tolist(),  # lists convert ~2x faster than ndarrays here
                        payload={ITEM_ID_KEY: p.item_id, DOMAIN_KEY: p.domain},
                    )
                    for p in batch
                ]
                self._cache.forget(item_point_id(p.item_id).int for p in batch)
                with engine_errors("upserting items"):
                    shard.update(qe.UpdateOperation.upsert_points(ops))
                for p in batch:
                    names[item_point_id(p.item_id).int] = (p.item_id, p.domain)
            if self._domains is not None:
                self._domains.add(domain)

    def _delete(self, by_domain: dict[str, list[uuid.UUID]]) -> None:
        names = self._item_names()
        for domain, ids in by_domain.items():
            shard = self._items.get(domain)
            if shard is None:
                continue
            self._cache.forget(i.int for i in ids)
            with engine_errors("deleting items"):
                shard.update(qe.UpdateOperation.delete_points(ids))
            for i in ids:
                names.pop(i.int, None)
        self._domains = None  # a domain may have lost its last item

    def _stored_by_domain(self, item_ids: Iterable[str]) -> dict[str, list[uuid.UUID]]:
        """Point ids of the stored items among ``item_ids``, by the domain that holds them."""
        names = self._item_names()
        by_domain: dict[str, list[uuid.UUID]] = {}
        for item_id in dict.fromkeys(item_ids):
            pid = item_point_id(item_id)
            item = names.get(pid.int)
            if item is not None:
                by_domain.setdefault(item[1], []).append(pid)
        return by_domain

    def delete_items(self, item_ids: Iterable[str]) -> None:
        """Delete items by id; unknown ids are ignored."""
        by_domain = self._stored_by_domain(item_ids)
        if by_domain:
            self._delete(by_domain)

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """The stored items among ``item_ids``; missing ids are absent. Items read lately
        come from memory (``store.item_cache``)."""
        out: dict[str, ItemPoint] = {}
        for domain, ids in self._stored_by_domain(item_ids).items():
            missing = []
            for pid in ids:
                cached = self._cache.get(pid.int)
                if cached is None:
                    missing.append(pid)
                else:
                    out[cached.item_id] = cached
            shard = self._items.get(domain)
            if shard is None or not missing:
                continue
            with engine_errors("retrieving items"):
                records = shard.retrieve(missing, True, True)
            for r in records:
                item_id = (r.payload or {})[ITEM_ID_KEY]
                point = out[item_id] = ItemPoint(item_id, domain, np.asarray(r.vector))
                self._cache.put(item_point_id(item_id).int, point)
        return out

    def count_items(self, domain: str | None = None) -> int:
        """Exact number of items, of ``domain`` when given."""
        shards = self._item_shards()
        if domain is not None:
            one = shards.get(domain)
            chosen = [] if one is None else [one]
        else:
            chosen = [shard for _, shard in shards.items()]
        total = 0
        for shard in chosen:
            with engine_errors("counting items"):
                total += shard.count(qe.CountRequest(exact=True))
        return total

    def domains(self) -> set[str]:
        """Domains with at least one item."""
        if self._domains is None:
            self._domains = {
                domain for domain, _ in self._item_shards().items() if self.count_items(domain) > 0
            }
        return set(self._domains)

    # -- queries ---------------------------------------------------------------------------

    def _request(self, q: ItemQuery, limit: int, filtered: bool) -> qe.QueryRequest:
        """``limit`` nearest items; ``q``'s exclusions as an engine filter when ``filtered``
        (else the caller drops them from the hits: store.overfetch)."""
        check_dim(q.vector, self._items.dim, "query")
        flt = None
        if filtered and q.exclude_item_ids:
            ids = {item_point_id(i) for i in q.exclude_item_ids}
            flt = qe.Filter(must_not=[qe.HasIdCondition(ids)])
        return qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(q.vector.tolist()),
            filter=flt,
            with_payload=False,
            params=self._search,
        )

    def query_items(self, q: ItemQuery) -> list[Hit]:
        """Top-k items of ``q.domain`` by dot product, excluded ids left out."""
        return self.query_items_batch([q])[0]

    def query_items_batch(self, qs: Sequence[ItemQuery]) -> list[list[Hit]]:
        """The queries of each domain in one ``query_batch`` call on that domain's shard.

        Exclusions are dropped from a few extra hits rather than sent as a filter; the rare
        query whose exclusions crowd out its page is asked again with the filter
        (``store.overfetch``).
        """
        shards = self._item_shards()
        by_domain: dict[str, list[int]] = {}
        for i, q in enumerate(qs):
            if shards.dim is not None:  # every query, also those of a domain with no items
                check_dim(q.vector, shards.dim, "query")
            if q.k > 0:
                by_domain.setdefault(q.domain, []).append(i)
        out: list[list[Hit]] = [[] for _ in qs]
        for domain, live in by_domain.items():
            shard = shards.get(domain)
            if shard is None:
                continue  # no item of this domain was ever stored
            answers = overfetch.query_batch([qs[i] for i in live], self._asker(shard))
            for i, hits in zip(live, answers, strict=True):
                out[i] = hits
        return out

    def _asker(self, shard: qe.EdgeShard) -> overfetch.Ask:
        def ask(requests: list[tuple[ItemQuery, int, bool]]) -> list[tuple[list[Hit], int]]:
            batch = qe.QueryBatchRequest([self._request(q, n, f) for q, n, f in requests])
            with engine_errors("querying items (batch)"):
                results = shard.query_batch(batch)
            return [(self._hits(points), len(points)) for points in results]

        return ask

    def _item_names(self) -> dict[int, tuple[str, str]]:
        """Point id (as ``UUID.int``) -> (item id, domain) of every item, read once.

        Keyed by the int: ``UUID.__hash__`` and ``__eq__`` are Python functions, and a
        micro-batch looks up every hit of every query here.

        Kept in step by upsert_items/delete_items: this object is the shards' only writer (a
        directory's WAL is locked by one process), so the map cannot go stale. ~10 MB per 36k
        items.
        """
        self._check_open()  # the map outlives close(): reading it must not pass for the store
        if self._names_by_id is None:
            names: dict[int, tuple[str, str]] = {}
            for domain, shard in self._item_shards().items():
                offset = None
                with engine_errors("listing items"):
                    while True:
                        request = qe.ScrollRequest(offset=offset, limit=4096, with_payload=True)
                        records, offset = shard.scroll(request)
                        for r in records:
                            names[_uuid(r.id).int] = ((r.payload or {})[ITEM_ID_KEY], domain)
                        if offset is None:
                            break
            self._names_by_id = names
        return self._names_by_id

    def _hits(self, points: Sequence[qe.ScoredPoint], retry: bool = True) -> list[Hit]:
        names = self._item_names()
        out = []
        for p in points:
            pid = p.id
            item = names.get(pid.int if isinstance(pid, uuid.UUID) else _uuid(pid).int)
            if item is None:
                if retry:  # cannot happen (see _item_names); if it did, reread the map once
                    self._names_by_id = None
                    return self._hits(points, retry=False)
                continue
            out.append(Hit(*item, float(p.score)))
        return out

    # -- users -----------------------------------------------------------------------------

    def upsert_users(self, points: Sequence[UserPoint]) -> None:
        """Insert or replace users' per-domain vectors (``store.edge_users``)."""
        self._check_open()
        self._users.upsert(points)

    def get_user(self, user_id: str, domain: str) -> np.ndarray | None:
        """The user's stored vector in ``domain``, or None."""
        self._check_open()
        return self._users.get(user_id, domain)


def _uuid(point_id: object) -> uuid.UUID:
    return point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id))
