"""The stream benchmark end to end on tiny sizes: broker, two workers, load, JSON and PNG."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench.stream_bench import main

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def test_stream_bench_tiny(broker, model_dir: Path, tmp_path: Path) -> None:
    argv = ["--bootstrap", broker.bootstrap, "--model-dir", str(model_dir)]
    argv += ["--out-dir", str(tmp_path), "--source", "synthetic", "--min-items", "48"]
    argv += ["--users", "20", "--rates", "40", "--step-s", "2", "--profile-s", "1"]
    argv += ["--passthrough-events", "2000", "--no-fetch-probe", "--partitions", "2"]
    argv += ["--workers", "2"]  # one group of two, each worker with the whole catalogue
    before = set(Path(tempfile.gettempdir()).glob("xrec-bench-stream-*"))
    assert main(argv) == 0
    # its logs, stores and profile went with the run (they are kept only when it fails)
    assert set(Path(tempfile.gettempdir()).glob("xrec-bench-stream-*")) == before
    doc = json.loads((tmp_path / "stream.json").read_text())
    assert (tmp_path / "stream.png").read_bytes()[:4] == b"\x89PNG"
    assert doc["benchmark"] == "stream" and doc["date"] and doc["machine"]["cores"] >= 1
    assert doc["workload"]["source"] == "synthetic" and doc["workload"]["preload"]["drained"]
    (row,) = doc["rows"]
    for key in ("rate_offered", "events_per_s", "p50_ms", "p99_ms", "lag_end"):
        assert key in row
    assert row["rate_offered"] == 40 and row["events_per_s"] > 0
    assert row["p50_ms"] is not None and row["p99_ms"] >= row["p50_ms"] > 0
    assert row["passthrough_events_per_s"] == doc["passthrough"]["events_per_s"] > 0
    assert row["worker_cpu_ms_per_event"] > 0 and 0 <= row["worker_gc_share_of_cpu"] < 1
    assert set(row["worker_gc_by_generation"]) == {"0", "1", "2"}
    assert doc["config"]["kafka"]["fetch_max_wait_ms"] > 0 and doc["config"]["worker"]["gc_freeze"]
    assert doc["passthrough"]["events"] == 2000
    assert doc["config"]["workers"] == 2
    assert len(doc["workload"]["rss_mib_after_catalogue_by_worker"]) == 2
    assert doc["profile"]["stages"] and doc["profile"]["cores_by_thread"]
    assert doc["profile"]["publish_ack"]["count"] > 0
    assert set(doc["goals"]) >= {"sustained_2000_with_p99_under_100ms", "share_of_passthrough"}
