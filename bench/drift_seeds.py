"""user_switch over several seeds, pooled: recovery read on more switches than one stream holds.

One ``user_switch`` stream has few switching users (128 pairs of real users; 100 synthetic), so
each point of its per-user recovery curve pools ~256 events, and on the real data the 90% line
sits inside that noise: single streams' recovery counts swing by several events from seed to
seed. Each seed draws other pairs and orders (on the real data: other partners and taste
groups over the same held-out users), and every seed's stream runs through the same replay as
``xrec bench-drift`` (:func:`bench.drift_replay.run_scenario`: adaptive, static and the
oracle). Reported per seed (recovery, pre-switch recall) and pooled: the hits and evaluated
events of every seed summed per point of the curve, the pre-switch level likewise, each pooled
point with its 95% interval, and the recovery read on the pooled curve by the same rule
(the first point at 90% of the pre-switch level).

``python -m bench.drift_seeds --data food-kitchen --seeds 0 1 2 3 4 5 6 7 --out
bench/results/drift-seeds-food-kitchen.json`` (likewise ``--data synthetic``)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.drift_bench import REAL_BIN, synthetic_rows
from bench.drift_replay import RECOVERED, first_recovered, run_scenario, wilson_from_counts
from bench.report import emit_probe
from synth.drift import Scenario

VARIANTS = ("adaptive", "static", "oracle_reset")


def seed_rows(data: str, seeds: list[int], size: int = 6_000) -> list[dict]:
    """The user_switch rows of every seed (the real bundle is fitted once: it takes no seed)."""
    rows: list[dict] = []
    if data == "synthetic":  # as `xrec bench-drift --data synthetic --seed N` runs it
        for seed in seeds:
            more, _ = synthetic_rows(size, seed, [Scenario.USER_SWITCH])
            rows += [r | {"seed": seed} for r in more]
        return rows
    from bench.drift_data import linked_world, train_bundle

    dataset, bundle = train_bundle(None)
    for seed in seeds:
        stream = linked_world(dataset, bundle, seed).stream(Scenario.USER_SWITCH)
        rows += [r | {"seed": seed} for r in run_scenario(bundle, stream, REAL_BIN, data)]
    return rows


def pooled(rows: list[dict]) -> dict:
    """One variant's rows of several seeds: summed hits per point, its recovery and level."""
    pre_hits = sum(r["curve_hits"]["pre"][0] for r in rows)
    pre_n = sum(r["curve_hits"]["pre"][1] for r in rows)
    per_point: dict[int, list[int]] = {}
    for r in rows:
        for g, hits, n in r["curve_hits"]["curve"]:
            acc = per_point.setdefault(g, [0, 0])
            acc[0] += hits
            acc[1] += n
    level = pre_hits / pre_n if pre_n else 0.0
    points = sorted(per_point)
    curve = [[g, *wilson_from_counts(*per_point[g]), per_point[g][1]] for g in points]
    return {
        "pre_drift_recall@10": wilson_from_counts(pre_hits, pre_n),
        "line": round(RECOVERED * level, 4),
        # the rule of a single stream, on the unrounded pooled recall
        "recovery_events": first_recovered(
            ((g, per_point[g][0] / per_point[g][1]) for g in points), level
        ),
        "curve": curve,  # [events since the switch, recall, 95% low, high, evaluated events]
    }


def summarise(rows: list[dict]) -> dict:
    """Per seed and pooled, for every variant present; the pooled speed-up over static."""
    seeds = sorted({r["seed"] for r in rows})
    per_seed = [
        {
            "seed": s,
            **{
                r["variant"]: {
                    "recovery_events": r["recovery_events"],
                    "pre_drift_recall@10": r["pre_drift_recall@10"],
                    "prequential_recall@10": r["prequential_recall@10"],
                }
                for r in rows
                if r["seed"] == s
            },
        }
        for s in seeds
    ]
    pool = {
        v: pooled([r for r in rows if r["variant"] == v])
        for v in VARIANTS
        if any(r["variant"] == v for r in rows)
    }
    a, s = (pool.get(v, {}).get("recovery_events") for v in ("adaptive", "static"))
    return {
        "seeds": seeds,
        "switching_users_per_seed": rows[0]["switching_users"] if rows else 0,
        "per_seed": per_seed,
        "pooled": pool,
        "pooled_speedup": round(s / a, 2) if a and s is not None else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("synthetic", "food-kitchen"), default="food-kitchen")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--size", type=int, default=6_000, help="events per synthetic stream")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    results = summarise(seed_rows(a.data, a.seeds, a.size))
    size = f" --size {a.size}" if a.data == "synthetic" else ""
    command = "python -m bench.drift_seeds --data {} --seeds {}{}".format(
        a.data, " ".join(map(str, a.seeds)), size
    )
    return emit_probe("drift_seeds", command, {"data": a.data, **results}, a.out)


if __name__ == "__main__":
    raise SystemExit(main())
