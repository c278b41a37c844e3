"""Settings for the vector store (env prefix ``QDRANT_``).

Three engines sit behind one interface, chosen by these settings:

* ``QDRANT_URL`` set: a Qdrant server through qdrant-client (production, scaled by nodes);
* ``QDRANT_LOCAL_MODE=true``: qdrant-client's local mode at ``QDRANT_PATH`` (brute force,
  single process): the stand-in for a server in tests and CI;
* neither: Qdrant Edge, the Qdrant engine embedded in-process, persistent at ``QDRANT_PATH``
  (the default for a single worker).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class QdrantSettings(BaseSettings):
    """Where the vectors live and how they are indexed and queried."""

    # QDRANT_HNSW_EF=none (lower case) asks for the engine's own default where one allows it
    model_config = SettingsConfigDict(
        env_prefix="QDRANT_", extra="ignore", env_parse_none_str="none"
    )

    url: str | None = Field(
        None, description="Qdrant server URL (e.g. http://qdrant:6333); unset = embedded engine"
    )
    api_key: SecretStr | None = Field(None, description="API key of the Qdrant server")
    path: Path = Field(
        Path("data/qdrant"),
        description="directory of the embedded store (Qdrant Edge, or client local mode)",
    )
    local_mode: bool = Field(
        False, description="use qdrant-client's local mode at QDRANT_PATH instead of Qdrant Edge"
    )
    items_collection: str = Field("items", description="collection of item vectors")
    users_collection: str = Field("users", description="collection of user vectors")
    timeout_s: float = Field(10.0, gt=0, description="request timeout of the Qdrant server")
    upsert_batch: int = Field(256, ge=1, description="points per upsert request")
    item_cache: int = Field(
        20_000,
        ge=0,
        description="Qdrant Edge: items kept in memory after a read (about 2 KB each at 384 "
        "dimensions), exact because the store is its directory's only writer; 0 = none",
    )
    # Measured on the 36k Food/Kitchen titles in one collection filtered by domain (MiniLM
    # vectors, int8 + rescore, queries = means of real users' items, recall@10 against exact):
    # ACORN costs 1.5-2x a plain walk; it buys recall where the domain filter is narrow (food,
    # 24% of items: 0.78 -> 0.90 at ef 64) and little where it is wide (kitchen, 76%: 0.87 ->
    # 0.91). Qdrant Edge keeps a shard per domain and needs no filter, hence no ACORN; there
    # (``python -m bench.store_probe`` at b5046f5, 256 queries a batch) ef 96 reaches recall@10
    # 0.907 at the cost of ef 64 (0.882) within noise, both about half the filtered layout's time.
    hnsw_ef: int | None = Field(
        96, ge=1, description="HNSW search breadth; none = the engine's default (ef_construct)"
    )
    acorn_max_selectivity: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Qdrant server: use ACORN (filter-aware HNSW walk) when the domain filter "
        "keeps at most this fraction of items; 0 = never, 1 = always (needs Qdrant >= 1.16); "
        "Qdrant Edge has a shard per domain and no filter to walk",
    )
    hnsw_m: int = Field(16, ge=2, description="HNSW edges per node, used when creating")
    quantization: bool = Field(
        True,
        description="Qdrant Edge: keep an int8 copy of the item vectors for the HNSW walk "
        "(rescored with float32); set when creating the collection",
    )
    # The engine's default (10,000 KB, ~6.6k 384-d items) left up to 6.6k items of a bulk load
    # brute-forced after its last build (~0.2 us each per query: +1.3 ms a query). 1,000 KB
    # bounds that tail to ~650 items; the price is a graph merge (measured 1-2.5 s for 36k
    # items, the old graph is reused) every ~650 new or changed items.
    indexing_threshold_kb: int | None = Field(
        1000,
        ge=0,
        description="Qdrant Edge: KB of new item vectors (1.5 per 384-d item) searched exactly "
        "until optimize() merges them into HNSW; none = the engine's default (10,000)",
    )
    optimize_on_idle: bool = Field(
        True,
        description="Qdrant Edge: the worker builds HNSW (optimize) at start and whenever the "
        "catalogue stream goes idle; a no-op unless enough new items are waiting",
    )
    hnsw_ef_construct: int = Field(
        100, ge=4, description="HNSW build breadth, used when creating a collection"
    )

    @model_validator(mode="after")
    def _check_combination(self) -> QdrantSettings:
        if self.url is not None and not self.url.strip():
            raise ConfigError("QDRANT_URL is empty: set it to the server URL or unset it")
        if self.url and self.local_mode:
            raise ConfigError(
                "QDRANT_URL and QDRANT_LOCAL_MODE=true both choose an engine: "
                "unset QDRANT_URL to use local mode, or set QDRANT_LOCAL_MODE=false"
            )
        if self.api_key is not None and not self.url:
            raise ConfigError(
                "QDRANT_API_KEY is set but QDRANT_URL is not: the embedded engines take no key; "
                "set QDRANT_URL or unset QDRANT_API_KEY"
            )
        for env, name in (
            ("QDRANT_ITEMS_COLLECTION", self.items_collection),
            ("QDRANT_USERS_COLLECTION", self.users_collection),
        ):
            # Edge keeps each collection in a subfolder named after it: keep names path-safe.
            if not _NAME.fullmatch(name):
                raise ConfigError(
                    f"{env}={name!r} is not a valid collection name: use letters, digits, '_' "
                    "or '-' (at most 64)"
                )
        if self.items_collection == self.users_collection:
            raise ConfigError(
                f"QDRANT_ITEMS_COLLECTION and QDRANT_USERS_COLLECTION are both "
                f"{self.items_collection!r}: give them different names"
            )
        if not self.url and self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"QDRANT_PATH={self.path} is a file: point it at a directory (created if missing)"
            )
        return self

    @property
    def engine(self) -> str:
        """Which engine these settings select: ``server``, ``local`` or ``edge``."""
        if self.url:
            return "server"
        return "local" if self.local_mode else "edge"
