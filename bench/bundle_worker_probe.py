"""A bundle-serving worker under paced load: time per stage and event-to-recommendation latency.

Starts the local broker and one worker serving a small planted bundle with online learning on
(it writes learned statistics every batch), sends every user's first event, then produces
events at ``--rate`` for ``--seconds`` and reads the worker's /metrics: seconds per stage over
the paced part, batches, and the mean time from event to recommendation. For A/B runs across
commits (the learned records' ordering in ``streams.changelog`` was measured so): run it on
each and compare within the same session, as the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.report import emit_probe
from bench.transfer_data import DEFAULT_MODEL_DIR
from streams.broker import running_broker
from tests.fixtures.worker import new_handle
from tests.streams.test_bundle_reload import servable
from tests.streams.test_learned_state import _events

STAGES = (
    "parse",
    "state_load",
    "item_lookup",
    "state_update",
    "blend",
    "store_query",
    "store_upsert_users",
    "state_store",
    "publish",
    "publish_wait",
)
USERS = 500


async def _pace(kafka, topic: str, events: list[dict], rate: float) -> float:
    """Produce ``events`` at ``rate`` per second, keyed by user; the seconds it took."""
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), linger_ms=2, acks="all")
    await producer.start()
    t0 = time.perf_counter()
    try:
        for k, e in enumerate(events):
            wait = t0 + k / rate - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await producer.send(topic, json.dumps(e).encode(), key=e["user_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - t0


def probe(rate: float, seconds: float, model_dir: Path) -> dict:
    events = _events(users=USERS, per_user=max(2, int(rate * seconds / USERS) + 1), seed=3)
    warm, paced = events[:USERS], events[USERS:]
    with tempfile.TemporaryDirectory() as tmp, running_broker() as broker:
        root = Path(tmp)
        servable(seed=1).save(root / "bundle")
        w = new_handle(broker.bootstrap, "probe", root, model_dir)
        w.extra_env = {"WORKER_BUNDLE_DIR": str(root / "bundle")}
        w.start()
        try:
            w.send(w.kafka.behaviour_topic, warm, "user_id")
            w.wait_metric("xrec_events_total", len(warm), timeout_s=120, outcome="applied")

            def sums() -> dict[str, tuple[float, float]]:
                names = {st: ("xrec_stage_seconds", {"stage": st}) for st in STAGES}
                names["event_to_recommendation"] = ("xrec_event_to_recommendation_seconds", {})
                return {
                    k: (w.metric(f"{n}_sum", **lb), w.metric(f"{n}_count", **lb))
                    for k, (n, lb) in names.items()
                }

            before = sums()
            took = asyncio.run(_pace(w.kafka, w.kafka.behaviour_topic, paced, rate))
            w.wait_metric("xrec_events_total", len(events), timeout_s=180, outcome="applied")
            after = sums()
        finally:
            w.stop(signal.SIGTERM)
    delta = {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}
    e2r_s, e2r_n = delta.pop("event_to_recommendation")
    return {
        "rate_offered": rate,
        "events": len(paced),
        "produce_s": round(took, 2),
        "stage_seconds_total": round(sum(s for s, _ in delta.values()), 3),
        "stage_ms_per_batch": {k: round(1000 * s / max(n, 1), 2) for k, (s, n) in delta.items()},
        "batches": int(delta["parse"][1]),
        "event_to_recommendation_ms_mean": round(1000 * e2r_s / max(e2r_n, 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second offered")
    ap.add_argument("--seconds", type=float, default=25.0, help="length of the paced part")
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    return emit_probe(
        "bundle_worker_probe",
        f"python -m bench.bundle_worker_probe --rate {a.rate:g} --seconds {a.seconds:g}",
        probe(a.rate, a.seconds, a.model_dir),
        a.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
