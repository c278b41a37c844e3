"""The one-command demo: local broker, one worker, a synthetic feed, live recommendations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from streams.broker import LocalBroker, start_broker
from streams.client import consume, produce
from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import ensure_topics
from synth.generator import SyntheticWorld


def start_worker_process(
    bootstrap: str,
    *,
    web_port: int,
    model_dir: Path,
    qdrant_path: Path,
    app_id: str = "xrec",
    log_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``xrec worker`` as a child process configured only through its env vars."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "WORKER_WEB_PORT": str(web_port),
        "WORKER_APP_ID": app_id,
        "MODEL_DIR": str(model_dir),
        "QDRANT_PATH": str(qdrant_path),
        "MODEL_PROVIDER": os.environ.get("MODEL_PROVIDER", "cpu"),
        **(extra_env or {}),
    }
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def scrape(port: int, timeout_s: float = 2.0) -> str:
    """The worker's /metrics text, or '' while it is not serving yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (tiny text parser)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` until true; fail with ``what`` on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def wait_metric(
    port: int,
    name: str,
    at_least: float,
    timeout_s: float,
    what: str,
    proc: subprocess.Popen | None = None,
    **labels: str,
) -> None:
    """Poll the worker's /metrics on ``port`` until ``name{labels}`` sums to ``at_least``."""
    wait_for(lambda: metric_sum(scrape(port), name, **labels) >= at_least, timeout_s, what, proc)


def run_demo(
    *,
    users: int,
    events_per_user: int,
    duration_s: float,
    web_port: int,
    model_dir: Path,
    bootstrap: str | None,
) -> None:
    """Run the whole product locally and print recommendations as they arrive."""
    from exporter.onnx_export import ensure_exported

    print(f"model: {ensure_exported(model_dir)}")
    broker: LocalBroker | None = None
    if bootstrap is None:
        broker = start_broker()
        bootstrap = broker.bootstrap
        print(f"local broker (Tansu) on {bootstrap}")
    kafka = KafkaSettings(bootstrap=bootstrap)
    asyncio.run(ensure_topics(kafka, WorkerSettings()))
    world = SyntheticWorld(users=users)
    tmp = Path(tempfile.mkdtemp(prefix="xrec-demo-"))
    log_path = tmp / "worker.log"
    proc = start_worker_process(
        bootstrap,
        web_port=web_port,
        model_dir=model_dir,
        qdrant_path=tmp / "qdrant",
        log_path=log_path,
    )
    print(f"worker started (log: {log_path}); metrics: http://127.0.0.1:{web_port}/metrics")
    try:
        asyncio.run(produce(kafka, kafka.catalogue_topic, world.catalogue(), "item_id"))
        n_items = len(world.items)
        wait_metric(
            web_port, "xrec_events_total", n_items, 120, "catalogue", proc, outcome="upserted"
        )
        print(f"catalogue: {n_items} items in {len(world.domains)} domains indexed")
        asyncio.run(_feed_and_print(kafka, world, events_per_user, duration_s))
        print(
            f"\nmetrics: http://127.0.0.1:{web_port}/metrics  health: "
            f"http://127.0.0.1:{web_port}/healthz"
        )
        print(
            json.dumps(
                {
                    "recommendations_total": metric_sum(
                        scrape(web_port), "xrec_recommendations_total"
                    )
                }
            )
        )
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()
        if broker:
            broker.stop()


async def _feed_and_print(
    kafka: KafkaSettings, world: SyntheticWorld, per_user: int, duration_s: float
) -> None:
    topics = {u.user_id: u for u in world.users}
    titles = {it.item_id: it for it in world.items}
    events = list(world.events(per_user=per_user, start_time=time.time() - 3600))

    async def feed() -> None:
        for i in range(0, len(events), 20):  # small waves so the output reads as live
            await produce(kafka, kafka.behaviour_topic, events[i : i + 20], "user_id")
            await asyncio.sleep(0.2)

    feeder = asyncio.create_task(feed())
    shown = 0
    async for _, value, _ in consume(kafka, kafka.recommendations_topic, timeout_s=duration_s):
        rec = json.loads(value)
        user = topics[rec["user_id"]]
        top = [titles[i["item_id"]] for i in rec["items"][:3]]
        if shown < 60 or shown % 50 == 0:
            print(
                f"{rec['user_id']:>8} likes {'+'.join(user.topics):<22} in "
                f"{','.join(user.domains):<16} -> {rec['domain']:<6} "
                f"[{rec['explanation']['strategy']:<8}] "
                + " | ".join(f"{t.topic}: {t.title.split(' (')[0][:28]}" for t in top)
            )
        shown += 1
    await feeder
    print(f"... {shown} recommendation events")
