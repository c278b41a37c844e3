"""The store probe's three variants answer the same batch; below the indexing threshold every
engine search is exact, so all three must agree with the reference completely."""

from __future__ import annotations

from bench.store_probe import probe


def test_probe_variants_agree_when_search_is_exact() -> None:
    out = probe("synthetic", items=400, users=6, consumed=5, repeat=1)
    assert out["queries_per_batch"] == 12
    for name in ("one_shard_filtered", "shard_per_domain", "numpy_exact"):
        assert out[name]["recall@10"] == 1.0, name
        assert out[name]["batch_ms_p50"] > 0
    assert set(out["speedup_vs_one_shard"]) == {"shard_per_domain", "numpy_exact"}
