"""user_switch pooled over seeds: summed counts, the recovery rule on the pooled curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.drift_seeds import main, pooled, summarise


def _row(seed: int, variant: str, pre: list[int], curve: list[list[int]]) -> dict:
    return {
        "seed": seed,
        "variant": variant,
        "recovery_events": None,
        "pre_drift_recall@10": pre[0] / pre[1],
        "prequential_recall@10": 0.0,
        "switching_users": 4,
        "curve_hits": {"pre": pre, "curve": curve},
    }


def test_pooled_curve_sums_hits_so_one_lucky_seed_is_not_a_recovery() -> None:
    # pre-switch level 0.5 in both seeds (line 0.45). Seed 0 touches the line at gap 1 on 10
    # events (0.5) while seed 1, on 90 events, is at 0.2 there: pooled 23/100 = 0.23, below.
    # Both are back at gap 2 (pooled 50/100).
    rows = [
        _row(0, "adaptive", [50, 100], [[0, 0, 10], [1, 5, 10], [2, 5, 10]]),
        _row(1, "adaptive", [50, 100], [[0, 0, 90], [1, 18, 90], [2, 45, 90]]),
    ]
    p = pooled(rows)
    assert p["line"] == pytest.approx(0.45)
    assert [c[0] for c in p["curve"]] == [0, 1, 2]
    assert p["curve"][1][1] == pytest.approx(0.23) and p["curve"][1][4] == 100
    assert p["curve"][1][2] < 0.23 < p["curve"][1][3]  # the 95% interval brackets it
    assert p["recovery_events"] == 2
    # an equal-weight mean of the two seeds' curves would read (0.5 + 0.2) / 2 = 0.35 there; a
    # curve that never gets back is not recovered
    never = pooled([_row(0, "static", [50, 100], [[0, 0, 10], [1, 1, 10]])])
    assert never["recovery_events"] is None


def test_summary_reports_each_seed_and_the_pooled_speedup() -> None:
    rows = []
    for seed in (0, 1):
        rows.append(_row(seed, "adaptive", [5, 10], [[0, 1, 10], [1, 5, 10]]))
        rows.append(_row(seed, "static", [5, 10], [[0, 1, 10], [1, 1, 10], [2, 1, 10], [3, 5, 10]]))
    s = summarise(rows)
    assert s["seeds"] == [0, 1] and len(s["per_seed"]) == 2
    assert set(s["per_seed"][0]) == {"seed", "adaptive", "static"}
    assert s["pooled"]["adaptive"]["recovery_events"] == 1
    assert s["pooled"]["static"]["recovery_events"] == 3
    assert s["pooled_speedup"] == 3.0


def test_synthetic_seeds_run_through_the_replay(tmp_path: Path) -> None:
    out = tmp_path / "seeds.json"
    assert (
        main(["--data", "synthetic", "--seeds", "0", "1", "--size", "1200", "--out", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert doc["seeds"] == [0, 1] and doc["command"].endswith(f"--out {out}")
    assert {"adaptive", "static", "oracle_reset"} <= set(doc["pooled"])
    users = 1200 // 60  # per seed; each user's first event in each domain after the switch
    for variant, p in doc["pooled"].items():
        first = p["curve"][0]
        assert first[0] == 0 and users * 2 < first[4] <= 2 * users * 2, variant  # both seeds
        assert 0 < p["pre_drift_recall@10"][0] <= 1
    assert [s["seed"] for s in doc["per_seed"]] == [0, 1]
