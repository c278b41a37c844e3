"""The one-command demo: local broker, one worker, a synthetic feed, live recommendations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from inference.errors import RecommenderError
from streams.broker import LocalBroker, start_broker
from streams.client import consume, produce
from streams.settings import KafkaSettings, SecurityProtocol, WorkerSettings
from streams.topics import ensure_topics
from synth.generator import SyntheticWorld, SynthItem, SynthUser

# Settings that point a worker at a broker or a store: a child started for a given broker and
# store must not inherit the shell's (a demo run in an operator's shell would otherwise write
# into their real Qdrant or authenticate against a plaintext local broker).
_CONNECTION_ENV = ("KAFKA_BOOTSTRAP", "KAFKA_SECURITY_PROTOCOL", "QDRANT_URL", "QDRANT_API_KEY")
_CONNECTION_PREFIXES = ("KAFKA_SASL_", "KAFKA_SSL_", "QDRANT_LOCAL_MODE")


def worker_env(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment less its broker and store connection, plus ``overrides``."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in _CONNECTION_ENV and not k.startswith(_CONNECTION_PREFIXES)
    }
    return {**inherited, **overrides}


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
    """Start ``xrec worker`` as a child process configured only through its env vars.

    The child talks to ``bootstrap`` and an embedded store at ``qdrant_path`` whatever the
    shell says (``extra_env`` may still name a server). It runs in a session of its own, so a
    terminal's Ctrl-C reaches only the parent, which stops it after its own clients.
    """
    env = worker_env(
        {
            "KAFKA_BOOTSTRAP": bootstrap,
            "WORKER_WEB_PORT": str(web_port),
            "WORKER_APP_ID": app_id,
            "MODEL_DIR": str(model_dir),
            "QDRANT_PATH": str(qdrant_path),
            "MODEL_PROVIDER": os.environ.get("MODEL_PROVIDER", "cpu"),
            **(extra_env or {}),
        }
    )
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM (the worker's graceful stop), then SIGKILL if it has not exited in time."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
    """Run the whole product locally and print recommendations as they arrive.

    Ctrl-C (or SIGTERM) stops the feed, then the worker, then the broker, and says so; the
    worker's log is kept, its store and state folders are removed.
    """
    from exporter.onnx_export import ensure_exported

    print(f"model: {ensure_exported(model_dir)}")
    broker: LocalBroker | None = None
    if bootstrap is None:
        broker = start_broker()
        bootstrap = broker.bootstrap
        print(f"local broker (Tansu) on {bootstrap}")
        # a plaintext broker of our own: whatever KAFKA_* security the shell sets is not for it
        kafka = KafkaSettings(bootstrap=bootstrap, security_protocol=SecurityProtocol.PLAINTEXT)
    else:
        kafka = KafkaSettings(bootstrap=bootstrap)
    tmp = Path(tempfile.mkdtemp(prefix="xrec-demo-"))
    log_path = tmp / "worker.log"
    proc: subprocess.Popen[bytes] | None = None
    stopped_by = ""
    try:
        asyncio.run(ensure_topics(kafka, WorkerSettings()))
        world = SyntheticWorld(users=users)
        proc = start_worker_process(
            bootstrap,
            web_port=web_port,
            model_dir=model_dir,
            qdrant_path=tmp / "qdrant",
            log_path=log_path,
            extra_env={"WORKER_DATA_DIR": str(tmp / "state")},
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
        stopped_by = "interrupted: "
    finally:
        if proc is not None:
            stop_process(proc)
        if broker:
            broker.stop()
        for part in ("qdrant", "state"):
            shutil.rmtree(tmp / part, ignore_errors=True)
        what = "the worker and the local broker" if broker else "the worker"
        print(f"{stopped_by}stopped {what}; worker log kept at {log_path}")
    if stopped_by:
        raise SystemExit(130)  # the shell's code for a run ended by Ctrl-C


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
    shown = [top[0].title] + [f"{t.topic} #{int(t.item_id.rsplit('-', 1)[1]) + 1}" for t in top[1:]]
    return (
        f"{rec['user_id']:>8} likes {'+'.join(user.topics):<20} {after:<26} -> "
        f"{rec['domain']:<6} [{rec['explanation']['strategy']:<8}] " + "; ".join(shown)
    )
