"""Diversity probe: what the diversity step (``WORKER_DIVERSITY``) costs in recall and buys in
variety, through the worker's batch processor and a real Qdrant Edge store.

The no-drift streams of ``xrec bench-drift`` (the synthetic topic world; the Food -> Kitchen
held-out users, with the bundle fitted on train) are replayed once per diversity level, in the
same run. Per level: prequential Recall@10 (an event is a hit when its item, one the user had
not consumed in that domain, was in the last list published for that user and domain before
it), the mean cosine between the items of a published list (on the model's item input vectors,
as the step reads them), the share of the scored domain's catalogue that any list showed, the
replay's time per event, and (synthetic) the topics per list.

``python -m bench.diversity_probe --out bench/results/diversity.json``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.drift_bench import fit_world_bundle
from bench.drift_replay import K, one_per_user_batches, processor_for
from bench.report import emit_probe
from inference.bundle import ModelBundle
from inference.bundle_model import BundleModel
from inference.diversity import list_similarity
from streams.deadletter import SourceMessage
from synth.drift import DriftStream, DriftWorld, Scenario

LEVELS = (0.0, 0.1, 0.2, 0.3, 0.5)


async def _replay(bundle: ModelBundle, stream: DriftStream, diversity: float, root: Path) -> dict:
    model = BundleModel(bundle)
    proc, store, pool = processor_for(model, root / f"d{diversity}", top_k=K, diversity=diversity)
    table: dict[str, bytes] = {}
    last: dict[tuple[str, str], list[str]] = {}
    consumed: dict[tuple[str, str], set[str]] = {}
    hits: list[bool] = []
    lists: list[list[str]] = []
    offset = 0
    start = time.perf_counter()
    try:
        for batch in one_per_user_batches(stream.events):
            msgs = []
            for e in batch:
                key = (e["user_id"], e["domain"])
                seen = consumed.setdefault(key, set())
                # as xrec bench-drift scores: items the user had not consumed there before
                scored = stream.scored_domain in (None, e["domain"]) and e["item_id"] not in seen
                if scored and key in last:
                    hits.append(e["item_id"] in last[key])
                seen.add(e["item_id"])
                raw = json.dumps(e).encode()
                msgs.append(SourceMessage("behaviour", 0, offset, key[0].encode(), raw, 0.0))
                offset += 1
            out = await proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v))
            assert not out.dead_letters, out.dead_letters[:3]
            for r in out.recommendations:
                last[r.user_id, r.domain] = [i.item_id for i in r.items]
                if stream.scored_domain in (None, r.domain):
                    lists.append(last[r.user_id, r.domain])
    finally:
        pool.shutdown()
        store.close()
    seconds = time.perf_counter() - start
    inputs = {i: model.bundle.inputs[k] for k, i in enumerate(model.bundle.item_ids)}
    cosines = [list_similarity(np.stack([inputs[i] for i in lst])) for lst in lists if lst]
    scored = stream.scored_domain
    catalogue = sum(1 for d in model.bundle.item_domains if scored in (None, d))
    row = {
        "diversity": diversity,
        "prequential_recall@10": round(float(np.mean(hits)), 4),
        "scored_events": len(hits),
        "list_cosine_mean": round(float(np.mean(cosines)), 4),
        "catalogue_shown": round(len({i for lst in lists for i in lst}) / catalogue, 4),
        "lists": len(lists),
        "seconds": round(seconds, 1),
        "ms_per_event": round(1000 * seconds / len(stream.events), 3),
    }
    if all(i.count("-") == 2 for lst in lists[:50] for i in lst):  # synthetic: domain-topic-k
        row["topics_per_list"] = round(
            float(np.mean([len({i.split("-")[1] for i in lst}) for lst in lists if lst])), 2
        )
    return row


def probe(data: str, levels: tuple[float, ...], seed: int = 0) -> dict:
    """Every level on one data set's no-drift stream; rows with their ratio to level 0."""
    if data == "synthetic":
        world = DriftWorld(seed=seed)
        bundle, stream = fit_world_bundle(world), DriftWorld(seed=seed).stream(Scenario.NONE, 6000)
        described = "synthetic topic world (synth.drift), the 6,000-event no-drift stream"
    else:
        from bench.drift_data import food_kitchen

        world, bundle = food_kitchen(None, seed)
        stream = world.stream(Scenario.NONE)
        described = "Food -> Kitchen held-out users (bundle fitted on train), kitchen scored"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            rows.append(asyncio.run(_replay(bundle, stream, level, Path(tmp))))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["recall_vs_no_diversity"] = round(
            r["prequential_recall@10"] / base["prequential_recall@10"], 3
        )
    return {"data": described, "stream_events": len(stream.events), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("synthetic", "food-kitchen", "both"), default="both")
    ap.add_argument("--levels", type=float, nargs="+", default=list(LEVELS))
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    levels = tuple(a.levels)
    if levels[0] != 0.0:
        levels = (0.0, *levels)  # the baseline, measured in the same run
    chosen = ["synthetic", "food-kitchen"] if a.data == "both" else [a.data]
    if a.data == "both":
        from bench.transfer_data import resolve_data_dir
        from inference.errors import ConfigError

        try:
            resolve_data_dir()
        except ConfigError as exc:
            print(f"food-kitchen skipped: {exc}", flush=True)
            chosen.remove("food-kitchen")
    results = {name: probe(name, levels) for name in chosen}
    return emit_probe(
        "diversity_probe",
        f"python -m bench.diversity_probe --data {a.data} --levels "
        + " ".join(str(x) for x in levels),
        results,
        a.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
