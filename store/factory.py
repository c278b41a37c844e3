"""Choose and open the vector-store engine that the settings ask for."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from store.base import VectorStore
from store.settings import QdrantSettings


def open_store(settings: QdrantSettings) -> VectorStore:
    """Open the engine ``settings`` select: a Qdrant server, client local mode, or Qdrant Edge.

    The collections are not touched here: call ``ensure_collections`` with the vector sizes.
    Engine failures raise StoreError; bad settings were already refused as ConfigError.
    """
    if settings.engine == "edge":
        from store.edge import EdgeStore

        return EdgeStore(settings)
    from store.server import ServerStore

    return ServerStore(settings)


def describe(settings: QdrantSettings) -> str:
    """One log line saying which engine and where, never a secret."""
    names = f"collections {settings.items_collection}/{settings.users_collection}"
    if settings.engine == "server":
        key = "api key set" if settings.api_key is not None else "no api key"
        return f"qdrant server at {_redact(settings.url or '')} ({names}, {key})"
    if settings.engine == "local":
        return f"qdrant-client local mode at {settings.path} ({names})"
    return f"qdrant edge at {settings.path} ({names})"


def _redact(url: str) -> str:
    """The URL without user info or query string (either may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
