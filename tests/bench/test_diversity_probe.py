"""The diversity probe on the synthetic world: lists get less alike and wider with diversity,
and level 0 scores as the drift benchmark's no-drift stream does (the same replay)."""

from __future__ import annotations

from bench.diversity_probe import probe


def test_diversity_spreads_lists_and_level_0_is_the_baseline() -> None:
    out = probe("synthetic", (0.0, 0.5))
    plain, diverse = out["rows"]
    assert plain["recall_vs_no_diversity"] == 1.0 and plain["lists"] == diverse["lists"] > 0
    assert diverse["list_cosine_mean"] < plain["list_cosine_mean"]
    assert diverse["topics_per_list"] > plain["topics_per_list"]
    assert 0 < plain["catalogue_shown"] <= 1 and plain["scored_events"] == diverse["scored_events"]
