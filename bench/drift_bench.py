"""Drift benchmark: each scenario through the worker's own processor, adaptive vs static.

For every scenario of :mod:`synth.drift` the same stream runs twice in the same process, through
:class:`streams.behaviour.BehaviourProcessor` (the worker's batch code: state updates, drift
detection, online projections, queries) with a real Qdrant Edge store ranking the items:
once with adaptation on (``adaptive``) and once serving the offline bundle as fitted
(``static``). Prequential Recall@10: an event counts as a hit when its item was in the last
recommendation published for that user and domain before it (recommend, then learn); items a
user already consumed are not evaluated (they are never recommended).

Reported per scenario and variant: prequential Recall@10 over the stream, recall over time,
the number of events until recall recovers to 90% of its pre-drift level, and the drift
detections (on the ``none`` stream every detection is a false alarm).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bench.report import command_line, machine, now_iso, write_json
from inference.bundle import ModelBundle
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.fit import CollabParams, FitParams, ItemCatalogue, fit_bundle
from inference.interest import InterestParams
from store.base import ItemPoint
from store.edge import EdgeStore
from store.settings import QdrantSettings
from streams.behaviour import BehaviourProcessor
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings
from synth.drift import SOURCE, TARGET, DriftStream, DriftWorld, Scenario

K = 10
BIN = 150  # evaluated events per point of the recall-over-time curve
RECOVERED = 0.9  # share of the pre-drift recall that counts as recovered


def fit_world_bundle(world: DriftWorld, users: int = 1500) -> ModelBundle:
    """The offline bundle: fitted on a history drawn with the world's initial mapping."""
    ids = world.item_ids()
    index = {i: k for k, i in enumerate(ids)}
    domains = np.array([i.split("-")[0] for i in ids])
    topic = np.array([int(i.split("-")[1]) for i in ids])
    rng = np.random.default_rng(world.seed + 1)
    centres = rng.normal(size=(world.topics, 16))
    text = centres[topic] + 0.3 * rng.normal(size=(len(ids), 16))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    seqs = [[index[i] for i in seq] for seq in world.history(users)]
    params = FitParams(
        collab=CollabParams(dim=2 * world.topics), transfer_rank=world.topics, own_rank=12
    )
    cat = ItemCatalogue(tuple(ids), domains)
    return fit_bundle(seqs, cat, text.astype(np.float32), params, text_model="synthetic")


def _no_text(texts: list[str]) -> np.ndarray:
    raise AssertionError("drift scenarios carry no free text")  # never called: item events only


def _batches(events: list[dict], size: int = 64) -> list[list[dict]]:
    """Consecutive events, at most one per user per batch (one recommendation per event)."""
    out, cur, users = [], [], set()
    for e in events:
        if e["user_id"] in users or len(cur) == size:
            out.append(cur)
            cur, users = [], set()
        cur.append(e)
        users.add(e["user_id"])
    return [*out, cur] if cur else out


async def _replay(bundle: ModelBundle, stream: DriftStream, adaptive: bool, root: Path) -> dict:
    model = BundleModel(bundle, drift=DriftParams(adaptive=adaptive))
    store = EdgeStore(QdrantSettings(path=root / f"{stream.scenario}-{adaptive}"))
    store.ensure_collections(model.stored_dim)
    store.upsert_items([ItemPoint(i, d, v) for i, d, v in model.bootstrap_points()])
    pool = ThreadPoolExecutor(1)
    settings = WorkerSettings(top_k=K, target_domains=[SOURCE, TARGET], user_rate_per_s=0)
    proc = BehaviourProcessor(
        settings=settings,
        params=model.interest_params(InterestParams()),
        model=model,
        store=store,
        call_store=StoreCaller(pool, 1.0),
        encode=_no_text,
        topic="behaviour",
    )
    table: dict[str, bytes] = {}
    recs: dict[tuple[str, str], list[str]] = {}
    consumed: dict[tuple[str, str], set[str]] = {}
    hits: list[tuple[int, str, bool]] = []  # (stream index, user, hit) of evaluated events
    before = {lv: _detections(lv) for lv in ("user", "population")}
    offset = 0
    for batch in _batches(stream.events):
        msgs = []
        for e in batch:
            key = (e["user_id"], e["domain"])
            seen = consumed.setdefault(key, set())
            if key in recs and e["item_id"] not in seen:
                hits.append((offset, e["user_id"], e["item_id"] in recs[key]))
            seen.add(e["item_id"])
            raw = json.dumps(e).encode()
            msgs.append(SourceMessage("behaviour", 0, offset, e["user_id"].encode(), raw, 0.0))
            offset += 1
        out = await proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v))
        assert not out.dead_letters, out.dead_letters[:3]
        for r in out.recommendations:
            recs[r.user_id, r.domain] = [i.item_id for i in r.items]
    pool.shutdown()
    store.close()
    detections = {lv: int(_detections(lv) - before[lv]) for lv in ("user", "population")}
    return {"hits": hits, "detections": detections, "projection_updates": model.online.version}


def _detections(level: str) -> float:
    """The worker's drift counter (this process's registry) for ``level``."""
    value = REGISTRY.get_sample_value("xrec_drift_detections_total", {"level": level})
    return value or 0.0


def _curve(hits: list[tuple[int, str, bool]]) -> list[tuple[int, float]]:
    """(stream index at the end of the bin, recall) per ``BIN`` evaluated events."""
    return [
        (hits[min(k + BIN, len(hits)) - 1][0], float(np.mean([h for _, _, h in hits[k : k + BIN]])))
        for k in range(0, len(hits) - BIN + 1, BIN)
    ]


def _recovery(curve: list[tuple[int, float]], onset: int) -> tuple[float, int | None]:
    """Pre-drift recall and events after the onset until recall is back at 90% of it."""
    pre = [r for end, r in curve if end < onset][len(curve) // 10 :] or [r for _, r in curve]
    level = float(np.mean(pre))
    after = [(end, r) for end, r in curve if end >= onset]
    dropped = next((i for i, (_, r) in enumerate(after) if r < RECOVERED * level), None)
    if dropped is None:
        return level, 0
    back = next((end for end, r in after[dropped:] if r >= RECOVERED * level), None)
    return level, None if back is None else back - onset


def _user_recovery(stream: DriftStream, hits: list[tuple[int, str, bool]]) -> dict:
    """user_switch: recall by the number of a user's own events since their switch."""
    position: dict[int, int] = {}  # stream index -> the user's own event number
    count: dict[str, int] = {}
    for k, e in enumerate(stream.events):
        position[k] = count.get(e["user_id"], 0)
        count[e["user_id"]] = position[k] + 1
    pre: list[bool] = []
    per_gap: dict[int, list[bool]] = {}
    for idx, user, hit in hits:
        at = stream.switch_at.get(user)
        if at is None:
            continue
        if idx < at:
            pre.append(hit)
        else:
            per_gap.setdefault(position[idx] - position[at], []).append(hit)
    level = float(np.mean(pre)) if pre else 0.0
    curve = [(g, float(np.mean(per_gap[g]))) for g in sorted(per_gap)]
    back = next((g for g, r in curve if r >= RECOVERED * level), None)
    return {"pre_level": level, "recovery_events": back, "curve": curve}


def run_scenario(world: DriftWorld, bundle: ModelBundle, scenario: Scenario, size: int) -> list:
    """Both variants of one scenario on the same stream; rows for drift.json."""
    stream = world.stream(scenario, size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, adaptive in (("adaptive", True), ("static", False)):
            start = time.perf_counter()
            res = asyncio.run(_replay(bundle, stream, adaptive, Path(tmp)))
            hits = res["hits"]
            curve = _curve(hits)
            row = {
                "scenario": scenario.value,
                "variant": variant,
                "prequential_recall@10": round(float(np.mean([h for _, _, h in hits])), 4),
                "evaluated_events": len(hits),
                "stream_events": len(stream.events),
                "drift_onset": stream.onset if stream.onset < len(stream.events) else None,
                "detections": res["detections"],
                "false_alarms": (
                    sum(res["detections"].values()) if scenario is Scenario.NONE else 0
                ),
                "projection_updates": res["projection_updates"],
                "seconds": round(time.perf_counter() - start, 1),
            }
            if scenario is Scenario.USER_SWITCH:
                u = _user_recovery(stream, hits)
                row |= {
                    "pre_drift_recall@10": round(u["pre_level"], 4),
                    "recovery_events": u["recovery_events"],
                    "recovery_unit": "the user's own events since their switch",
                    "curve": [(g, round(r, 4)) for g, r in u["curve"]],
                }
            else:
                level, back = _recovery(curve, stream.onset)
                row |= {
                    "pre_drift_recall@10": round(level, 4),
                    "recovery_events": back,
                    "recovery_unit": "stream events since the drift onset",
                    "curve": [(e, round(r, 4)) for e, r in curve],
                }
            rows.append(row)
            typer.echo(
                f"{scenario.value:16s} {variant:8s} R@10 {row['prequential_recall@10']:.4f} "
                f"recovery {row['recovery_events']} detections {row['detections']}"
            )
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    """Recall over time, one panel per scenario, adaptive against static."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.4))
    for ax, name in zip(np.atleast_1d(axes), scenarios, strict=True):
        for r in (r for r in rows if r["scenario"] == name):
            xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
            ax.plot(xs, ys, label=f"{r['variant']} ({r['prequential_recall@10']:.3f})")
        onset = next(r["drift_onset"] for r in rows if r["scenario"] == name)
        if onset is not None and name != Scenario.USER_SWITCH:
            ax.axvline(onset, color="grey", linestyle=":", label="drift onset")
        if name == Scenario.USER_SWITCH:
            ax.axvline(0, color="grey", linestyle=":", label="switch")
            ax.set_xlabel("user's events since their switch")
        else:
            ax.set_xlabel("stream events")
        ax.set_title(name)
        ax.set_ylabel("prequential Recall@10")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.callback(invoke_without_command=True)
def run(
    size: Annotated[
        int, typer.Option(envvar="XREC_DRIFT_EVENTS", help="events per scenario stream")
    ] = 6_000,
    seed: Annotated[int, typer.Option(envvar="XREC_DRIFT_SEED", help="world seed")] = 0,
    scenarios: Annotated[
        list[Scenario] | None, typer.Option(help="scenarios to run (default: all)")
    ] = None,
    out: Annotated[
        Path, typer.Option(envvar="XREC_DRIFT_OUT", help="results JSON (a PNG is written beside)")
    ] = Path("bench/results/drift.json"),
) -> None:
    """Run every drift scenario, adaptive and static, and write drift.json and drift.png."""
    world = DriftWorld(seed=seed)
    bundle = fit_world_bundle(world)
    rows = []
    for scenario in scenarios or list(Scenario):
        rows += run_scenario(DriftWorld(seed=seed), bundle, scenario, size)
    summary = _summary(rows)
    doc = {
        "benchmark": "drift",
        "date": now_iso(),
        "command": command_line(),
        "machine": machine(),
        "data": "synthetic (synth.drift): books -> video, "
        f"{world.topics} topics x {world.items_per_topic} items per domain",
        "summary": summary,
        "rows": rows,
    }
    write_json(out, doc)
    plot(rows, out.with_suffix(".png"))
    typer.echo(json.dumps(summary, indent=1))


def _summary(rows: list[dict]) -> dict:
    """Per scenario: recovery speed-up, recall ratio, false alarms (the issue's goals)."""
    out = {}
    for name in dict.fromkeys(r["scenario"] for r in rows):
        a = next(r for r in rows if r["scenario"] == name and r["variant"] == "adaptive")
        s = next(r for r in rows if r["scenario"] == name and r["variant"] == "static")
        ra, rs = a["recovery_events"], s["recovery_events"]
        out[name] = {
            "recovery_adaptive": ra,
            "recovery_static": rs if rs is not None else "not recovered",
            "recovery_speedup": (
                None if ra is None or rs is None or ra == 0 else round(rs / ra, 2)
            ),
            "recall_ratio": round(a["prequential_recall@10"] / s["prequential_recall@10"], 4)
            if s["prequential_recall@10"]
            else None,
            "false_alarms": a["false_alarms"],
        }
    return out
