"""The drift benchmark and the online projections on the synthetic drift world (real Edge store)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift_alarms import (
    UserAlarm,
    alarms_before_switch,
    describe_user_alarms,
    divergence_at_detections,
)
from bench.drift_bench import fit_world_bundle
from bench.drift_data import fit_train_bundle, linked_world
from bench.drift_replay import (
    _recovery,
    _smoothed_recovery,
    _user_recovery,
    run_scenario,
)
from inference.drift import DriftParams, PageHinkleyParams
from inference.interest import InterestParams, UserState, apply_event
from inference.online_projection import OnlineProjections
from synth.drift import SOURCE, TARGET, DriftStream, DriftWorld, Scenario, round_robin
from tests.fixtures.dataset import hashed_titles, needs_data, small_dataset


@pytest.fixture(scope="module")
def bundle():
    return fit_world_bundle(DriftWorld(seed=0))


def _state(bundle, items: list[str]) -> UserState:
    st = UserState()
    for k, item in enumerate(items):
        apply_event(
            st,
            event_id=f"e{k}",
            domain=item.split("-")[0],
            action="purchase",
            event_time=1.7e9 + k,
            vector=bundle.inputs[bundle.index_of(item)],
            item_id=item,
            rating=None,
            params=InterestParams(),
        )
    return st


def test_online_projections_restore_from_their_bytes_and_skip_folded_offsets(bundle) -> None:
    world = DriftWorld(seed=1)
    online = OnlineProjections(bundle, DriftParams())
    users = world.history(60, per_domain=4)
    for offset, seq in enumerate(users):
        online.observe(_state(bundle, seq), partition=0, offset=offset)
    assert online.version == 2 * len(users)  # both directions per event
    served = online.projection(SOURCE, TARGET)
    assert not np.allclose(served, bundle.projection(SOURCE, TARGET))

    again = OnlineProjections(bundle, DriftParams())
    again.restore(0, online.dumps(0))
    np.testing.assert_allclose(again.projection(SOURCE, TARGET), served, rtol=1e-5)
    assert again.version == online.version  # the version carries on across a restart
    assert not again.observe(_state(bundle, users[-1]), partition=0, offset=len(users) - 1)
    assert again.version == online.version and again.updates == 0  # a replay folds nothing


def test_statistics_of_another_bundle_are_not_restored(bundle) -> None:
    other = fit_world_bundle(DriftWorld(seed=5))
    online = OnlineProjections(other, DriftParams())
    for offset, seq in enumerate(DriftWorld(seed=5).history(40)):
        online.observe(_state(other, seq), 0, offset)
    fresh = OnlineProjections(bundle, DriftParams())
    fresh.restore(0, online.dumps(0))
    np.testing.assert_array_equal(
        fresh.projection(SOURCE, TARGET), bundle.projection(SOURCE, TARGET)
    )


@pytest.mark.slow
def test_adaptation_recovers_a_population_swap_and_stays_quiet_without_drift(bundle) -> None:
    swap = run_scenario(bundle, DriftWorld(seed=0).stream(Scenario.POPULATION_SWAP, 4000))
    adaptive, static = (next(r for r in swap if r["variant"] == v) for v in ("adaptive", "static"))
    assert adaptive["prequential_recall@10"] > static["prequential_recall@10"]
    assert adaptive["detections"]["population"] >= 1 and static["detections"] == {
        "user": 0,
        "population": 0,
    }
    assert adaptive["recovery_events_smoothed"] is not None
    quiet = run_scenario(bundle, DriftWorld(seed=0).stream(Scenario.NONE, 4000))
    assert all(r["false_alarms"] == 0 for r in quiet)


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_real_streams_run_both_variants_on_the_held_out_users() -> None:
    data = small_dataset(train=4000, held_out=100)
    bundle = fit_train_bundle(data, hashed_titles(data.catalogue.titles), "hashed-words")
    world = linked_world(data, bundle, seed=0, groups=3)
    stream = world.stream(Scenario.POPULATION_SWAP)
    assert 0 < stream.onset < len(stream.events)
    rows = run_scenario(bundle, stream, bin_size=50, data="food-kitchen")
    adaptive, static = (next(r for r in rows if r["variant"] == v) for v in ("adaptive", "static"))
    assert adaptive["data"] == "food-kitchen" and adaptive["scored_domain"] == "kitchen"
    kitchen = sum(e["domain"] == "kitchen" for e in stream.events)
    assert 0 < adaptive["evaluated_events"] == static["evaluated_events"] <= kitchen
    assert adaptive["projection_updates"] > 0 and static["projection_updates"] == 0
    for r in rows:
        recall, low, high = r["recall_after_drift"]
        assert 0 <= low <= recall <= high <= 1


def test_user_recovery_counts_the_users_events_in_each_domain() -> None:
    # one user alternating x / y, switching at stream index 2; y follows the switch at once,
    # x only from its third event after it: recovered at the third event of each domain
    events = [{"user_id": "a", "domain": "xy"[k % 2], "item_id": str(k)} for k in range(8)]
    stream = DriftStream(Scenario.USER_SWITCH, events, 2, {"a": 2})
    hits = [(0, "a", True), (1, "a", True), (2, "a", False), (3, "a", True)]
    hits += [(4, "a", False), (5, "a", True), (6, "a", True), (7, "a", True)]
    rec = _user_recovery(stream, hits)
    assert rec["curve"] == [(0, 0.5), (1, 0.5), (2, 1.0)]
    assert rec["recovery_events"] == 2  # counted over both domains mixed it would say 1
    # the counts behind the numbers, for pooling runs: [hits, events] before; [gap, hits, events]
    assert rec["counts"] == {"pre": [2, 2], "curve": [[0, 1, 2], [1, 1, 2], [2, 2, 2]]}


def test_one_lucky_bin_is_not_a_recovery_once_the_curve_is_smoothed() -> None:
    # level 0.5 (line 0.45); after the onset at 10 the recall drops to 0.3 with one noisy bin
    # at 0.46, then comes back for good from the bin ending at 90
    rs = [0.5] * 5 + [0.3, 0.3, 0.46, 0.3, 0.3, 0.5, 0.5, 0.5, 0.5]
    curve = [(10 * (k - 4), r) for k, r in enumerate(rs)]  # ends -40 .. 90; onset at 10
    level, first = _recovery(curve, onset=10)
    assert level == pytest.approx(0.5) and first == 20  # the single bin at 30
    # three-bin means from the bin ending at 10: .433 .367 .353 .353 .353 .367 .433, .5 at 80
    assert _smoothed_recovery(curve, onset=10, level=level) == 70
    assert _smoothed_recovery(curve[:10], onset=10, level=level) is None
    assert _smoothed_recovery([(e, 0.5) for e, _ in curve], onset=10, level=0.5) == 0


def test_alarms_before_a_users_switch_are_told_from_those_after() -> None:
    # a switches at stream index 2, b at 5; c never switches (not a switching user)
    users = "aabbabcc"
    events = [{"user_id": u, "domain": "x", "item_id": str(k)} for k, u in enumerate(users)]
    stream = DriftStream(Scenario.USER_SWITCH, events, 2, {"a": 2, "b": 5})
    out = alarms_before_switch(stream, alarms=[1, 3, 4, 5, 6])
    # before: 1 (a, before 2) and 3 (b, before 5); after: 4 (a), 5 (b); 6 is c's
    assert out == {
        "user_detections_before_switch": 2,
        "user_events_before_switch": 4,  # a's 0, 1 and b's 2, 3
        "users_alarmed_before_switch": 2,
        "switching_users": 2,
    }


def test_user_alarms_name_the_user_their_last_items_and_the_evidence() -> None:
    users = "aabbabcc"
    events = [{"user_id": u, "domain": "x", "item_id": f"i{k}"} for k, u in enumerate(users)]
    stream = DriftStream(Scenario.USER_SWITCH, events, 2, {"a": 2, "b": 5})
    alarms = [
        UserAlarm(1, "x", 0.3, None),
        UserAlarm(4, "x", 0.5, 0.21),
        UserAlarm(5, "x", 0.4, 0.1),
    ]
    first, second, _ = describe_user_alarms(stream, alarms)
    assert first == {
        "event": 1,
        "user": "a",
        "domain": "x",
        "divergence": 0.3,
        "coherence": None,
        "last_items": ["i0", "i1"],
        "user_events_in_domain": 2,
    }
    assert second["user"] == "a" and second["last_items"] == ["i0", "i1", "i4"]
    # after their switch: a's at 4 and b's at 5; the one at 1 came before a's switch
    assert divergence_at_detections(stream, alarms) == {
        "detections": 2,
        "min": 0.4,
        "p01": 0.401,
        "median": 0.45,
    }


@pytest.mark.slow
def test_user_switch_reports_the_oracle_reset_bound(bundle) -> None:
    rows = run_scenario(bundle, DriftWorld(seed=0).stream(Scenario.USER_SWITCH, 2400))
    by = {r["variant"]: r for r in rows}
    assert set(by) == {"adaptive", "static", "oracle_reset"}
    assert by["oracle_reset"]["detections"] == {"user": 0, "population": 0}
    assert by["adaptive"]["detections"]["user"] > 0
    # detections on the users' unswitched histories are counted apart (none for static)
    before = by["adaptive"]["user_detections_before_switch"]
    assert 0 <= before <= by["adaptive"]["detections"]["user"]
    assert by["static"]["user_detections_before_switch"] == 0
    assert by["adaptive"]["user_events_before_switch"] > 0
    # dropping the old taste at the switch beats keeping it (static), on the same stream
    assert by["oracle_reset"]["recall_after_drift"][0] > by["static"]["recall_after_drift"][0]
    # every user switches: through the worker's processor, queries learn to follow recent
    # behaviour (the weight starts as fitted, at 0); the static variant keeps the fitted one
    first, *_, last = by["adaptive"]["short_weight_over_time"]
    assert set(first[1].values()) == {0.0} and min(last[1].values()) > 0.15
    assert {w for _, ws in by["static"]["short_weight_over_time"] for w in ws.values()} == {0.0}
    # and that weight splits lists: as fitted, no list is
    assert by["adaptive"]["lists_split"] > 0.1 and by["static"]["lists_split"] == 0.0
    # synthetic topics are crisp: one event per domain already tells most switches apart
    evidence = by["adaptive"]["switch_separability"]
    assert [e["events_per_domain"] for e in evidence] == [1, 2]
    assert evidence[0]["auc"] > 0.9 and evidence[0]["switched_users"] > 0


def test_a_sensitive_user_detector_reaches_the_adaptive_variant_only(bundle) -> None:
    """``xrec bench-drift --user-delta/--user-threshold``: the trade-off the README reports
    (a detector that follows switches sooner also fires on the no-drift stream)."""
    detector = PageHinkleyParams(delta=0.02, threshold=0.25, min_instances=8)
    rows = run_scenario(
        bundle,
        DriftWorld(seed=0).stream(Scenario.NONE, 4000),
        drift=DriftParams(user_detector=detector),
    )
    by = {r["variant"]: r for r in rows}
    assert by["adaptive"]["detections"]["user"] > 0
    assert by["static"]["detections"] == {"user": 0, "population": 0}


# One user's 88 events fill no 150-event recall bin: the recall summary is empty (NaN).
@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_the_worker_hands_the_event_vector_to_the_user_detector(bundle) -> None:
    """Scattered off-topic purchases keep the divergence up; only the agreement check, which
    needs each event's vector from the processor, keeps them from being confirmed."""
    world = DriftWorld(seed=0)
    books = [world.items[SOURCE, 0][k % 5] for k in range(30)]
    books += [world.items[SOURCE, t][0] for t in (3, 5, 2, 4)] + books[:10]
    video = [world.items[TARGET, 0][k % 5] for k in range(len(books))]
    plan = [
        (d, i) for b, v in zip(books, video, strict=True) for d, i in ((SOURCE, b), (TARGET, v))
    ]
    events = list(round_robin([("u-scattered", plan)], active=1))
    stream = DriftStream(Scenario.NONE, events, len(events))

    def user_alarms(coherence: float) -> int:
        rows = run_scenario(bundle, stream, drift=DriftParams(user_coherence=coherence))
        return rows[0]["detections"]["user"]

    assert user_alarms(-2.0) == 1  # the divergence alone confirms the scattered events
    assert user_alarms(DriftParams().user_coherence) == 0
