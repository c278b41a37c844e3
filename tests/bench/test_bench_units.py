"""Benchmark helpers without a broker or a model: workload, parsing, goals, plot, CLI mount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bench import encoder_bench, memory_bench, stream_bench
from bench.encoder_backends import gpu_arithmetic_limit, model_flops
from bench.profiling import (
    histogram_mean_ms,
    stage_profile,
    summarise_speedscope,
    thread_cpu,
    thread_cpu_profile,
)
from bench.report import machine, plot_stream
from bench.workload import synthetic_workload

METRICS_BEFORE = """\
xrec_stage_seconds_sum{stage="parse"} 1.0
xrec_stage_seconds_count{stage="parse"} 10.0
xrec_stage_seconds_sum{stage="store_query"} 2.0
xrec_stage_seconds_count{stage="store_query"} 10.0
"""
METRICS_AFTER = """\
xrec_stage_seconds_sum{stage="parse"} 1.5
xrec_stage_seconds_count{stage="parse"} 20.0
xrec_stage_seconds_sum{stage="store_query"} 6.5
xrec_stage_seconds_count{stage="store_query"} 20.0
"""


def test_synthetic_workload_events_are_well_formed() -> None:
    wl = synthetic_workload(100, users=5)
    assert wl.n_items >= 100 and len(wl.users) == 5
    items = {c["item_id"]: c["domain"] for c in wl.catalogue}
    first = list(wl.first_pass())
    assert [e["user_id"] for e in first] == wl.users
    gen = wl.random_events("x")
    events = first + [next(gen) for _ in range(50)]
    assert len({e["event_id"] for e in events}) == len(events)
    for e in events:
        assert set(e) == {"event_id", "user_id", "domain", "action", "item_id", "event_time"}
        assert items[e["item_id"]] == e["domain"]
        assert e["action"] in ("view", "click", "purchase")


def test_stage_profile_shares_are_deltas() -> None:
    prof = stage_profile(METRICS_BEFORE, METRICS_AFTER, wall_s=10.0)
    assert list(prof) == ["store_query", "parse"]  # busiest first
    assert prof["store_query"]["seconds"] == pytest.approx(4.5)
    assert prof["store_query"]["share_of_stages"] == pytest.approx(0.9)
    assert prof["store_query"]["ms_per_batch"] == pytest.approx(450.0)
    assert prof["parse"]["share_of_wall"] == pytest.approx(0.05)


def test_histogram_mean_is_of_the_observations_between_scrapes() -> None:
    before = "xrec_publish_ack_seconds_sum 2.0\nxrec_publish_ack_seconds_count 40.0\n"
    after = "xrec_publish_ack_seconds_sum 5.0\nxrec_publish_ack_seconds_count 100.0\n"
    assert histogram_mean_ms(before, after, "xrec_publish_ack_seconds") == {
        "count": 60,
        "mean_ms": pytest.approx(50.0),
    }
    assert histogram_mean_ms(after, after, "xrec_publish_ack_seconds") is None  # none observed


def test_speedscope_summary(tmp_path: Path) -> None:
    doc = {
        "shared": {
            "frames": [
                {"name": "main", "file": "/x/streams/app.py", "line": 1},
                {"name": "query", "file": "/v/site-packages/qdrant_edge/q.py", "line": 2},
                {"name": "select", "file": "/usr/lib/python3.11/selectors.py", "line": 3},
            ]
        },
        "profiles": [
            {
                "type": "sampled",
                "name": 'Thread 11 "MainThread"',
                "unit": "seconds",
                "samples": [[0, 1], [0, 1], [0, 1], [2]],
                "weights": [0.01, 0.01, 0.01, 0.01],
            }
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    s = summarise_speedscope(path, duration_s=1.0, rate=100)
    assert s["samples"] == 4
    assert s["self_by_package"]["qdrant_edge"] == pytest.approx(0.75)
    assert s["inclusive_by_repo_function"]["main (xrec:streams/app.py)"] == pytest.approx(0.75)
    assert s["thread_busy_fraction"]['Thread 11 "MainThread"'] == pytest.approx(0.04)


def test_thread_cpu_profile_groups_native_pools() -> None:
    before = {1: ("python", 1.0), 2: ("edge-search-0", 0.0), 3: ("edge-search-1", 0.0)}
    after = {1: ("python", 2.0), 2: ("edge-search-0", 1.0), 3: ("edge-search-1", 1.0)}
    cores = thread_cpu_profile(before, after, 2.0, names={1: "py:MainThread"})
    assert cores == {"edge-search": 1.0, "py:MainThread": 0.5}
    assert thread_cpu(__import__("os").getpid())  # this process has at least one thread


def test_goals_use_the_best_kept_up_row() -> None:
    rows = [
        {"events_per_s": 900.0, "p99_ms": 50.0, "kept_up": True},
        {"events_per_s": 1500.0, "p99_ms": 90.0, "kept_up": True},
        {"events_per_s": 1700.0, "p99_ms": 900.0, "kept_up": False},
    ]
    g = stream_bench._goals(rows, passthrough_eps=3000.0)
    assert g["best_sustained_with_p99_under_100ms"] == 1500.0
    assert g["peak_events_per_s"] == 1700.0
    assert g["share_of_passthrough"] == pytest.approx(0.5)
    assert g["share_of_passthrough_at_least_30pct"] is True
    assert g["sustained_2000_with_p99_under_100ms"] is False


def test_model_flops_and_gpu_limit() -> None:
    f = model_flops(32)
    # all-MiniLM-L6-v2: 6 layers x (4 x 384^2 + 2 x 384 x 1536) weights
    assert f["matmul_params"] == 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert f["flops_per_sentence"] == 2 * f["matmul_params"] * 32 + 6 * 4 * 32 * 32 * 384
    lim = gpu_arithmetic_limit("NVIDIA H100 PCIe", 32)
    assert lim["sentences_per_s_limit"] == round(756e12 / f["flops_per_sentence"])


def test_plot_and_machine(tmp_path: Path) -> None:
    rows = [
        {"rate_offered": 100, "events_per_s": 99.0, "p50_ms": 5.0, "p99_ms": 20.0},
        {"rate_offered": 200, "events_per_s": 150.0, "p50_ms": 50.0, "p99_ms": 900.0},
        {"rate_offered": 400, "events_per_s": 150.0, "p50_ms": None, "p99_ms": None},
    ]
    out = plot_stream(rows, 5000.0, tmp_path / "s.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = machine()
    assert m["cores"] >= 1 and m["cpu_model"]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (stream_bench, "bench-stream"),
        (encoder_bench, "bench-encoder"),
        (memory_bench, "bench-memory"),
    ],
)
def test_cli_mounts_under_a_parent_app(module, name: str) -> None:
    parent = typer.Typer()

    @parent.command()
    def other() -> None:  # a second command, so the parent is a group as xrec is
        pass

    parent.add_typer(module.app, name=name)
    result = CliRunner().invoke(parent, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "--out-dir" in result.output and "BENCH_OUT_DIR" in result.output
