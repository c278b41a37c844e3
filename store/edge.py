"""VectorStore on Qdrant Edge: the Qdrant engine embedded in-process, persistent on disk.

One ``EdgeShard`` per collection, in ``<path>/<collection>/``. What the worker's author must
know about the engine (qdrant-edge-py 0.9, checked by the tests here):

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
* Filtered search: a domain filter that drops about half the points strands plain HNSW walks
  (recall@10 0.79, some queries returning 1 of 10 hits); ACORN in the search params fixes it
  (0.99) at 1.5-2x the cost, hence only below ``acorn_max_selectivity``. Never assume
  ``len(hits) == k`` even when the domain has enough items.
* Filters: ``Filter(must=[FieldCondition(key, match=MatchValue(v))], must_not=[HasIdCondition(
  {uuid, ...})])``; ``HasIdCondition`` takes a *set* of UUIDs (or ints/UUID strings).
* Errors are bare ``Exception`` ("Service runtime error: ..."), hence ``engine_errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from inference.errors import ConfigError, StoreError
from store.base import (
    DOMAIN_KEY,
    ITEM_ID_KEY,
    USER_ID_KEY,
    Hit,
    ItemPoint,
    ItemQuery,
    UserPoint,
    check_dim,
    chunks,
    engine_errors,
    item_point_id,
    user_point_id,
)
from store.edge_config import edge_config, search_params
from store.settings import QdrantSettings

_CONFIG_FILE = "edge_config.json"
_FACET_LIMIT = 100_000  # far above any realistic number of domains


class EdgeStore:
    """VectorStore on Qdrant Edge shards under ``settings.path`` (see module docstring)."""

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._root = Path(settings.path)
        self._names = {"items": settings.items_collection, "users": settings.users_collection}
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dims: dict[str, int | None] = {"items": None, "users": None}
        self._domains: set[str] | None = None
        # point id -> (item id, domain): hits come back without payload (converting payloads
        # to Python dicts was ~20% of a query); see _item_names.
        self._names_by_id: dict[uuid.UUID, tuple[str, str]] | None = None
        self._search = search_params(settings)
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def _open(self, role: str, dim: int | None) -> qe.EdgeShard:
        """Open (or create, when ``dim`` is given) the shard of ``role``."""
        if self._closed:
            raise StoreError("vector store is closed")
        path = self._root / self._names[role]
        if (path / _CONFIG_FILE).is_file():
            try:
                # With a config, load checks it against the segments (size and distance).
                config = edge_config(self._settings, role, dim) if dim else None
                shard = qe.EdgeShard.load(str(path), config)
            except Exception as exc:
                if "incompatible" in str(exc).lower():
                    raise ConfigError(
                        f"{path} holds vectors incompatible with dimension {dim} and dot "
                        f"product ({exc}); point QDRANT_PATH at a new directory or rebuild it"
                    ) from exc
                raise StoreError(f"vector store: opening {path} failed: {exc}") from exc
        elif dim is None:
            raise StoreError(
                f"collection {self._names[role]!r} does not exist at {path}: "
                "call ensure_collections first"
            )
        else:
            with engine_errors(f"creating {path}"):
                path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), edge_config(self._settings, role, dim))
        return shard

    def _shard(self, role: str) -> qe.EdgeShard:
        shard = self._shards.get(role)
        if shard is None:
            shard = self._shards[role] = self._open(role, None)
        return shard

    def ensure_collections(self, item_dim: int, user_dim: int | None = None) -> None:
        """Create or open both shards, checking their vector size; index ``domain``."""
        dims = {"items": item_dim, "users": user_dim or item_dim}
        for role, dim in dims.items():
            if dim < 1:
                raise ValueError(f"{role} dimension must be >= 1, got {dim}")
            if role in self._shards and self._dims[role] == dim:
                continue  # already opened and checked with this dimension
            old = self._shards.pop(role, None)
            if old is not None:
                with engine_errors("closing a shard"):
                    old.close()
            self._shards[role] = self._open(role, dim)
            self._dims[role] = dim
        items = self._shards["items"]
        with engine_errors("indexing the domain field"):
            if DOMAIN_KEY not in items.info().payload_schema:
                items.update(
                    qe.UpdateOperation.create_field_index(DOMAIN_KEY, qe.PayloadSchemaType.Keyword)
                )

    def optimize(self) -> None:
        """Build HNSW over the items waiting in the plain segment; blocks, holding the GIL.

        A no-op (~50 us) unless at least ``indexing_threshold_kb`` of new vectors are waiting:
        after the first build, later calls index only the new segment, not the whole shard.
        The users shard is never indexed (see ``store.edge_config``).
        """
        with engine_errors(f"optimizing {self._names['items']}"):
            self._shard("items").optimize()

    def index_stats(self) -> dict[str, int]:
        """Items shard: points, vectors in HNSW segments, segments (for logs and metrics)."""
        with engine_errors("reading shard info"):
            info = self._shard("items").info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    def close(self) -> None:
        """Flush and close both shards; idempotent."""
        if self._closed:
            return
        self._closed = True
        shards, self._shards = self._shards, {}
        failure: Exception | None = None
        for shard in shards.values():  # close every shard even when one fails
            try:
                shard.flush()
                shard.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise StoreError(f"vector store: closing failed: {failure}") from failure

    # -- items -----------------------------------------------------------------------------

    def upsert_items(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items, ``upsert_batch`` points per engine call."""
        shard = self._shard("items")
        for p in points:
            check_dim(p.vector, self._dims["items"], f"item {p.item_id!r}")
        for batch in chunks(points, self._settings.upsert_batch):
            ops = [
                qe.Point(
                    id=item_point_id(p.item_id),
                    vector=p.vector.tolist(),  # lists convert ~2x faster than ndarrays here
                    payload={ITEM_ID_KEY: p.item_id, DOMAIN_KEY: p.domain},
                )
                for p in batch
            ]
            with engine_errors("upserting items"):
                shard.update(qe.UpdateOperation.upsert_points(ops))
        if self._domains is not None:
            self._domains.update(p.domain for p in points)
        if self._names_by_id is not None:
            for p in points:
                self._names_by_id[item_point_id(p.item_id)] = (p.item_id, p.domain)

    def delete_items(self, item_ids: Iterable[str]) -> None:
        """Delete items by id; unknown ids are ignored."""
        ids = [item_point_id(i) for i in dict.fromkeys(item_ids)]
        if not ids:
            return
        with engine_errors("deleting items"):
            self._shard("items").update(qe.UpdateOperation.delete_points(ids))
        self._domains = None  # a domain may have lost its last item
        if self._names_by_id is not None:
            for i in ids:
                self._names_by_id.pop(i, None)

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """The stored items among ``item_ids``; missing ids are absent."""
        ids = [item_point_id(i) for i in dict.fromkeys(item_ids)]
        if not ids:
            return {}
        with engine_errors("retrieving items"):
            records = self._shard("items").retrieve(ids, True, True)
        out: dict[str, ItemPoint] = {}
        for r in records:
            payload = r.payload or {}
            item_id = payload[ITEM_ID_KEY]
            out[item_id] = ItemPoint(item_id, payload[DOMAIN_KEY], np.asarray(r.vector))
        return out

    def count_items(self, domain: str | None = None) -> int:
        """Exact number of items, of ``domain`` when given."""
        flt = qe.Filter(must=[_domain_is(domain)]) if domain is not None else None
        with engine_errors("counting items"):
            return self._shard("items").count(qe.CountRequest(exact=True, filter=flt))

    def domains(self) -> set[str]:
        """Domains with at least one item (a facet on the indexed ``domain`` field)."""
        if self._domains is None:
            request = qe.FacetRequest(key=DOMAIN_KEY, limit=_FACET_LIMIT, exact=True)
            with engine_errors("listing domains"):
                hits = self._shard("items").facet(request)
            self._domains = {str(h.value) for h in hits if h.count > 0}
        return set(self._domains)

    # -- queries ---------------------------------------------------------------------------

    def _request(self, q: ItemQuery) -> qe.QueryRequest:
        check_dim(q.vector, self._dims["items"], "query")
        must_not: list[Any] | None = None
        if q.exclude_item_ids:
            must_not = [qe.HasIdCondition({item_point_id(i) for i in q.exclude_item_ids})]
        return qe.QueryRequest(
            limit=q.k,
            query=qe.Query.Nearest(q.vector.tolist()),
            filter=qe.Filter(must=[_domain_is(q.domain)], must_not=must_not),
            with_payload=False,
            params=self._search,
        )

    def query_items(self, q: ItemQuery) -> list[Hit]:
        """Top-k items of ``q.domain`` by dot product, excluded ids left out."""
        if q.k == 0:
            return []
        request = self._request(q)
        with engine_errors("querying items"):
            return self._hits(self._shard("items").query(request))

    def query_items_batch(self, qs: Sequence[ItemQuery]) -> list[list[Hit]]:
        """Every query in one ``query_batch`` call (planned together by the engine)."""
        live = [i for i, q in enumerate(qs) if q.k > 0]
        out: list[list[Hit]] = [[] for _ in qs]
        if not live:
            return out
        batch = qe.QueryBatchRequest([self._request(qs[i]) for i in live])
        with engine_errors("querying items (batch)"):
            results = self._shard("items").query_batch(batch)
        for i, points in zip(live, results, strict=True):
            out[i] = self._hits(points)
        return out

    def _item_names(self) -> dict[uuid.UUID, tuple[str, str]]:
        """Point id -> (item id, domain) of every item, read once from the shard.

        Kept in step by upsert_items/delete_items: this object is the shard's only writer (the
        directory's WAL is locked by one process), so the map cannot go stale. ~10 MB per 36k
        items.
        """
        if self._names_by_id is None:
            names: dict[uuid.UUID, tuple[str, str]] = {}
            offset = None
            with engine_errors("listing items"):
                while True:
                    request = qe.ScrollRequest(offset=offset, limit=4096, with_payload=True)
                    records, offset = self._shard("items").scroll(request)
                    for r in records:
                        payload = r.payload or {}
                        names[_uuid(r.id)] = (payload[ITEM_ID_KEY], payload[DOMAIN_KEY])
                    if offset is None:
                        break
            self._names_by_id = names
        return self._names_by_id

    def _hits(self, points: Sequence[qe.ScoredPoint], retry: bool = True) -> list[Hit]:
        names = self._item_names()
        out = []
        for p in points:
            item = names.get(_uuid(p.id))
            if item is None:
                if retry:  # cannot happen (see _item_names); if it did, reread the map once
                    self._names_by_id = None
                    return self._hits(points, retry=False)
                continue
            out.append(Hit(item[0], item[1], float(p.score)))
        return out

    # -- users -----------------------------------------------------------------------------

    def upsert_users(self, points: Sequence[UserPoint]) -> None:
        """Insert or replace users' per-domain vectors."""
        shard = self._shard("users")
        for p in points:
            check_dim(p.vector, self._dims["users"], f"user {p.user_id!r}")
        for batch in chunks(points, self._settings.upsert_batch):
            ops = [
                qe.Point(
                    id=user_point_id(p.user_id, p.domain),
                    vector=p.vector.tolist(),
                    payload={USER_ID_KEY: p.user_id, DOMAIN_KEY: p.domain},
                )
                for p in batch
            ]
            with engine_errors("upserting users"):
                shard.update(qe.UpdateOperation.upsert_points(ops))

    def get_user(self, user_id: str, domain: str) -> np.ndarray | None:
        """The user's stored vector in ``domain``, or None."""
        with engine_errors("retrieving a user"):
            records = self._shard("users").retrieve([user_point_id(user_id, domain)], False, True)
        if not records:
            return None
        vec = np.asarray(records[0].vector, dtype=np.float32)
        vec.setflags(write=False)
        return vec


def _domain_is(domain: str) -> qe.FieldCondition:
    return qe.FieldCondition(key=DOMAIN_KEY, match=qe.MatchValue(domain))


def _uuid(point_id: object) -> uuid.UUID:
    return point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id))
