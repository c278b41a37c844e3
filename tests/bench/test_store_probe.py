"""The store probe's variants answer the same batch; below the indexing threshold every engine
search is exact, so all must agree with the reference completely."""

from __future__ import annotations

from bench.store_probe import probe


def test_probe_variants_agree_when_search_is_exact() -> None:
    out = probe("synthetic", items=400, users=6, consumed=5, repeat=1)
    assert out["queries_per_batch"] == 12
    variants = ("shard_per_domain", "shard_per_domain_filtered", "numpy_exact")
    for name in ("one_shard_filtered", *variants):
        assert out[name]["recall@10"] == 1.0, name
        assert out[name]["batch_ms_p50"] > 0
    assert set(out["speedup_vs_one_shard"]) == set(variants)
    assert 0 <= out["asked_again_share"] <= 1 and out["overfetch_speedup_vs_filter"] > 0
    crowd = out["consumed_among_nearest"]
    # each synthetic user consumed 5 items: at most 5 can be among a query's nearest
    assert 0 <= crowd["among_nearest_mean"] <= crowd["among_nearest_max"] <= 5
