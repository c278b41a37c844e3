"""The memory benchmark on a tiny population writes well-formed JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bench.memory_bench import main


def test_memory_bench_tiny(tmp_path: Path) -> None:
    assert main(["--users", "200", "--events-per-domain", "3", "--out-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "memory.json").read_text())
    assert doc["benchmark"] == "memory" and doc["date"] and doc["machine"]["cores"] >= 1
    rows = {(r["domains_per_user"], r["full_recent_window"]): r for r in doc["rows"]}
    assert set(rows) == {(1, False), (2, False), (1, True), (2, True)}
    one, two = rows[(1, False)], rows[(2, False)]
    assert one["users"] == 200 and one["table_entries"] == 200
    # two 384-d float32 vectors per domain dominate the serialised state
    assert 2 * 384 * 4 < one["serialised_bytes_per_user"] < two["serialised_bytes_per_user"]
    assert rows[(2, True)]["serialised_bytes_per_user"] > two["serialised_bytes_per_user"]
    assert "recent_items_per_domain" in doc["bounds"]
