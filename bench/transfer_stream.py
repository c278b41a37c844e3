"""Prequential replay of held-out users through the running pipeline, checked against offline.

Each user's items become behaviour events, sent in rounds (round r = every user's r-th event),
each round waiting until the worker applied it, so every event gets its own recommendation.
Prequential Recall@10: event k is a hit when its item is in the top 10 the worker published for
that domain after event k-1 (recommend, then learn). The same events are replayed offline through
the same interest code and bundle with exact ranking; both figures and their per-event agreement
are reported.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from inference.bundle_model import BundleModel
from inference.interest import InterestParams, UserState, apply_event
from store.base import ItemPoint

K = 10


@dataclass(frozen=True)
class ReplayEvent:
    user_id: str
    k: int  # position in the user's sequence
    item_id: str
    domain: str

    @property
    def event_id(self) -> str:
        return f"{self.user_id}#{self.k}"

    def record(self, t0: float) -> dict:
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "domain": self.domain,
            "action": "purchase",
            "item_id": self.item_id,
            "event_time": t0 + self.k,
        }


def offline_hits(
    model: BundleModel, users: dict[str, list[ReplayEvent]], params: InterestParams
) -> dict[str, bool]:
    """event id -> hit, for every event after a user's first, via exact ranking."""
    b = model.bundle
    by_domain = {d: b.items_of(d) for d in b.domains}
    hits: dict[str, bool] = {}
    for events in users.values():
        state = UserState()
        prev: ReplayEvent | None = None
        for ev in events:
            if prev is not None:
                q = model.query(state, ev.domain)
                if q is not None:
                    rows = by_domain[ev.domain]
                    scores = b.outputs[rows] @ q.vector[: b.output_dim]
                    consumed = set(state.consumed(ev.domain))
                    order = np.argsort(-scores, kind="stable")
                    top = [
                        b.item_ids[rows[i]]
                        for i in order[: K + len(consumed)]
                        if b.item_ids[rows[i]] not in consumed
                    ][:K]
                    hits[ev.event_id] = ev.item_id in top
            idx = b.index_of(ev.item_id)
            item = ItemPoint(
                ev.item_id, ev.domain, model.stored_vector(b.outputs[idx], b.inputs[idx])
            )
            apply_event(
                state,
                event_id=ev.event_id,
                domain=ev.domain,
                action="purchase",
                event_time=1e9 + ev.k,
                vector=model.item_input(item),
                item_id=ev.item_id,
                rating=None,
                params=params,
            )
            prev = ev
    return hits


def stream_hits(
    users: dict[str, list[ReplayEvent]], bundle_dir: Path, model_dir: Path, timeout_s: float = 120.0
) -> tuple[dict[str, bool], dict[str, float]]:
    """Replay through broker + worker; event id -> hit from the published recommendations."""
    from streams.broker import start_broker
    from streams.processes import scratch_dir

    with scratch_dir("xrec-replay-") as tmp:
        broker = start_broker(log_path=tmp / "tansu.log")
        try:
            recs, facts = _worker_recommendations(
                broker.bootstrap, users, bundle_dir, model_dir, tmp, timeout_s
            )
        finally:
            broker.stop()
    hits = {}
    for events in users.values():
        for prev, ev in itertools.pairwise(events):
            got = recs.get((prev.event_id, ev.domain))
            if got is not None:
                hits[ev.event_id] = ev.item_id in got
    return hits, facts


def _worker_recommendations(
    bootstrap: str,
    users: dict[str, list[ReplayEvent]],
    bundle_dir: Path,
    model_dir: Path,
    tmp: Path,
    timeout_s: float,
) -> tuple[dict[tuple[str, str], set[str]], dict[str, float]]:
    """Each user's events in rounds through a worker; (source event, domain) -> items."""
    from streams.broker import free_port
    from streams.client import consume, produce
    from streams.processes import scrape, start_worker_process, wait_for, wait_metric
    from streams.settings import KafkaSettings, WorkerSettings
    from streams.topics import ensure_topics

    kafka = KafkaSettings(bootstrap=bootstrap)
    asyncio.run(ensure_topics(kafka, WorkerSettings()))
    port = free_port()
    proc = start_worker_process(
        bootstrap,
        web_port=port,
        model_dir=model_dir,
        qdrant_path=tmp / "qdrant",
        log_path=tmp / "worker.log",
        # Adaptation off: this replay checks the serving path against the offline ranking
        # event by event; adaptation is measured by `xrec bench-drift`.
        extra_env={"WORKER_BUNDLE_DIR": str(bundle_dir), "WORKER_DRIFT_ADAPTIVE": "false"},
    )
    facts: dict[str, float] = {}
    try:
        wait_for(lambda: bool(scrape(port)), timeout_s, "worker web server", proc)
        t0, sent = time.time(), 0
        rounds = max(len(evs) for evs in users.values())
        start = time.perf_counter()
        for r in range(rounds):
            batch = [evs[r].record(t0) for evs in users.values() if len(evs) > r]
            asyncio.run(produce(kafka, kafka.behaviour_topic, batch, "user_id"))
            sent += len(batch)
            wait_metric(
                port,
                "xrec_events_total",
                sent,
                timeout_s,
                f"round {r} applied ({tmp / 'worker.log'})",
                proc,
                outcome="applied",
            )
        facts["replay_s"] = round(time.perf_counter() - start, 1)
        facts["events"] = sent

        async def read() -> list[bytes]:
            return [v async for _, v, _ in consume(kafka, kafka.recommendations_topic, timeout_s=5)]

        recs: dict[tuple[str, str], set[str]] = {}
        for value in asyncio.run(read()):
            rec = json.loads(value)
            recs[(rec["source_event_id"], rec["domain"])] = {i["item_id"] for i in rec["items"]}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return recs, facts


def compare(offline: dict[str, bool], stream: dict[str, bool]) -> dict[str, float]:
    """Both prequential recalls on the events both scored, and how often they agree."""
    same = sorted(set(offline) & set(stream))
    return {
        "events_scored": len(same),
        "stream_recall@10": round(float(np.mean([stream[e] for e in same])), 4) if same else 0.0,
        "offline_recall@10": round(float(np.mean([offline[e] for e in same])), 4) if same else 0.0,
        "per_event_agreement": round(float(np.mean([stream[e] == offline[e] for e in same])), 4)
        if same
        else 0.0,
        "offline_only_events": len(set(offline) - set(stream)),
    }


def replay_events(
    user_ids: Sequence[str],
    sequences: Sequence[Sequence[int]],
    domains: np.ndarray,
    max_events: int,
) -> dict[str, list[ReplayEvent]]:
    """Dataset sequences (item indices) as replay events (item ids are the indices as text)."""
    return {
        u: [ReplayEvent(u, k, str(i), str(domains[i])) for k, i in enumerate(seq[:max_events])]
        for u, seq in zip(user_ids, sequences, strict=True)
        if len(seq) > 1
    }


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.callback(invoke_without_command=True)
def replay(
    bundle_dir: Annotated[
        Path, typer.Option(envvar="WORKER_BUNDLE_DIR", help="bundle from xrec eval-transfer")
    ] = Path(".cache/transfer/bundle"),
    model_dir: Annotated[Path, typer.Option(envvar="MODEL_DIR")] = Path("models/all-MiniLM-L6-v2"),
    data: Annotated[Path | None, typer.Option(envvar="XREC_DATA_DIR")] = None,
    split: Annotated[str, typer.Option(envvar="XREC_REPLAY_SPLIT")] = "test",
    users: Annotated[int, typer.Option(envvar="XREC_REPLAY_USERS")] = 300,
    max_events: Annotated[int, typer.Option(envvar="XREC_REPLAY_MAX_EVENTS")] = 30,
    out: Annotated[Path, typer.Option(envvar="XREC_REPLAY_OUT")] = Path(
        "bench/results/transfer-stream.json"
    ),
) -> None:
    """Replay held-out users through broker + worker and offline; write both figures."""
    from bench.transfer_data import load_dataset

    dataset = load_dataset(data)
    sp = dataset.splits[split]
    events = replay_events(
        sp.users[:users], sp.sequences[:users], dataset.catalogue.domains, max_events
    )
    model = BundleModel.load(bundle_dir)
    offline = offline_hits(model, events, model.interest_params(InterestParams()))
    stream, facts = stream_hits(events, bundle_dir, model_dir)
    result = {
        "split": split,
        "users": len(events),
        "max_events_per_user": max_events,
        "bundle": model.version,
        **compare(offline, stream),
        **facts,
        "date": time.strftime("%Y-%m-%d"),
        "command": "xrec replay-transfer",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result, indent=2))
