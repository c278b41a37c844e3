"""The users shard of the embedded store (``store.edge``): one point per (user, domain).

Users are fetched by id and never searched, so the shard is never indexed
(``store.edge_config``). Every micro-batch writes its users' vectors. A point written through
this object since it opened the shard already holds its payload (user id, domain), so a new
vector for it is sent alone (``update_vectors``): the write stage took 38% less in the stream
benchmark (README, "Stream"). Nothing else writes the directory (its WAL is locked to
one process) and nothing deletes a user point, so what this object remembers stays true; the
memory is bounded by :data:`WRITTEN_MAX` and dropped whole when full.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from inference.errors import StoreError
from store.base import (
    DOMAIN_KEY,
    USER_ID_KEY,
    UserPoint,
    check_dim,
    chunks,
    engine_errors,
    user_point_id,
)
from store.edge_config import edge_config
from store.edge_domains import CONFIG_FILE, load_shard
from store.settings import QdrantSettings

log = logging.getLogger(__name__)

#: User points remembered as written; past this the memory is dropped and refills
#: (76 bytes an entry by tracemalloc: 19 MiB full).
WRITTEN_MAX = 1 << 18


class UserShard:
    """The users shard at ``path``, opened on first use (see the module docstring)."""

    def __init__(self, settings: QdrantSettings, path: Path) -> None:
        self._settings = settings
        self._path = path
        self._shard: qe.EdgeShard | None = None
        self.dim: int | None = None
        self._written: set[int] = set()  # UUID.int: UUID's hash and eq are Python functions

    def open(self, dim: int | None = None) -> qe.EdgeShard:
        """The shard, opened (or created, when ``dim`` is given) on first use."""
        if self._shard is not None:
            return self._shard
        if (self._path / CONFIG_FILE).is_file():
            shard = load_shard(self._settings, "users", self._path, dim)
        elif dim is None:
            raise StoreError(
                f"collection {self._settings.users_collection!r} does not exist at "
                f"{self._path}: call ensure_collections first"
            )
        else:
            with engine_errors(f"creating {self._path}"):
                self._path.mkdir(parents=True, exist_ok=True)
                config = edge_config(self._settings, "users", dim)
                shard = qe.EdgeShard.create(str(self._path), config)
        self._shard = shard
        return shard

    def resize_refused(self, dim: int) -> str | None:
        """Why an open shard cannot take ``dim``-dimensional vectors, or None."""
        if self._shard is not None and self.dim not in (None, dim):
            return f"users of {self.dim} dimensions, not {dim}"
        return None

    def ensure(self, dim: int) -> None:
        """Open the shard for ``dim``-dimensional vectors (reopened if it was opened unchecked)."""
        if self._shard is not None and self.dim == dim:
            return
        old = self.detach()
        if old is not None:
            with engine_errors("closing a shard"):
                old.close()
        self.open(dim)
        self.dim = dim

    def detach(self) -> qe.EdgeShard | None:
        """Forget the shard (for the caller to flush and close) and what was written to it."""
        shard, self._shard = self._shard, None
        self._written.clear()
        return shard

    def upsert(self, points: Sequence[UserPoint]) -> None:
        """Insert or replace users' per-domain vectors (see the module docstring)."""
        shard = self.open()
        for p in points:
            check_dim(p.vector, self.dim, f"user {p.user_id!r}")
        written = self._written
        for batch in chunks(points, self._settings.upsert_batch):
            pairs = [(user_point_id(p.user_id, p.domain), p) for p in batch]
            known = [(pid, p) for pid, p in pairs if pid.int in written]
            new = [(pid, p) for pid, p in pairs if pid.int not in written]
            if known and not self._update_vectors(shard, known):
                new = pairs
            if new:
                ops = [
                    qe.Point(
                        id=pid,
                        vector=p.vector.tolist(),
                        payload={USER_ID_KEY: p.user_id, DOMAIN_KEY: p.domain},
                    )
                    for pid, p in new
                ]
                with engine_errors("upserting users"):
                    shard.update(qe.UpdateOperation.upsert_points(ops))
            if len(written) + len(new) > WRITTEN_MAX:
                written.clear()
            written.update(pid.int for pid, _ in new)

    def _update_vectors(
        self, shard: qe.EdgeShard, known: Sequence[tuple[uuid.UUID, UserPoint]]
    ) -> bool:
        """New vectors for the ``known`` points; False, and nothing remembered, if the engine
        refused them, for the caller to upsert the whole batch instead."""
        ops = [qe.PointVectors(id=pid, vector=p.vector.tolist()) for pid, p in known]
        try:
            shard.update(qe.UpdateOperation.update_vectors(ops))
        except Exception as exc:  # the engine raises bare Exception
            # A remembered point cannot be missing (module docstring); were one, the upsert
            # mends it, and an engine that is failing raises from there.
            log.warning("updating user vectors failed (%s); upserting them whole", exc)
            self._written.clear()
            return False
        return True

    def get(self, user_id: str, domain: str) -> np.ndarray | None:
        """The user's stored vector in ``domain``, or None."""
        with engine_errors("retrieving a user"):
            records = self.open().retrieve([user_point_id(user_id, domain)], False, True)
        if not records:
            return None
        vec = np.asarray(records[0].vector, dtype=np.float32)
        vec.setflags(write=False)
        return vec
