"""Evaluation protocols and metrics of the Food→Kitchen transfer benchmark.

* headline: cold start in the target domain — input only the user's source-domain items (in
  order), truth = their target-domain items, rank ALL target items, nothing masked;
  Recall@10 = hits / min(10, |truth|), NDCG@10 with the same ideal; users with ≥1 item in each;
* next-item with 999 sampled negatives: the last item of the mixed sequence against 999 random
  same-domain items the user never touched; HR@10 / NDCG@10 per target domain;
* item cold start: a fraction of the target domain's items is hidden from fitting; headline
  ranking restricted to the truth items that were hidden (over all target items, and over the
  hidden "new arrivals" only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.baselines import Scorer

K = 10
_DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


@dataclass(frozen=True)
class RankingCase:
    """One user of a full-ranking protocol."""

    history: np.ndarray  # item indices fed to the method, in time order
    truth: frozenset[int]  # relevant target-domain item indices


@dataclass(frozen=True)
class SampledCase:
    """One user of the sampled-negatives protocol."""

    history: np.ndarray
    domain: str  # domain of the held-out item
    candidates: np.ndarray  # held-out item first, then the negatives


@dataclass(frozen=True)
class Score:
    """Mean metrics over users."""

    recall: float
    ndcg: float
    users: int


def recall_ndcg_at_k(ranked: np.ndarray, truth: frozenset[int], k: int = K) -> tuple[float, float]:
    """Recall@k (denominator min(k, |truth|)) and NDCG@k (same ideal) of one ranked list."""
    hits = np.array([int(i) in truth for i in ranked[:k]], dtype=np.float64)
    ideal = min(k, len(truth))
    if ideal == 0:
        return 0.0, 0.0
    return hits.sum() / ideal, float(
        (hits * _DISCOUNT[: hits.size]).sum() / _DISCOUNT[:ideal].sum()
    )


def top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Column indices of the k highest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def headline_cases(
    sequences: Sequence[np.ndarray], item_domains: np.ndarray, source: str, target: str
) -> list[RankingCase]:
    """Users with at least one item in each domain: source items in, target items as truth."""
    out = []
    for seq in sequences:
        doms = item_domains[seq]
        src, tgt = seq[doms == source], seq[doms == target]
        if src.size and tgt.size:
            out.append(RankingCase(src, frozenset(tgt.tolist())))
    return out


def rank_all(
    scorer: Scorer,
    cases: Sequence[RankingCase],
    target_items: np.ndarray,
    target: str,
    allowed: np.ndarray | None = None,
    batch: int = 256,
) -> Score:
    """Mean Recall@10 / NDCG@10 ranking all target items (or only the ``allowed`` mask)."""
    recalls, ndcgs = [], []
    for start in range(0, len(cases), batch):
        chunk = cases[start : start + batch]
        scores = np.asarray(scorer.scores([c.history for c in chunk], target), dtype=np.float64)
        if allowed is not None:
            scores = np.where(allowed[None, :], scores, -np.inf)
        for case, row, cols in zip(chunk, scores, top_k(scores), strict=True):
            cols = cols[np.isfinite(row[cols])]  # masked-out items never count as ranked
            r, n = recall_ndcg_at_k(target_items[cols], case.truth)
            recalls.append(r)
            ndcgs.append(n)
    return Score(
        float(np.mean(recalls)) if recalls else 0.0,
        float(np.mean(ndcgs)) if ndcgs else 0.0,
        len(recalls),
    )


def sampled_cases(
    sequences: Sequence[np.ndarray],
    item_domains: np.ndarray,
    negatives: int = 999,
    seed: int = 0,
) -> list[SampledCase]:
    """Last item of each mixed sequence against ``negatives`` unseen same-domain items."""
    rng = np.random.default_rng(seed)
    pools = {str(d): np.flatnonzero(item_domains == d) for d in np.unique(item_domains)}
    out = []
    for seq in sequences:
        held = int(seq[-1])
        domain = str(item_domains[held])
        pool = pools[domain]
        # uniform without replacement over the unseen items: draw a few extra, drop the seen
        draw = rng.choice(pool, size=min(pool.size, negatives + seq.size), replace=False)
        negs = draw[~np.isin(draw, seq)][:negatives]
        out.append(SampledCase(seq[:-1], domain, np.concatenate([[held], negs])))
    return out


def rank_sampled(
    scorer: Scorer, cases: Sequence[SampledCase], item_domains: np.ndarray, domain: str
) -> Score:
    """HR@10 / NDCG@10 of the held-out item among its candidates, for one target domain.

    Ties count half (the expected rank under random tie-breaking), so constant scores give the
    random figure rather than a perfect or a zero one.
    """
    chosen = [c for c in cases if c.domain == domain]
    if not chosen:
        return Score(0.0, 0.0, 0)
    position = np.full(len(item_domains), -1, dtype=np.int64)
    items = np.flatnonzero(item_domains == domain)
    position[items] = np.arange(items.size)
    hits, gains = [], []
    for start in range(0, len(chosen), 256):
        chunk = chosen[start : start + 256]
        scores = np.asarray(scorer.scores([c.history for c in chunk], domain), dtype=np.float64)
        for case, row in zip(chunk, scores, strict=True):
            s = row[position[case.candidates]]
            rank = float((s[1:] > s[0]).sum() + 0.5 * (s[1:] == s[0]).sum())
            hit = rank < K
            hits.append(float(hit))
            gains.append(1.0 / np.log2(rank + 2.0) if hit else 0.0)
    return Score(float(np.mean(hits)), float(np.mean(gains)), len(hits))


def hide_items(items: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded random ``fraction`` of ``items`` (sorted)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(items, size=round(fraction * items.size), replace=False))


def without_items(sequences: Sequence[np.ndarray], hidden: np.ndarray) -> list[np.ndarray]:
    """Sequences with every interaction of the hidden items removed (empty ones dropped)."""
    out = []
    for seq in sequences:
        kept = seq[~np.isin(seq, hidden)]
        if kept.size:
            out.append(kept)
    return out


def cold_item_cases(cases: Sequence[RankingCase], hidden: np.ndarray) -> list[RankingCase]:
    """Headline cases restricted to truth items that were hidden from fitting."""
    hidden_set = frozenset(hidden.tolist())
    return [RankingCase(c.history, c.truth & hidden_set) for c in cases if c.truth & hidden_set]
