"""Qdrant Edge keeps every acknowledged write across a crash (its write-ahead log).

The writer process is killed (``os._exit``) without ``close()``: no flush ran, yet a new
store on the same directory sees all the points, because ``update`` logs before returning.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.fixtures.store import MakeStore

WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from store.base import ItemPoint, UserPoint
    from store.edge import EdgeStore
    from store.settings import QdrantSettings

    store = EdgeStore(QdrantSettings(path=sys.argv[1]))
    store.ensure_collections(4)
    store.upsert_items([ItemPoint(f"i{i}", "food", np.full(4, float(i))) for i in range(50)])
    store.upsert_users([UserPoint("u", "food", np.arange(4.0))])
    os._exit(0)  # a crash: no close, no flush
    """
)


def test_writes_survive_a_crash(make_store: MakeStore, tmp_path: Path) -> None:
    path = tmp_path / "crash"
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", WRITER, str(path)], cwd=root, check=True, timeout=60)
    store = make_store("edge", path=path)
    store.ensure_collections(4)
    assert store.count_items("food") == 50
    np.testing.assert_allclose(store.get_user("u", "food"), np.arange(4.0))
