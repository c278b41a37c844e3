"""Prequential replay of a drift stream through the worker's own processor, adaptive vs static.

The same stream runs twice in the same process, through
:class:`streams.behaviour.BehaviourProcessor` (the worker's batch code: state updates, drift
detection, online projections, queries) with a real Qdrant Edge store ranking the items:
once with adaptation on (``adaptive``) and once serving the offline bundle as fitted
(``static``). Prequential Recall@10: an event counts as a hit when its item was in the last
recommendation published for that user and domain before it (recommend, then learn); items a
user already consumed are not evaluated (they are never recommended). When the stream names a
scored domain, only that domain's events are evaluated (the drift acts there alone).

Reported per variant: prequential Recall@10 over the stream, recall over time, recall before
and after the drift with 95% intervals, the number of events until recall recovers to 90% of
its pre-drift level (first crossing of single bins, and of three-bin means), and the drift
detections (on the ``none`` stream all are false alarms; on ``user_switch`` those on a user's
history before their switch are counted apart).
``user_switch`` adds ``oracle_reset``: the static variant with each user's state dropped at
the very event of their switch (which only the scenario knows), the fastest any forgetting
can follow a switch; a switched user then recovers only as fast as a new user's history grows.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import typer

from bench.drift_alarms import (
    RecordingModel,
    alarms_before_switch,
    describe_user_alarms,
    divergence_at_detections,
)
from bench.drift_separability import separability
from inference.bundle import ModelBundle
from inference.bundle_model import BundleModel
from inference.drift import DriftParams
from inference.interest import InterestParams
from store.base import ItemPoint
from store.edge import EdgeStore
from store.settings import QdrantSettings
from streams.behaviour import BehaviourProcessor
from streams.deadletter import SourceMessage
from streams.metrics import REGISTRY
from streams.resilience import store_caller
from streams.settings import WorkerSettings
from synth.drift import DriftStream, Scenario

K = 10
BIN = 150  # evaluated events per point of the recall-over-time curve
RECOVERED = 0.9  # share of the pre-drift recall that counts as recovered
# Bins per point of the smoothed curve: one 150-event bin at recall ~0.55 carries a 95% interval
# of about +-0.08, so a first crossing of single bins reads noise as recovery (seeds 1 and 2
# of the synthetic world: static "recovered" at the same bin as adaptive, then fell back).
SMOOTH_BINS = 3
WEIGHT_EVERY = 500  # stream events between two samples of the learned short-term weight


def _no_text(texts: list[str]) -> np.ndarray:
    raise AssertionError("drift scenarios carry no free text")  # never called: item events only


def one_per_user_batches(events: list[dict], size: int = 64) -> list[list[dict]]:
    """Consecutive events, at most one per user per batch (one recommendation per event)."""
    out, cur, users = [], [], set()
    for e in events:
        if e["user_id"] in users or len(cur) == size:
            out.append(cur)
            cur, users = [], set()
        cur.append(e)
        users.add(e["user_id"])
    return [*out, cur] if cur else out


def processor_for(
    model: BundleModel, path: Path, top_k: int = K, **worker: Any
) -> tuple[BehaviourProcessor, EdgeStore, ThreadPoolExecutor]:
    """The worker's batch processor serving ``model``, over a new Qdrant Edge store at ``path``
    that holds the bundle's items (no rate limit; ``worker``: more ``WorkerSettings``). Close
    the store and shut the pool down."""
    store = EdgeStore(QdrantSettings(path=path))
    store.ensure_collections(model.stored_dim)
    store.upsert_items([ItemPoint(i, d, v) for i, d, v in model.bootstrap_points()])
    pool = ThreadPoolExecutor(1)
    settings = WorkerSettings(
        top_k=top_k, target_domains=list(model.bundle.domains), user_rate_per_s=0, **worker
    )
    proc = BehaviourProcessor(
        settings=settings,
        params=model.interest_params(InterestParams()),
        model=model,
        store=store,
        call_store=store_caller(store, pool, 1.0),
        encode=_no_text,
        topic="behaviour",
    )
    return proc, store, pool


async def _replay(
    bundle: ModelBundle,
    stream: DriftStream,
    adaptive: bool,
    root: Path,
    reset: bool = False,
    drift: DriftParams | None = None,
) -> dict:
    """One variant over the stream; ``reset`` drops each user's state at their switch.

    ``drift``: the adaptive variant's parameters (default: the worker's); static turns them off.
    """
    params = replace(drift or DriftParams(), adaptive=adaptive)
    model = RecordingModel(bundle, drift=params)
    proc, store, pool = processor_for(model, root / f"{stream.scenario}-{adaptive}-{reset}")
    table: dict[str, bytes] = {}
    recs: dict[tuple[str, str], list[str]] = {}
    consumed: dict[tuple[str, str], set[str]] = {}
    hits: list[tuple[int, str, bool]] = []  # (stream index, user, hit) of evaluated events
    cold: set[int] = set()  # stream indices of evaluated cold-start events
    before = {lv: _detections(lv) for lv in ("user", "population")}
    offset = 0
    weights: list[tuple[int, dict[str, float]]] = []  # the learned short-term weight over time
    split = published = 0  # recommendations whose list the short-term query shared, and all
    for batch in one_per_user_batches(stream.events):
        msgs = []
        for e in batch:
            key = (e["user_id"], e["domain"])
            seen = consumed.setdefault(key, set())
            scored = stream.scored_domain in (None, e["domain"])
            if scored and key in recs and e["item_id"] not in seen:
                hits.append((offset, e["user_id"], e["item_id"] in recs[key]))
                if not seen:  # the user's first event in this domain: migration alone served it
                    cold.add(offset)
            seen.add(e["item_id"])
            if reset and stream.switch_at.get(e["user_id"]) == offset:
                table.pop(e["user_id"], None)  # the oracle knows the switch: start afresh
            raw = json.dumps(e).encode()
            msgs.append(SourceMessage("behaviour", 0, offset, e["user_id"].encode(), raw, 0.0))
            offset += 1
        out = await proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v))
        assert not out.dead_letters, out.dead_letters[:3]
        for r in out.recommendations:
            recs[r.user_id, r.domain] = [i.item_id for i in r.items]
            split += r.short_term_items > 0
        published += len(out.recommendations)
        if not weights or offset - weights[-1][0] >= WEIGHT_EVERY:
            now = {d: round(model.short_weight_of(d), 3) for d in bundle.domains}
            weights.append((offset, now))
    pool.shutdown()
    store.close()
    detections = {lv: int(_detections(lv) - before[lv]) for lv in ("user", "population")}
    return {
        "hits": hits,
        "cold": cold,
        "detections": detections,
        "user_alarms": model.user_alarms,
        "population_alarms": model.population_alarms,
        "projection_updates": model.online.updates,
        "short_weight": weights,
        "lists_split": round(split / published, 4) if published else 0.0,
    }


def _detections(level: str) -> float:
    """The worker's drift counter (this process's registry) for ``level``."""
    value = REGISTRY.get_sample_value("xrec_drift_detections_total", {"level": level})
    return value or 0.0


def _curve(hits: list[tuple[int, str, bool]], size: int = BIN) -> list[tuple[int, float]]:
    """(stream index at the end of the bin, recall) per ``size`` evaluated events."""
    return [
        (hits[k + size - 1][0], float(np.mean([h for _, _, h in hits[k : k + size]])))
        for k in range(0, len(hits) - size + 1, size)
    ]


def _recovery(curve: list[tuple[int, float]], onset: int) -> tuple[float, int | None]:
    """Pre-drift recall and events after the onset until recall is back at 90% of it."""
    pre = [r for end, r in curve if end < onset][len(curve) // 10 :] or [r for _, r in curve]
    level = float(np.mean(pre))
    return level, _back_at(curve, onset, level)


def _smoothed_recovery(
    curve: list[tuple[int, float]], onset: int, level: float, bins: int = SMOOTH_BINS
) -> int | None:
    """The same, read on the mean of the last ``bins`` bins at each point."""
    rs = [r for _, r in curve]
    smooth = [float(np.mean(rs[max(0, i - bins + 1) : i + 1])) for i in range(len(rs))]
    return _back_at([(end, r) for (end, _), r in zip(curve, smooth, strict=True)], onset, level)


def _back_at(curve: list[tuple[int, float]], onset: int, level: float) -> int | None:
    """Events after the onset until the curve, once below 90% of ``level``, is back at it
    (0: it never fell below; None: not within the stream)."""
    after = [(end, r) for end, r in curve if end >= onset]
    dropped = next((i for i, (_, r) in enumerate(after) if r < RECOVERED * level), None)
    if dropped is None:
        return 0
    back = next((end for end, r in after[dropped:] if r >= RECOVERED * level), None)
    return None if back is None else back - onset


def _user_recovery(stream: DriftStream, hits: list[tuple[int, str, bool]]) -> dict:
    """user_switch: recall by the number of a user's own events in the domain since the switch.

    Counted per domain because users alternate domains whose recall levels differ (real Food
    recall is several times Kitchen's): a gap counted over both domains would alternate
    between them and measure the domain, not the recovery.
    """
    gap: dict[int, int] = {}  # stream index after a switch -> own events in its domain since
    since: dict[tuple[str, str], int] = {}
    for k, e in enumerate(stream.events):
        at = stream.switch_at.get(e["user_id"])
        if at is not None and k >= at:
            key = (e["user_id"], e["domain"])
            gap[k] = since.get(key, 0)
            since[key] = gap[k] + 1
    pre: list[bool] = []
    per_gap: dict[int, list[bool]] = {}
    for idx, user, hit in hits:
        at = stream.switch_at.get(user)
        if at is None:
            continue
        if idx < at:
            pre.append(hit)
        else:
            per_gap.setdefault(gap[idx], []).append(hit)
    level = float(np.mean(pre)) if pre else 0.0
    curve = [(g, float(np.mean(per_gap[g]))) for g in sorted(per_gap)]
    back = first_recovered(curve, level)
    # hits and evaluated events behind each number, so runs can be pooled exactly
    counts = {
        "pre": [int(sum(pre)), len(pre)],
        "curve": [[g, int(sum(per_gap[g])), len(per_gap[g])] for g in sorted(per_gap)],
    }
    return {"pre_level": level, "recovery_events": back, "curve": curve, "counts": counts}


def first_recovered(curve: Iterable[tuple[int, float]], level: float) -> int | None:
    """user_switch: the first point of the per-user curve at 90% of the pre-switch ``level``
    (None: not within the stream)."""
    return next((g for g, r in curve if r >= RECOVERED * level), None)


def _wilson(hits: list[bool]) -> list[float]:
    """Recall with its 95% Wilson interval: [recall, low, high] (how much noise a bin holds)."""
    return wilson_from_counts(int(sum(hits)), len(hits))


def wilson_from_counts(hits: int, n: int) -> list[float]:
    """[recall, low, high] of ``hits`` in ``n`` evaluated events (95% Wilson interval)."""
    if n == 0:
        return []
    p, z = hits / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(p, 4), round(centre - half, 4), round(centre + half, 4)]


def _before_after(stream: DriftStream, hits: list[tuple[int, str, bool]], cold: set[int]) -> dict:
    """Recall (95% interval) before and after the drift: all evaluated events, and cold starts.

    Cold starts (a user's first event in the domain) are served by migration alone, so they
    show what a changed cross-domain relation does without the user's own history to hide it.
    """

    def after(i: int, user: str) -> bool:
        if stream.switch_at:
            return stream.switch_at.get(user) is not None and i >= stream.switch_at[user]
        return i >= stream.onset

    out = {}
    for name, keep in (("", lambda i: True), ("cold_", lambda i: i in cold)):
        for when, side in (("before", False), ("after", True)):
            picked = [h for i, u, h in hits if keep(i) and after(i, u) is side]
            out[f"recall_{name}{when}_drift"] = _wilson(picked)
    return out


def run_scenario(
    bundle: ModelBundle,
    stream: DriftStream,
    bin_size: int = BIN,
    data: str = "synthetic",
    drift: DriftParams | None = None,
) -> list:
    """Both variants of one scenario's stream (and the oracle for user_switch); drift.json rows."""
    scenario = stream.scenario
    rows = []
    variants = [("adaptive", True, False), ("static", False, False)]
    evidence = None
    if scenario is Scenario.USER_SWITCH:
        # the bound on forgetting: static, with each user's state dropped at their switch
        variants.append(("oracle_reset", False, True))
        evidence = separability(stream, bundle.input_vector, bundle.params.half_life_events)
    with tempfile.TemporaryDirectory() as tmp:
        for variant, adaptive, reset in variants:
            start = time.perf_counter()
            res = asyncio.run(_replay(bundle, stream, adaptive, Path(tmp), reset, drift))
            hits = res["hits"]
            curve = _curve(hits, bin_size)
            row = {
                "data": data,
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
                # (stream index, per domain): the queries' short-term weight learned online
                "short_weight_over_time": res["short_weight"],
                # share of the published lists holding items of the short-term interest's query
                "lists_split": res["lists_split"],
                "seconds": round(time.perf_counter() - start, 1),
                "scored_domain": stream.scored_domain or "all",
                "bin_events": bin_size,
                **_before_after(stream, hits, res["cold"]),
                "population_alarms": res["population_alarms"],
            }
            if scenario is Scenario.NONE:
                row["user_alarms"] = describe_user_alarms(stream, res["user_alarms"])
            if scenario is Scenario.USER_SWITCH:
                u = _user_recovery(stream, hits)
                row |= {
                    "pre_drift_recall@10": round(u["pre_level"], 4),
                    "recovery_events": u["recovery_events"],
                    "recovery_unit": "the user's own events in the domain since their switch",
                    "curve": [(g, round(r, 4)) for g, r in u["curve"]],
                    "curve_hits": u["counts"],
                    "switch_separability": evidence,
                    **alarms_before_switch(stream, [a.event for a in res["user_alarms"]]),
                    "divergence_at_user_detections": divergence_at_detections(
                        stream, res["user_alarms"]
                    ),
                }
            else:
                level, back = _recovery(curve, stream.onset)
                row |= {
                    "pre_drift_recall@10": round(level, 4),
                    "recovery_events": back,
                    "recovery_events_smoothed": _smoothed_recovery(curve, stream.onset, level),
                    "smoothed_over_bins": SMOOTH_BINS,
                    "recovery_unit": "stream events since the drift onset",
                    "curve": [(e, round(r, 4)) for e, r in curve],
                }
            rows.append(row)
            typer.echo(
                f"{data:12s} {scenario.value:16s} {variant:8s} "
                f"R@10 {row['prequential_recall@10']:.4f} "
                f"recovery {row['recovery_events']} detections {row['detections']}"
            )
    return rows
