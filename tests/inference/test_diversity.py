"""The diversity step (maximal marginal relevance) against a plain reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from inference.diversity import list_similarity, mmr, mmr_batch, unit_rows


def _reference(scores: np.ndarray, features: np.ndarray, k: int, diversity: float) -> list[int]:
    """MMR written out as its definition reads, one candidate at a time (slow, obvious)."""
    rel = (scores - scores.min()) / (scores.max() - scores.min())
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    by_score = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    while len(picked) < min(k, len(scores)):
        best, best_gain = None, -np.inf
        for i in by_score:
            if i in picked:
                continue
            if picked:
                redundancy = max(float(unit[i] @ unit[j]) for j in picked)
                gain = (1 - diversity) * rel[i] - diversity * redundancy
            else:
                gain = rel[i]
            if gain > best_gain + 1e-12:
                best, best_gain = i, gain
        picked.append(best)
    return picked


@pytest.mark.parametrize("diversity", [0.1, 0.3, 0.7])
def test_matches_the_definition(diversity: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        scores = rng.standard_normal(n)
        features = rng.standard_normal((n, 16))
        assert mmr(scores, features, 10, diversity) == _reference(scores, features, 10, diversity)


@pytest.mark.parametrize("diversity", [0.0, 0.3])
def test_a_batch_picks_what_each_list_alone_would(diversity: float) -> None:
    rng = np.random.default_rng(11)
    features = rng.standard_normal((50, 8))  # rows shared between lists, as items are
    lists = []
    for n in (30, 0, 1, 7, 30, 12):
        rows = rng.choice(50, size=n, replace=False)
        lists.append((rng.standard_normal(n), rows))
    batch = mmr_batch(lists, unit_rows(features), 10, diversity)
    assert batch == [mmr(s, features[r], 10, diversity) for s, r in lists]
    assert [len(p) for p in batch] == [10, 0, 1, 7, 10, 10]


def test_no_diversity_is_the_engine_order_ties_to_the_earlier() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.7])
    features = np.ones((4, 3))  # all alike: would matter if the step ran
    assert mmr(scores, features, 3, 0.0) == [1, 3, 0]


def test_a_near_copy_gives_way_to_the_next_item_of_another_kind() -> None:
    a = np.array([1.0, 0.0, 0.0])
    scores = np.array([1.0, 0.99, 0.95, 0.5])
    near = np.array([1.0, 0.03, 0.0])
    features = np.stack([a, near, [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert mmr(scores, features, 2, 0.0) == [0, 1]
    assert mmr(scores, features, 2, 0.3) == [0, 2]  # the near copy of the first is passed over
    assert mmr(scores, features, 4, 0.3)[:2] == [0, 2]


def test_lists_get_less_alike_as_diversity_grows() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((5, 32))
    topic = rng.integers(0, 5, 60)
    features = centres[topic] + 0.3 * rng.standard_normal((60, 32))
    scores = features @ centres[0] + 0.1 * rng.standard_normal(60)  # topic 0 scores best
    alike = [list_similarity(features[mmr(scores, features, 10, d)]) for d in (0.0, 0.3, 0.6)]
    assert alike[0] > alike[1] > alike[2]
    topics = [len(set(topic[mmr(scores, features, 10, d)])) for d in (0.0, 0.6)]
    assert topics[1] > topics[0]


def test_edges() -> None:
    scores, features = np.array([2.0, 1.0]), np.array([[1.0, 0.0], [0.0, 0.0]])  # a zero row
    assert mmr(scores, features, 5, 0.5) == [0, 1]  # k beyond the candidates: all of them
    assert mmr(scores, features, 0, 0.5) == []
    assert mmr(np.array([1.0, 1.0]), np.eye(2), 2, 0.5) == [0, 1]  # equal scores: no NaN
    with pytest.raises(ValueError, match="diversity"):
        mmr(scores, features, 2, 1.0)
    with pytest.raises(ValueError, match="feature rows"):
        mmr(scores, features[:1], 2, 0.5)


def test_list_similarity() -> None:
    assert list_similarity(np.ones((3, 4))) == pytest.approx(1.0)
    assert list_similarity(np.eye(4)) == pytest.approx(0.0)
    assert list_similarity(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-1.0)
    assert list_similarity(np.ones((1, 4))) == 0.0
