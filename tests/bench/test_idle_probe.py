"""The idle probe measures a real idle worker and the real broker beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.idle_probe import idle_cores

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def test_idle_probe_reports_worker_and_broker_cpu(model_dir: Path) -> None:
    # settle: the worker must have joined its group and be polling before it is measured
    out = idle_cores([50], seconds=3.0, settle_s=10.0, model_dir=model_dir)
    (row,) = out.values()
    assert set(out) == {"fetch_max_wait_50ms"}
    # an idle worker still polls and heartbeats, and the broker answers it: neither is zero
    # (how little they use is the benchmark's figure, not a test's)
    assert row["worker_cores"] > 0 and row["broker_cores"] > 0
