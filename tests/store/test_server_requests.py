"""What ServerStore sends to a Qdrant server that local mode never exercises.

No Qdrant server can run on these machines (see ../shared/BRIEF.md), so the store is built
with a server URL and its client is then swapped for a recorder around qdrant-client's local
mode: every call still runs on a real engine, and the recorder keeps what the server-only code
paths asked for. The stand-in is for the network and the server, and only for them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from store.base import ItemPoint, ItemQuery
from store.server import ServerStore
from store.settings import QdrantSettings

# local mode warns that it ignores payload indexes and search parameters, and the client that
# nothing answers at the URL: both expected here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Recorder:
    """Delegates to a real client, keeping each call's name and arguments."""

    def __init__(self, inner: QdrantClient) -> None:
        self._inner = inner
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return call

    def named(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.calls if n == name]


@pytest.fixture
def server_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("URL", "API_KEY", "PATH", "LOCAL_MODE"):
        monkeypatch.delenv(f"QDRANT_{name}", raising=False)
    settings = QdrantSettings(url="http://127.0.0.1:1", api_key="k3y", timeout_s=2.5)
    with warnings.catch_warnings():  # "failed to obtain server version": none is there
        warnings.simplefilter("ignore")
        store = ServerStore(settings)  # the client is built; nothing answers at the URL
    real = store._client
    recorder = Recorder(QdrantClient(path=str(tmp_path / "engine")))
    store._client = recorder
    yield store, recorder, real
    store.close()


def _items(n: int, dim: int = 8) -> list[ItemPoint]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return [ItemPoint(f"i{k}", "books" if k % 2 else "video", vectors[k]) for k in range(n)]


def test_a_server_gets_the_domain_index_and_the_search_parameters(server_store) -> None:
    store, recorder, _ = server_store
    store.ensure_collections(8)
    (args, kwargs), *more = recorder.named("create_payload_index")
    assert not more and args[1:3] == ("domain", qm.PayloadSchemaType.KEYWORD)
    assert args[0] == "items" and kwargs.get("wait") is True  # filtered queries need it
    items = _items(20)
    store.upsert_items(items)
    hits = store.query_items_batch([ItemQuery(items[0].vector, "books", 3)])
    assert [h.domain for h in hits[0]] == ["books"] * 3  # answered by the real engine
    (args, _), *_ = recorder.named("query_batch_points")
    params = args[1][0].params
    assert params.hnsw_ef == 96 and params.acorn.enable and params.acorn.max_selectivity == 0.6


def test_a_server_client_carries_the_api_key_and_the_timeout(server_store) -> None:
    _, _, real = server_store
    remote = real._client  # qdrant-client's REST transport for the URL
    assert remote._api_key == "k3y" and remote._timeout == 3  # seconds, rounded up
    assert "k3y" not in repr(server_store[0])


def test_search_parameters_are_left_out_when_neither_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server older than 1.16 does not know ACORN: nothing is sent when it is off
    settings = QdrantSettings(url="http://127.0.0.1:1", acorn_max_selectivity=0)
    monkeypatch.setattr(settings, "hnsw_ef", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = ServerStore(settings)
    try:
        assert store._search is None
    finally:
        store.close()
