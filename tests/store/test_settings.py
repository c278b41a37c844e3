"""QdrantSettings refuses bad combinations; the factory picks the engine; logs hold no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.errors import ConfigError
from store.base import VectorStore
from store.edge import EdgeStore
from store.factory import describe, open_store
from store.server import ServerStore
from store.settings import QdrantSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "API_KEY", "PATH", "LOCAL_MODE", "ITEMS_COLLECTION", "USERS_COLLECTION"):
        monkeypatch.delenv(f"QDRANT_{name}", raising=False)


def test_defaults_select_edge() -> None:
    s = QdrantSettings()
    assert s.engine == "edge"
    assert s.path == Path("data/qdrant")
    assert (s.items_collection, s.users_collection, s.upsert_batch) == ("items", "users", 256)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret")
    monkeypatch.setenv("QDRANT_UPSERT_BATCH", "64")
    s = QdrantSettings()
    assert s.engine == "server"
    assert s.upsert_batch == 64
    assert s.api_key is not None and s.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_none_asks_for_the_engines_own_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert QdrantSettings().hnsw_ef == 96  # ours, when unset
    monkeypatch.setenv("QDRANT_HNSW_EF", "none")
    monkeypatch.setenv("QDRANT_INDEXING_THRESHOLD_KB", "none")
    s = QdrantSettings()
    assert s.hnsw_ef is None and s.indexing_threshold_kb is None


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"url": "http://q:6333", "local_mode": True}, "QDRANT_LOCAL_MODE"),
        ({"api_key": "k"}, "QDRANT_API_KEY"),
        ({"url": "  "}, "QDRANT_URL"),
        ({"users_collection": "items"}, "QDRANT_USERS_COLLECTION"),
        ({"items_collection": "../escape"}, "QDRANT_ITEMS_COLLECTION"),
    ],
)
def test_bad_combinations_name_the_setting(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        QdrantSettings(**kwargs)


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="QDRANT_PATH"):
        QdrantSettings(path=f)


def test_describe_never_shows_secrets(tmp_path: Path) -> None:
    s = QdrantSettings(
        url="https://alice:pw@qdrant.example:6333/base?api-key=zzz", api_key="s3cret"
    )
    line = describe(s)
    assert "qdrant.example:6333/base" in line
    assert "api key set" in line
    for secret in ("s3cret", "pw", "zzz", "alice"):
        assert secret not in line
    assert "edge" in describe(QdrantSettings(path=tmp_path))
    assert "local mode" in describe(QdrantSettings(path=tmp_path, local_mode=True))


def test_open_store_picks_the_engine(tmp_path: Path) -> None:
    edge = open_store(QdrantSettings(path=tmp_path / "e"))
    local = open_store(QdrantSettings(path=tmp_path / "l", local_mode=True))
    try:
        assert isinstance(edge, EdgeStore) and isinstance(local, ServerStore)
        assert isinstance(edge, VectorStore) and isinstance(local, VectorStore)
    finally:
        edge.close()
        local.close()
