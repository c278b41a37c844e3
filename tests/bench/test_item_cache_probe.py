"""The item cache probe measures at least the vectors it holds."""

from __future__ import annotations

import json

from bench.item_cache_probe import main


def test_a_cached_item_costs_at_least_its_vector(tmp_path) -> None:
    out = tmp_path / "cache.json"
    assert main(["--items", "3000", "--dim", "384", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["bytes_per_item"] >= 384 * 4  # the float32 values alone
    assert doc["command"].startswith("python -m bench.item_cache_probe --items 3000")
