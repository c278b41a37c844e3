"""Drift benchmark: every scenario, adaptive and static, on synthetic and real streams.

Synthetic streams come from :mod:`synth.drift` (a topic world whose offline bundle is fitted
here); real streams from :mod:`synth.drift_real` on the Food -> Kitchen data (bundle fitted on
train, held-out users streamed with permuted cross-domain links). Each stream runs through the
worker's processor twice (:mod:`bench.drift_replay`); results go to ``drift.json`` and a PNG of
recall over time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bench.drift_data import food_kitchen
from bench.drift_replay import run_scenario
from bench.report import command_line, machine, now_iso, write_json
from inference.bundle import ModelBundle
from inference.drift import DriftParams
from inference.errors import ConfigError
from inference.fit import CollabParams, FitParams, ItemCatalogue, fit_bundle
from synth.drift import SWITCH_BEFORE, SWITCH_TAIL, DriftWorld, Scenario

REAL_BIN = 1000  # real recall is ~0.05: bins this large keep a bin's 95% interval near +-0.014


class Data(StrEnum):
    """Which streams to run."""

    SYNTHETIC = "synthetic"
    FOOD_KITCHEN = "food-kitchen"


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


def plot(rows: list[dict], path: Path) -> Path:
    """Recall over time: a row of panels per data set, one panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = list(dict.fromkeys(r["data"] for r in rows))
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    fig, axes = plt.subplots(
        len(datas), len(scenarios), figsize=(4.2 * len(scenarios), 3.4 * len(datas)), squeeze=False
    )
    for row_axes, data in zip(axes, datas, strict=True):
        for ax, name in zip(row_axes, scenarios, strict=True):
            mine = [r for r in rows if r["data"] == data and r["scenario"] == name]
            for r in mine:
                xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
                ax.plot(
                    xs, ys, marker=".", label=f"{r['variant']} ({r['prequential_recall@10']:.3f})"
                )
            if name == Scenario.USER_SWITCH:
                ax.axvline(0, color="grey", linestyle=":", label="switch")
                ax.set_xlabel("user's events in the domain since their switch")
            else:
                onset = mine[0]["drift_onset"] if mine else None
                if onset is not None:
                    ax.axvline(onset, color="grey", linestyle=":", label="drift onset")
                ax.set_xlabel("stream events")
            ax.set_title(f"{data}: {name}", fontsize=9)
            ax.set_ylabel("prequential Recall@10")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def synthetic_rows(
    size: int, seed: int, scenarios: list[Scenario], drift: DriftParams | None = None
) -> tuple[list[dict], str]:
    """Every scenario on the synthetic topic world."""
    world = DriftWorld(seed=seed)
    bundle = fit_world_bundle(world)
    rows = []
    for scenario in scenarios:
        rows += run_scenario(bundle, DriftWorld(seed=seed).stream(scenario, size), drift=drift)
    return rows, (
        f"synthetic (synth.drift): books -> video, {world.topics} topics x "
        f"{world.items_per_topic} items per domain, {size} events per stream "
        f"(user_switch: {size // 60} users with {SWITCH_BEFORE} events before their switch "
        f"and {SWITCH_TAIL} after)"
    )


def real_rows(
    data: Path | None, seed: int, scenarios: list[Scenario], drift: DriftParams | None = None
) -> tuple[list[dict], str]:
    """Every scenario on the Food -> Kitchen held-out users (skipped without the dataset)."""
    world, bundle = food_kitchen(data, seed)
    rows = []
    for scenario in scenarios:
        stream = world.stream(scenario)
        rows += run_scenario(bundle, stream, REAL_BIN, Data.FOOD_KITCHEN.value, drift)
    return rows, (
        f"food-kitchen (synth.drift_real): {len(world.sources)} held-out valid+test users, "
        f"{world.groups} kitchen-taste groups, bundle fitted on train; kitchen events scored"
    )


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


@app.callback(invoke_without_command=True)
def run(
    size: Annotated[
        int,
        typer.Option(
            envvar="XREC_DRIFT_EVENTS",
            help=f"events per synthetic stream (user_switch: size/60 users, "
            f"{SWITCH_BEFORE + SWITCH_TAIL} events each)",
        ),
    ] = 6_000,
    seed: Annotated[int, typer.Option(envvar="XREC_DRIFT_SEED", help="world seed")] = 0,
    scenarios: Annotated[
        list[Scenario] | None,
        typer.Option(envvar="XREC_DRIFT_SCENARIOS", help="scenarios to run (default: all)"),
    ] = None,
    datas: Annotated[
        list[Data] | None,
        typer.Option("--data", envvar="XREC_DRIFT_DATA", help="streams to run (default: all)"),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(envvar="XREC_DATA_DIR", help="Food/Kitchen dataset folder (default: shared)"),
    ] = None,
    out: Annotated[
        Path, typer.Option(envvar="XREC_DRIFT_OUT", help="results JSON (a PNG is written beside)")
    ] = Path("bench/results/drift.json"),
    user_delta: Annotated[
        float | None,
        typer.Option(envvar="XREC_DRIFT_USER_DELTA", help="user detector's tolerated rise"),
    ] = None,
    user_threshold: Annotated[
        float | None,
        typer.Option(envvar="XREC_DRIFT_USER_THRESHOLD", help="user detector's evidence"),
    ] = None,
    user_confirm: Annotated[
        bool,
        typer.Option(
            envvar="XREC_DRIFT_USER_CONFIRM",
            help="user detections wait for a confirming event (the worker's default)",
        ),
    ] = True,
    user_coherence: Annotated[
        float | None,
        typer.Option(
            envvar="XREC_DRIFT_USER_COHERENCE",
            help="how much more the confirming event must agree with short- than long-term "
            "interest (-2 turns the check off)",
        ),
    ] = None,
    user_min_divergence: Annotated[
        float | None,
        typer.Option(
            envvar="XREC_DRIFT_USER_MIN_DIVERGENCE",
            help="divergence a confirming event must reach (0 turns the floor off)",
        ),
    ] = None,
    online_mix: Annotated[
        bool,
        typer.Option(
            envvar="XREC_DRIFT_ONLINE_MIX",
            help="learn the queries' short-term weight online, which also splits lists (the "
            "worker's default); --no-online-mix keeps the fitted weight in the adaptive variant",
        ),
    ] = True,
) -> None:
    """Run every drift scenario, adaptive and static, and write drift.json and drift.png.

    ``--user-delta`` / ``--user-threshold`` / ``--no-user-confirm`` / ``--user-coherence`` /
    ``--user-min-divergence`` override the worker's user detector (Page-Hinkley) in the
    adaptive variant, to measure its trade-off between early detection and false alarms;
    ``--no-online-mix`` leaves the learned short-term weight out of it.
    """
    chosen = scenarios or list(Scenario)
    drift = DriftParams(user_confirm=user_confirm, online_mix=online_mix)
    if user_coherence is not None:
        drift = replace(drift, user_coherence=user_coherence)
    if user_min_divergence is not None:
        drift = replace(drift, user_min_divergence=user_min_divergence)
    if user_delta is not None or user_threshold is not None:
        ud = drift.user_detector
        detector = replace(
            ud,
            delta=ud.delta if user_delta is None else user_delta,
            threshold=ud.threshold if user_threshold is None else user_threshold,
        )
        drift = replace(drift, user_detector=detector)
    rows, described = [], []
    for data in datas or list(Data):
        if data is Data.SYNTHETIC:
            more, text = synthetic_rows(size, seed, chosen, drift)
        else:
            try:
                more, text = real_rows(dataset, seed, chosen, drift)
            except ConfigError as exc:
                if datas:  # asked for by name: its absence is an error
                    raise
                typer.echo(f"skipping the food-kitchen streams: {exc}")
                continue
        rows += more
        described.append(text)
    summary = _summary(rows)
    doc = {
        "benchmark": "drift",
        "date": now_iso(),
        "command": command_line(),
        "machine": machine(),
        "data": described,
        "user_detector": {
            **asdict(drift.user_detector),
            "confirm": drift.user_confirm,
            "coherence": drift.user_coherence,
            "min_divergence": drift.user_min_divergence,
        },
        "online_short_weight": {
            "learned": drift.online_mix,
            "forget": drift.mix_forget,
            "prior_events": drift.mix_prior_events,
            "max": drift.mix_max,
        },
        "summary": summary,
        "rows": rows,
    }
    write_json(out, doc)
    plot(rows, out.with_suffix(".png"))
    typer.echo(json.dumps(summary, indent=1))


def _summary(rows: list[dict]) -> dict:
    """Per data set and scenario: recovery speed-up, recall ratio, false alarms (the goals)."""
    by = {(r["data"], r["scenario"], r["variant"]): r for r in rows}
    out = {}
    for data, name in dict.fromkeys((d, n) for d, n, _ in by):
        a, s = by[data, name, "adaptive"], by[data, name, "static"]
        out[f"{data}/{name}"] = {
            **_recoveries("recovery", a["recovery_events"], s["recovery_events"]),
            # reported on the time curves, not on user_switch's per-user curve
            **(
                _recoveries(
                    "recovery_smoothed",
                    a["recovery_events_smoothed"],
                    s["recovery_events_smoothed"],
                )
                if "recovery_events_smoothed" in a
                else {}
            ),
            "recall_ratio": round(a["prequential_recall@10"] / s["prequential_recall@10"], 4)
            if s["prequential_recall@10"]
            else None,
            "recall_after_drift": {
                v: r["recall_after_drift"] for v, r in (("adaptive", a), ("static", s))
            },
            "cold_start_recall_after_drift": {
                v: r["recall_cold_after_drift"] for v, r in (("adaptive", a), ("static", s))
            },
            "false_alarms": a["false_alarms"],
        }
        oracle = by.get((data, name, "oracle_reset"))
        if oracle is not None:
            out[f"{data}/{name}"]["recovery_oracle_reset"] = oracle["recovery_events"]
            out[f"{data}/{name}"]["switch_separability"] = a.get("switch_separability")
    return out


def _recoveries(prefix: str, ra: int | None, rs: int | None) -> dict:
    """Adaptive's and static's recovery (None: not within the stream) and the speed-up."""
    return {
        f"{prefix}_adaptive": ra if ra is not None else "not recovered",
        f"{prefix}_static": rs if rs is not None else "not recovered",
        f"{prefix}_speedup": None if ra is None or rs is None or ra == 0 else round(rs / ra, 2),
    }
