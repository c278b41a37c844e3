"""The one-command demo: local broker, one worker, a synthetic feed, live recommendations."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from signal import SIGINT, SIGTERM

from inference.errors import RecommenderError
from streams.broker import LocalBroker, start_broker
from streams.client import consume, produce
from streams.processes import (
    KAFKA_CONNECTION,
    QDRANT_CONNECTION,
    log_tail,
    metric_sum,
    scrape,
    start_worker_process,
    stop_process,
    wait_metric,
)
from streams.settings import KafkaSettings, SecurityProtocol, WorkerSettings
from streams.topics import ensure_topics
from synth.generator import SyntheticWorld, SynthItem, SynthUser


def run_demo(
    *,
    users: int,
    events_per_user: int,
    duration_s: float,
    web_port: int,
    model_dir: Path,
    bootstrap: str | None,
) -> None:
    """Run the whole product locally and print recommendations as they arrive.

    Ctrl-C (or SIGTERM) stops the feed, then the worker, then the broker, and says so; the
    worker's log is kept, its store and state folders are removed.
    """
    from exporter.onnx_export import ensure_exported

    print(f"model: {ensure_exported(model_dir)}")
    tmp = Path(tempfile.mkdtemp(prefix="xrec-demo-"))
    log_path = tmp / "worker.log"
    broker: LocalBroker | None = None
    proc: subprocess.Popen[bytes] | None = None
    interrupted = False
    try:
        if bootstrap is None:
            # in a session of its own, as the worker: a terminal's Ctrl-C reaches the demo
            # alone, which stops them in order (the broker last, under nobody's feet)
            broker = start_broker(own_session=True)
            bootstrap = broker.bootstrap
            print(f"local broker (Tansu) on {bootstrap}")
            # a plaintext broker of our own: no KAFKA_* security of the shell's is for it
            kafka = KafkaSettings(bootstrap=bootstrap, security_protocol=SecurityProtocol.PLAINTEXT)
            drop = KAFKA_CONNECTION + QDRANT_CONNECTION
        else:  # the shell's KAFKA_* security settings go with a broker it names
            kafka = KafkaSettings(bootstrap=bootstrap)
            drop = QDRANT_CONNECTION
        asyncio.run(ensure_topics(kafka, WorkerSettings(), bootstrap_setting="XREC_DEMO_BOOTSTRAP"))
        world = SyntheticWorld(users=users)
        proc = start_worker_process(
            bootstrap,
            web_port=web_port,
            model_dir=model_dir,
            qdrant_path=tmp / "qdrant",
            log_path=log_path,
            extra_env={"WORKER_DATA_DIR": str(tmp / "state")},
            drop_env=drop,
            own_session=True,
        )
        print(f"worker started (log: {log_path}); metrics: http://127.0.0.1:{web_port}/metrics")
        asyncio.run(produce(kafka, kafka.catalogue_topic, world.catalogue(), "item_id"))
        n_items = len(world.items)
        try:
            wait_metric(
                web_port, "xrec_events_total", n_items, 120, "catalogue", proc, outcome="upserted"
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RecommenderError(
                f"{exc}; the worker's log ({log_path}) ends:\n{log_tail(log_path)}\n"
                f"(a port in use? pick another with --web-port / WORKER_WEB_PORT)"
            ) from exc
        print(f"catalogue: {n_items} items in {len(world.domains)} domains indexed")
        asyncio.run(_feed_and_print(kafka, world, events_per_user, duration_s))
        total = metric_sum(scrape(web_port), "xrec_recommendations_total")
        print(json.dumps({"recommendations_total": total}))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # a second Ctrl-C (or a SIGTERM) must not cut the clean-up short: the worker, in a
        # session of its own, would be left running
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (SIGINT, SIGTERM)}
        try:
            _stop(proc, broker, tmp, log_path, interrupted)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if interrupted:
        raise SystemExit(130)  # the shell's code for a run ended by Ctrl-C


def _stop(
    proc: subprocess.Popen[bytes] | None,
    broker: LocalBroker | None,
    tmp: Path,
    log_path: Path,
    interrupted: bool,
) -> None:
    """Stop the worker, then the broker; keep the worker's log, remove its store and state."""
    stopped = []
    if proc is not None:
        stop_process(proc)
        stopped.append("the worker")
    if broker is not None:
        broker.stop()
        stopped.append("the local broker")
    for part in ("qdrant", "state"):
        shutil.rmtree(tmp / part, ignore_errors=True)
    kept = f"; worker log kept at {log_path}" if log_path.exists() else ""
    if not kept:
        shutil.rmtree(tmp, ignore_errors=True)
    if stopped:
        print(f"{'interrupted: ' if interrupted else ''}stopped {' and '.join(stopped)}{kept}")


async def _feed_and_print(
    kafka: KafkaSettings, world: SyntheticWorld, per_user: int, duration_s: float
) -> None:
    topics = {u.user_id: u for u in world.users}
    titles = {it.item_id: it for it in world.items}
    events = list(world.events(per_user=per_user, start_time=time.time() - 3600))
    by_id = {e["event_id"]: e for e in events}

    async def feed() -> None:
        for i in range(0, len(events), 20):  # small waves so the output reads as live
            await produce(kafka, kafka.behaviour_topic, events[i : i + 20], "user_id")
            await asyncio.sleep(0.2)

    feeder = asyncio.create_task(feed())
    shown = 0
    try:
        async for _, value, _ in consume(kafka, kafka.recommendations_topic, timeout_s=duration_s):
            if shown < 60 or shown % 50 == 0:
                print(describe(json.loads(value), topics, titles, by_id))
            shown += 1
        await feeder
    finally:
        feeder.cancel()
    print(f"... {shown} recommendation events")


def describe(
    rec: dict, users: dict[str, SynthUser], items: dict[str, SynthItem], events: dict[str, dict]
) -> str:
    """One line per recommendation: who, the event it answers, the domain, the top three."""
    user = users[rec["user_id"]]
    event = events.get(rec["source_event_id"])
    seen = items.get(event["item_id"]) if event else None
    after = f"after {seen.domain} {seen.topic}" if seen else "after an event"
    top = [items[i["item_id"]] for i in rec["items"][:3]]
    rest = [f"{t.topic} #{int(t.item_id.rsplit('-', 1)[1]) + 1}" for t in top[1:]]
    shown = [top[0].title, *rest] if top else ["(no items)"]
    return (
        f"{rec['user_id']:>8} likes {'+'.join(user.topics):<20} {after:<26} -> "
        f"{rec['domain']:<6} [{rec['explanation']['strategy']:<8}] " + "; ".join(shown)
    )
