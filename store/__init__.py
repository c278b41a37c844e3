"""Vector store: item and user vectors in Qdrant, behind one interface.

``open_store(QdrantSettings())`` gives Qdrant Edge (embedded, persistent) by default, a Qdrant
server when ``QDRANT_URL`` is set, or qdrant-client's local mode (tests) with
``QDRANT_LOCAL_MODE=true``. Engines are imported lazily by the factory.
"""

from store.base import Hit, ItemPoint, ItemQuery, UserPoint, VectorStore
from store.factory import describe, open_store
from store.settings import QdrantSettings

__all__ = [
    "Hit",
    "ItemPoint",
    "ItemQuery",
    "QdrantSettings",
    "UserPoint",
    "VectorStore",
    "describe",
    "open_store",
]
