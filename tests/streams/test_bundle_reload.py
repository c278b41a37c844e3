"""A worker serving a fitted bundle picks up a refit without restarting, and moves existing
users onto the new item space (real broker, worker, store and encoder; planted bundles)."""

from __future__ import annotations

import json
import time

import pytest

from inference.bundle import ModelBundle
from tests.inference.test_bundle_model import planted

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]


def servable(seed: int) -> ModelBundle:
    b, *_ = planted(seed=seed)
    # No text-encoder check: the planted bridge is 16-d and no free text is sent here.
    return ModelBundle(
        b.item_ids,
        b.item_domains,
        b.inputs,
        b.outputs,
        b.projections,
        b.bridge,
        b.params,
        text_model="",
    )


def events(user: str, items: list[str], start: int) -> list[dict]:
    return [
        {
            "event_id": f"{user}-{start + n}",
            "user_id": user,
            "domain": "a",
            "action": "purchase",
            "item_id": i,
            "event_time": 1.7e9 + start + n,
        }
        for n, i in enumerate(items)
    ]


def test_refit_is_served_without_restart(make_worker, tmp_path) -> None:
    v1 = servable(seed=1)
    v2 = servable(seed=2)
    assert v1.version != v2.version
    v1.save(tmp_path / "bundle")
    w = make_worker()
    w.extra_env = {"WORKER_BUNDLE_DIR": str(tmp_path / "bundle"), "WORKER_BUNDLE_RELOAD_S": "1"}
    w.start()
    assert w.healthz()["model_version"] == f"bundle@{v1.version}"
    w.send(w.kafka.behaviour_topic, events("u1", ["a1-0", "a1-1"], 0), "user_id")
    w.wait_metric("xrec_events_total", 2, outcome="applied")
    assert w.user_states()["u1"].space == f"bundle@{v1.version}"

    v2.save(tmp_path / "bundle")
    deadline = time.monotonic() + 60
    while w.healthz()["model_version"] != f"bundle@{v2.version}":
        assert time.monotonic() < deadline, "the worker did not pick up the new bundle"
        time.sleep(0.5)
    w.send(w.kafka.behaviour_topic, events("u1", ["a1-2"], 2), "user_id")
    w.wait_metric("xrec_events_total", 3, outcome="applied")
    state = w.user_states()["u1"]
    assert state.space == f"bundle@{v2.version}" and state.events_applied == 3
    recs = [json.loads(v) for _, v, _ in w.read(w.kafka.recommendations_topic)]
    latest = [r for r in recs if r["source_event_id"] == "u1-2"]
    # served by v2, its projections refined online by N pairs since the reload: bundle@v2+N
    assert latest and all(r["model_version"].startswith(f"bundle@{v2.version}+") for r in latest)
    assert w.proc is not None and w.proc.poll() is None
    # the old model's reference cycles are collected at once (WORKER_GC_FREEZE, default on)
    assert "heap frozen after bundle reload" in w.log_path.read_text()
    # and the store applies each item's latest record again, placed by the new bundle
    deadline = time.monotonic() + 30
    while "applied the latest of" not in w.log_path.read_text():
        assert time.monotonic() < deadline, f"no catalogue replay after the reload ({w.log_path})"
        time.sleep(0.5)

    # A restart with the same bundle places nothing again; a restart with another bundle (a
    # refit rolled out by restarting) places the items the way a reload does.
    # (a catalogue record of a fitted item: the planted bridge cannot place text)
    w.send(w.kafka.catalogue_topic, [{"item_id": "a1-0", "domain": "a", "title": "t"}], "item_id")
    w.wait_metric("xrec_events_total", 1, outcome="upserted")
    replays = w.log_path.read_text().count("applied the latest of")
    w.stop()
    w.start()
    w.send(w.kafka.behaviour_topic, events("u1", ["a1-3"], 3), "user_id")
    w.wait_metric("xrec_events_total", 1, outcome="applied")
    assert w.log_path.read_text().count("applied the latest of") == replays
    w.stop()
    v3 = servable(seed=3)
    v3.save(tmp_path / "bundle")
    w.start()
    assert w.healthz()["model_version"] == f"bundle@{v3.version}"
    deadline = time.monotonic() + 30
    while w.log_path.read_text().count("applied the latest of") == replays:
        assert time.monotonic() < deadline, f"no catalogue replay after the restart ({w.log_path})"
        time.sleep(0.5)
