"""VectorStore on qdrant-client: a Qdrant server (``QDRANT_URL``), or the client's local mode.

Local mode (``QdrantClient(path=...)``) is a brute-force numpy stand-in for a server that
persists to ``path``: fine for tests and CI, slow beyond ~20k points, one process per path.
It ignores payload indexes (and warns about them), so none are created there.

Every write waits for the server to apply it (``wait=True``): a recommendation computed right
after an upsert must see it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from inference.errors import ConfigError, StoreError
from store import overfetch
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
from store.settings import QdrantSettings

_FACET_LIMIT = 100_000  # far above any realistic number of domains
# Other workers write the same collection: what this one last listed is read again after this
# long, so a domain another worker added (or emptied) shows within it.
DOMAINS_TTL_S = 5.0


class ServerStore:
    """VectorStore on a Qdrant server, or on qdrant-client's local mode (see module docstring)."""

    # HTTP calls and the local mode's numpy release the GIL at times: keep them off the loop.
    holds_gil: ClassVar[bool] = False

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._local = settings.url is None
        self.local_dir: Path | None = Path(settings.path) if self._local else None
        self._items = settings.items_collection
        self._users = settings.users_collection
        self._dims: dict[str, int | None] = {self._items: None, self._users: None}
        self._domains: set[str] | None = None
        self._domains_at = 0.0
        # Local mode is brute force and warns about search params it cannot use.
        self._search = None if self._local else _search_params(settings)
        self._closed = False
        with engine_errors("connecting"):
            if self._local:
                settings.path.mkdir(parents=True, exist_ok=True)
                # The worker opens the store on one thread and uses it from its executor
                # thread; local mode's sqlite connection would refuse that by default.
                self._client = QdrantClient(
                    path=str(settings.path), force_disable_check_same_thread=True
                )
            else:
                self._client = QdrantClient(
                    url=settings.url,
                    api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                    timeout=math.ceil(settings.timeout_s),
                )

    def __repr__(self) -> str:
        if self._local:
            return f"qdrant-client local mode at {self.local_dir}"
        return f"Qdrant server at {self._settings.url}"  # the key stays in the settings

    @property
    def client(self) -> QdrantClient:
        """The live client (raises StoreError once closed)."""
        if self._closed:
            raise StoreError("vector store is closed")
        return self._client

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_collections(self, item_dim: int, user_dim: int | None = None) -> None:
        """Create both collections if missing (dot product), else check their vector size."""
        for name, dim in ((self._items, item_dim), (self._users, user_dim or item_dim)):
            if dim < 1:
                raise ValueError(f"{name} dimension must be >= 1, got {dim}")
            self._ensure(name, dim)
            self._dims[name] = dim
        if not self._local:
            with engine_errors("indexing the domain field"):
                self.client.create_payload_index(
                    self._items, DOMAIN_KEY, qm.PayloadSchemaType.KEYWORD, wait=True
                )

    def _ensure(self, name: str, dim: int) -> None:
        s = self._settings
        with engine_errors(f"checking collection {name}"):
            exists = self.client.collection_exists(name)
        if not exists:
            try:
                self.client.create_collection(
                    name,
                    vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.DOT),
                    hnsw_config=qm.HnswConfigDiff(m=s.hnsw_m, ef_construct=s.hnsw_ef_construct),
                )
                return
            except Exception as exc:
                # Another worker may have created it between our check and our create.
                with engine_errors(f"creating collection {name}"):
                    if not self.client.collection_exists(name):
                        raise StoreError(f"creating collection {name} failed: {exc}") from exc
        with engine_errors(f"reading collection {name}"):
            params = self.client.get_collection(name).config.params.vectors
        if not isinstance(params, qm.VectorParams):
            raise ConfigError(f"collection {name} uses named vectors: give it a new name")
        if params.size != dim or params.distance != qm.Distance.DOT:
            raise ConfigError(
                f"collection {name} holds {params.size}-d vectors with {params.distance.value} "
                f"distance, need {dim}-d with Dot: set QDRANT_ITEMS_COLLECTION / "
                "QDRANT_USERS_COLLECTION to new names or delete the collection"
            )

    def optimize(self) -> None:
        """No-op: a server optimises in the background, local mode has no index."""

    def close(self) -> None:
        """Close the client (releases local mode's directory lock); idempotent."""
        if self._closed:
            return
        self._closed = True
        with engine_errors("closing"):
            self._client.close()

    # -- items -----------------------------------------------------------------------------

    def upsert_items(self, points: Sequence[ItemPoint]) -> None:
        """Insert or replace items, ``upsert_batch`` points per request."""
        for p in points:
            check_dim(p.vector, self._dims[self._items], f"item {p.item_id!r}")
        for batch in chunks(points, self._settings.upsert_batch):
            payload = qm.Batch(
                ids=[str(item_point_id(p.item_id)) for p in batch],
                vectors=[p.vector.tolist() for p in batch],
                payloads=[{ITEM_ID_KEY: p.item_id, DOMAIN_KEY: p.domain} for p in batch],
            )
            with engine_errors("upserting items"):
                self.client.upsert(self._items, payload, wait=True)
        self._domains = None  # an item that moved may have left its old domain empty

    def delete_items(self, item_ids: Iterable[str]) -> None:
        """Delete items by id; unknown ids are ignored."""
        ids: list[qm.ExtendedPointId] = [str(item_point_id(i)) for i in dict.fromkeys(item_ids)]
        if not ids:
            return
        with engine_errors("deleting items"):
            self.client.delete(self._items, qm.PointIdsList(points=ids), wait=True)
        self._domains = None  # a domain may have lost its last item

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemPoint]:
        """The stored items among ``item_ids``; missing ids are absent."""
        ids = [str(item_point_id(i)) for i in dict.fromkeys(item_ids)]
        if not ids:
            return {}
        with engine_errors("retrieving items"):
            records = self.client.retrieve(self._items, ids, with_payload=True, with_vectors=True)
        out: dict[str, ItemPoint] = {}
        for r in records:
            payload = r.payload or {}
            item_id = payload[ITEM_ID_KEY]
            out[item_id] = ItemPoint(item_id, payload[DOMAIN_KEY], np.asarray(r.vector))
        return out

    def count_items(self, domain: str | None = None) -> int:
        """Exact number of items, of ``domain`` when given."""
        flt = qm.Filter(must=[_domain_is(domain)]) if domain is not None else None
        with engine_errors("counting items"):
            return self.client.count(self._items, count_filter=flt, exact=True).count

    def domains(self) -> set[str]:
        """Domains with at least one item (a facet on the indexed ``domain`` field)."""
        now = time.monotonic()
        if self._domains is None or now - self._domains_at >= DOMAINS_TTL_S:
            with engine_errors("listing domains"):
                res = self.client.facet(self._items, DOMAIN_KEY, limit=_FACET_LIMIT, exact=True)
            self._domains, self._domains_at = {str(h.value) for h in res.hits if h.count > 0}, now
        return set(self._domains)

    # -- queries ---------------------------------------------------------------------------

    def _request(self, q: ItemQuery, limit: int, filtered: bool) -> qm.QueryRequest:
        """``limit`` nearest items of ``q.domain``; ``q``'s exclusions as a filter when
        ``filtered`` (else the caller drops them from the hits: store.overfetch)."""
        check_dim(q.vector, self._dims[self._items], "query")
        must_not: list[qm.Condition] | None = None
        if filtered and q.exclude_item_ids:
            excluded: list[qm.ExtendedPointId] = [
                str(item_point_id(i)) for i in dict.fromkeys(q.exclude_item_ids)
            ]
            must_not = [qm.HasIdCondition(has_id=excluded)]
        return qm.QueryRequest(
            query=q.vector.tolist(),
            filter=qm.Filter(must=[_domain_is(q.domain)], must_not=must_not),
            limit=limit,
            with_payload=True,
            params=self._search,
        )

    def query_items(self, q: ItemQuery) -> list[Hit]:
        """Top-k items of ``q.domain`` by dot product, excluded ids left out."""
        return self.query_items_batch([q])[0]

    def query_items_batch(self, qs: Sequence[ItemQuery]) -> list[list[Hit]]:
        """Every query in one ``query_batch_points`` request; exclusions are dropped from a
        few extra hits, and a query they crowd out is asked again with them as a filter
        (``store.overfetch``)."""
        live = [i for i, q in enumerate(qs) if q.k > 0]
        out: list[list[Hit]] = [[] for _ in qs]
        if not live:
            return out
        answers = overfetch.query_batch([qs[i] for i in live], self._ask)
        for i, hits in zip(live, answers, strict=True):
            out[i] = hits
        return out

    def _ask(self, requests: list[tuple[ItemQuery, int, bool]]) -> list[tuple[list[Hit], int]]:
        batch = [self._request(q, n, f) for q, n, f in requests]
        with engine_errors("querying items (batch)"):
            responses = self.client.query_batch_points(self._items, batch)
        return [(_hits(r.points), len(r.points)) for r in responses]

    # -- users -----------------------------------------------------------------------------

    def upsert_users(self, points: Sequence[UserPoint]) -> None:
        """Insert or replace users' per-domain vectors."""
        for p in points:
            check_dim(p.vector, self._dims[self._users], f"user {p.user_id!r}")
        for batch in chunks(points, self._settings.upsert_batch):
            payload = qm.Batch(
                ids=[str(user_point_id(p.user_id, p.domain)) for p in batch],
                vectors=[p.vector.tolist() for p in batch],
                payloads=[{USER_ID_KEY: p.user_id, DOMAIN_KEY: p.domain} for p in batch],
            )
            with engine_errors("upserting users"):
                self.client.upsert(self._users, payload, wait=True)

    def get_user(self, user_id: str, domain: str) -> np.ndarray | None:
        """The user's stored vector in ``domain``, or None."""
        pid = str(user_point_id(user_id, domain))
        with engine_errors("retrieving a user"):
            records = self.client.retrieve(
                self._users, [pid], with_payload=False, with_vectors=True
            )
        if not records:
            return None
        vec = np.asarray(records[0].vector, dtype=np.float32)
        vec.setflags(write=False)
        return vec


def _search_params(settings: QdrantSettings) -> qm.SearchParams | None:
    # ACORN for filtered recall: see store/edge.py. Left out when off, so that a server older
    # than 1.16 (which does not know it) still answers.
    acorn = None
    if settings.acorn_max_selectivity > 0:
        acorn = qm.AcornSearchParams(enable=True, max_selectivity=settings.acorn_max_selectivity)
    if acorn is None and settings.hnsw_ef is None:
        return None
    return qm.SearchParams(hnsw_ef=settings.hnsw_ef, acorn=acorn)


def _domain_is(domain: str) -> qm.FieldCondition:
    return qm.FieldCondition(key=DOMAIN_KEY, match=qm.MatchValue(value=domain))


def _hits(points: Sequence[qm.ScoredPoint]) -> list[Hit]:
    out = []
    for p in points:
        payload = p.payload or {}
        out.append(Hit(payload[ITEM_ID_KEY], payload[DOMAIN_KEY], float(p.score)))
    return out
