"""The items of a Qdrant Edge store: one shard per domain, in ``<path>/<items>/<domain>/``.

Every item query names one domain. With all items in one shard the domain was a filter, and a
filter that drops half of the graph strands plain HNSW walks (recall@10 0.79 on clustered
vectors); ACORN repaired that at 1.5-2x the cost of a walk. A shard per domain needs no filter
at all: each query walks a graph that holds only its domain (measured by
``python -m bench.store_probe``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import qdrant_edge as qe

from inference.errors import ConfigError, StoreError
from store.base import engine_errors
from store.edge_config import edge_config
from store.settings import QdrantSettings

CONFIG_FILE = "edge_config.json"
# Domains become directory names: the wire records' domain pattern, checked again here.
_DOMAIN_DIR = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def load_shard(settings: QdrantSettings, role: str, path: Path, dim: int | None) -> qe.EdgeShard:
    """Open the shard at ``path``, checked against ``dim`` when given (ConfigError if it
    holds other vectors)."""
    try:
        config = edge_config(settings, role, dim) if dim else None
        return qe.EdgeShard.load(str(path), config)
    except Exception as exc:
        if "incompatible" in str(exc).lower():
            raise ConfigError(
                f"{path} holds vectors incompatible with dimension {dim} and dot "
                f"product ({exc}); point QDRANT_PATH at a new directory or rebuild it"
            ) from exc
        raise StoreError(f"vector store: opening {path} failed: {exc}") from exc


def check_domain(domain: str) -> None:
    """Raise ValueError unless ``domain`` can name a shard directory (a malformed argument,
    not an engine failure: retrying it would never succeed)."""
    if not _DOMAIN_DIR.fullmatch(domain):
        raise ValueError(
            f"domain {domain!r} cannot name a shard: use 1-64 of a-z 0-9 _ . - "
            "starting with a letter or digit"
        )


class DomainShards:
    """Open, create and close the per-domain item shards under one directory."""

    def __init__(self, settings: QdrantSettings, root: Path) -> None:
        self._settings = settings
        self._root = root
        self._shards: dict[str, qe.EdgeShard] = {}
        self.dim: int | None = None

    def open_all(self, dim: int | None) -> None:
        """Open every domain shard on disk, checking it against ``dim`` when given."""
        if (self._root / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{self._root} holds all items in one shard (the layout before one shard per "
                "domain); point QDRANT_PATH at a new directory and replay the catalogue topic "
                "into it (a new consumer group, or reset the worker group's catalogue offsets)"
            )
        held = self.dim
        self.close()
        try:
            self._load(dim)
        except Exception:
            # e.g. shards of another size: reopen them as they were, so the store keeps
            # serving what it holds, then refuse
            self.close()
            self._load(held)
            raise

    def _load(self, dim: int | None) -> None:
        self.dim = dim
        if self._root.is_dir():
            for path in sorted(self._root.iterdir()):
                if (path / CONFIG_FILE).is_file():
                    self._shards[path.name] = load_shard(self._settings, "items", path, dim)

    def get(self, domain: str) -> qe.EdgeShard | None:
        """The shard of ``domain``, or None when no item of it was ever stored."""
        return self._shards.get(domain)

    def get_or_create(self, domain: str) -> qe.EdgeShard:
        """The shard of ``domain``, created on its first item."""
        shard = self._shards.get(domain)
        if shard is not None:
            return shard
        check_domain(domain)
        if self.dim is None:
            raise StoreError("call ensure_collections before storing items")
        path = self._root / domain
        with engine_errors(f"creating {path}"):
            path.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(path), edge_config(self._settings, "items", self.dim))
        self._shards[domain] = shard
        return shard

    def items(self) -> Iterator[tuple[str, qe.EdgeShard]]:
        """(domain, shard) of every domain with a shard."""
        return iter(list(self._shards.items()))

    def close(self, also: Sequence[qe.EdgeShard] = ()) -> None:
        """Flush and close every shard, and those in ``also`` (each even when another fails)."""
        shards, self._shards = self._shards, {}
        failure: Exception | None = None
        for shard in [*shards.values(), *also]:
            try:
                shard.flush()
                shard.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise StoreError(f"vector store: closing failed: {failure}") from failure
