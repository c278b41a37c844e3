"""The bundle-worker probe, briefly: a real broker and worker, paced events, figures read back."""

from __future__ import annotations

import pytest

from bench.bundle_worker_probe import STAGES, probe

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def test_probe_reports_every_stage_of_the_paced_events(model_dir) -> None:
    out = probe(rate=200, seconds=2, model_dir=model_dir)
    assert out["events"] >= 400 and out["batches"] > 0
    assert set(out["stage_ms_per_batch"]) == set(STAGES)
    assert out["stage_ms_per_batch"]["store_query"] > 0
    assert out["stage_seconds_total"] > 0 and out["event_to_recommendation_ms_mean"] > 0
