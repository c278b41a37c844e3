"""The switch-separability measure: separable switches score near 1, non-switches near 0.5."""

from __future__ import annotations

import numpy as np
import pytest

from bench.drift_separability import auc, event_novelty, separability
from synth.drift import round_robin, switching_stream

DIM, PER_HALF = 32, 10


def _world(seed: int) -> dict[str, np.ndarray]:
    """Items ``<topic>-<k>``: noisy copies of one random direction per topic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, DIM))
    return {
        f"{t}-{k}": centres[t] + 0.3 * rng.normal(size=DIM) for t in range(6) for k in range(50)
    }


def _stream(seed: int, switch_topic: bool):
    """Users alternating two domains; the second half of their events is another topic or not."""
    rng = np.random.default_rng(seed)
    plans, halves = [], {}
    for u in range(60):
        before, after = (0, 1), (2, 3) if switch_topic else (0, 1)
        seq = []
        for half in (before, after):
            for _ in range(PER_HALF):
                for domain, topic in zip(("a", "b"), half, strict=True):
                    seq.append((domain, f"{topic}-{rng.integers(50)}"))
        plans.append((f"u{u}", seq))
        halves[f"u{u}"] = 2 * PER_HALF
    return switching_stream(list(round_robin(plans, active=20)), halves)


def test_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), np.round(rng.normal(0, 1, 50), 1)
    pairwise = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
    assert auc(pos, neg) == pytest.approx(pairwise)
    assert auc(np.array([1.0, 1.0]), np.array([1.0])) == pytest.approx(0.5)


def test_a_switch_to_another_topic_is_separable_from_the_first_event() -> None:
    items = _world(0)
    rows = separability(_stream(1, switch_topic=True), items.get, half_life_events=10.0)
    assert [r["events_per_domain"] for r in rows] == [1, 2]
    for r in rows:
        assert r["switched_users"] == 60
        assert r["auc"] > 0.99
        assert r["caught_at_1pct_alarms"] > 0.95


def test_no_change_gives_no_evidence() -> None:
    items = _world(0)
    rows = separability(_stream(2, switch_topic=False), items.get, half_life_events=10.0)
    for r in rows:
        assert 0.35 < r["auc"] < 0.65
        assert r["caught_at_1pct_alarms"] < 0.1


def test_novelty_is_measured_against_the_interest_before_the_event() -> None:
    e = np.eye(3)
    items = {"x": e[0], "y": e[1], "z": e[0] + e[1]}
    stream = switching_stream(
        list(round_robin([("u", [("a", "x"), ("a", "x"), ("a", "y"), ("a", "z")])], active=1)),
        {"u": 2},
    )
    novelty = event_novelty(stream, items.get, half_life_events=0.0)
    values = [round(x, 4) for x, _ in novelty["u", "a"]]
    # x after x: 0; y after 2x: orthogonal, 1; z after 2x + y: cos = 3 / (sqrt 2 sqrt 5)
    assert values == [0.0, 1.0, round(1 - 3 / np.sqrt(10), 4)]
    assert [after for _, after in novelty["u", "a"]] == [False, True, True]
