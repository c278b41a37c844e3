"""Transfer evaluation: metric code against hand-computed values, and a run on a real subset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.baselines import Popularity, TrainData
from bench.transfer_data import Dataset
from bench.transfer_eval import EvalOptions, app, run
from bench.transfer_protocols import (
    RankingCase,
    SampledCase,
    rank_all,
    rank_sampled,
    recall_ndcg_at_k,
    top_k,
)
from bench.transfer_report import write_results
from inference.collab import CollabParams
from inference.fit import FitParams
from tests.fixtures.dataset import hashed_titles, needs_data, small_dataset


def test_recall_and_ndcg_by_hand() -> None:
    ranked = np.array([5, 3, 9, 1, 7, 0, 2, 4, 6, 8])
    recall, ndcg = recall_ndcg_at_k(ranked, frozenset({3, 7, 42}))
    # hits at ranks 2 and 5 of 3 relevant items (ideal: ranks 1..3)
    assert recall == pytest.approx(2 / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / ideal)
    # denominator is min(10, |truth|): 12 relevant items, all of the top 10 hit -> recall 1
    recall, ndcg = recall_ndcg_at_k(np.arange(10), frozenset(range(12)))
    assert recall == 1.0 and ndcg == pytest.approx(1.0)


def test_top_k_and_full_ranking() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 0.2, 0.3]])
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 3]]

    class Fixed:
        name = "fixed"

        def scores(self, histories, target):
            return np.tile([0.0, 3.0, 2.0, 1.0], (len(histories), 1))

    items = np.array([10, 11, 12, 13])
    cases = [
        RankingCase(np.array([0]), frozenset({11})),
        RankingCase(np.array([0]), frozenset({10})),
    ]
    s = rank_all(Fixed(), cases, items, "t")
    # user 1: hit at rank 1 (1.0); user 2: item ranked 4th, still inside the top 10
    assert s.users == 2 and s.recall == pytest.approx(1.0)
    assert s.ndcg == pytest.approx((1.0 + 1 / math.log2(5)) / 2)
    allowed = np.array([True, False, True, True])
    assert rank_all(Fixed(), cases[:1], items, "t", allowed=allowed).recall == 0.0


def test_sampled_ties_count_half() -> None:
    class Constant:
        name = "constant"

        def scores(self, histories, target):
            return np.zeros((len(histories), 30))

    doms = np.array(["d"] * 30)
    case = SampledCase(np.array([0]), "d", np.arange(1, 30))  # target + 28 negatives
    s = rank_sampled(Constant(), [case], doms, "d")
    assert s.recall == 0.0  # expected rank 14: outside the top 10, not a free hit


@pytest.fixture(scope="module")
def small() -> Dataset:
    return small_dataset()


@pytest.mark.data
@pytest.mark.slow
@needs_data
def test_evaluation_runs_on_a_real_subset(small: Dataset, tmp_path) -> None:
    text = hashed_titles(small.catalogue.titles)
    options = EvalOptions(params=FitParams(collab=CollabParams(dim=16)), tune=False)
    rows, facts = run(small, text, "hashed-words", options, bundle_dir=tmp_path / "bundle")
    keys = {(r["protocol"], r["split"], r["direction"], r["method"]) for r in rows}
    for split in ("valid", "test"):
        for d in ("food->kitchen", "kitchen->food"):
            for m in (
                "system",
                "popularity",
                "cooc-knn",
                "cooc-knn-raw",
                "text-only",
                "text-ridge",
            ):
                assert ("headline", split, d, m) in keys
            for m in ("system", "popularity", "oracle-popularity", "random"):
                assert ("cold-items-full", split, d, m) in keys
                assert ("cold-items-new", split, d, m) in keys
        for d in ("mixed->food", "mixed->kitchen"):
            assert ("next-item-999neg", split, d, "system") in keys
    assert all(0.0 <= r["recall@10"] <= 1.0 and 0.0 <= r["ndcg@10"] <= 1.0 for r in rows)
    assert facts["bundle_version"].startswith("xfer-")

    # the popularity row is what an independent count-and-rank computation gives
    test = small.splits["test"]
    dom = small.catalogue.domains
    counts = TrainData(small.train.sequences, dom).counts
    kitchen = small.catalogue.items_of("kitchen")
    top = set(kitchen[np.argsort(-counts[kitchen], kind="stable")[:10]].tolist())
    recalls = []
    for seq in test.sequences:
        if (dom[seq] == "food").any() and (dom[seq] == "kitchen").any():
            truth = set(seq[dom[seq] == "kitchen"].tolist())
            recalls.append(len(top & truth) / min(10, len(truth)))
    row = next(
        r
        for r in rows
        if (r["protocol"], r["split"], r["direction"], r["method"])
        == ("headline", "test", "food->kitchen", "popularity")
    )
    assert row["users"] == len(recalls)
    assert row["recall@10"] == pytest.approx(np.mean(recalls), abs=0.01)  # up to tie order

    paths = write_results(rows, facts, tmp_path / "results")
    assert [p.suffix for p in paths] == [".json", ".md", ".png"]
    assert json.loads(paths[0].read_text()) == rows
    assert "| **system** |" in paths[1].read_text()


@pytest.mark.data
@needs_data
def test_popularity_scorer_breaks_ties_per_user(small: Dataset) -> None:
    data = TrainData(small.train.sequences, small.catalogue.domains)
    s = Popularity(data).scores([np.array([0]), np.array([1])], "food")
    assert s.shape == (2, small.catalogue.items_of("food").size)
    assert not np.array_equal(s[0], s[1])
    np.testing.assert_array_equal(np.floor(s[0]), np.floor(s[1]))


def test_command_is_mountable() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--data" in result.output and "--no-tune" in result.output
