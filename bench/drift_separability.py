"""How early could *any* user drift detector tell a switched user from an unchanged one?

A detector that resets a user at their switch recovers as fast as the ``oracle_reset`` variant,
but it only sees the events. This measures the evidence the events carry, whatever detector
reads them: the *novelty* of an event, ``1 - cos(item input, the user's decayed mean in that
domain before it)``, which is what a novelty detector thresholds.

For a ``user_switch`` stream, with ``k`` events per domain (novelty averaged over the user's
domains and those ``k`` events):

* switched: the first ``k`` events per domain after the user's switch (the new taste);
* unchanged: every window of ``k`` consecutive pre-switch events of the same users, starting at
  their ``warm``-th event per domain or later (the person before the switch, with a history).

Reported: the AUC of novelty between the two (0.5: no evidence; 1: perfectly separable) and
the share of switches caught by the threshold that lets 1% of unchanged windows alarm. A
detector that must catch most switches within ``k`` events with (almost) no false alarm needs
that share near 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

from inference.transfer import decay_factor
from synth.drift import DriftStream

ALARM_RATE = 0.01  # share of unchanged windows allowed to alarm


def event_novelty(
    stream: DriftStream, vector_of: Callable[[str], np.ndarray | None], half_life_events: float
) -> dict[tuple[str, str], list[tuple[float, bool]]]:
    """Per (user, domain) of switching users: (novelty, after the switch) for each event.

    The first event of a user in a domain has nothing to compare to and is left out.
    """
    decay = decay_factor(half_life_events)
    sums: dict[tuple[str, str], np.ndarray] = {}
    out: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for k, e in enumerate(stream.events):
        at = stream.switch_at.get(e["user_id"])
        vec = vector_of(e["item_id"])
        if at is None or vec is None:
            continue
        unit = vec / max(float(np.linalg.norm(vec)), 1e-12)
        key = (e["user_id"], e["domain"])
        mean = sums.get(key)
        if mean is not None:
            novelty = 1.0 - float(unit @ mean) / max(float(np.linalg.norm(mean)), 1e-12)
            out.setdefault(key, []).append((novelty, k >= at))
        sums[key] = unit if mean is None else decay * mean + unit
    return out


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney)."""
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))  # ties share their average rank
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def separability(
    stream: DriftStream,
    vector_of: Callable[[str], np.ndarray | None],
    half_life_events: float,
    windows: tuple[int, ...] = (1, 2),
    warm: int = 4,
) -> list[dict]:
    """AUC and share caught at a 1% alarm rate, per window of ``k`` events per domain."""
    novelty = event_novelty(stream, vector_of, half_life_events)
    users: dict[str, list[list[tuple[float, bool]]]] = {}
    for (user, _), seq in novelty.items():
        users.setdefault(user, []).append(seq)
    rows = []
    for k in windows:
        switched, unchanged = [], []
        for seqs in users.values():
            pre = [[x for x, after in s if not after] for s in seqs]
            post = [[x for x, after in s if after] for s in seqs]
            if any(len(p) < k for p in post):
                continue
            switched.append(np.mean([p[:k] for p in post]))
            # pre[i][j] is the domain's (j + 2)-th event: the first has no novelty
            last = min(len(p) for p in pre) - k
            unchanged += [np.mean([p[j : j + k] for p in pre]) for j in range(warm - 2, last + 1)]
        pos, neg = np.array(switched), np.array(unchanged)
        caught = float(np.mean(pos > np.quantile(neg, 1 - ALARM_RATE))) if len(neg) else None
        rows.append(
            {
                "events_per_domain": k,
                "auc": round(auc(pos, neg), 3),
                "caught_at_1pct_alarms": None if caught is None else round(caught, 3),
                "switched_users": len(pos),
                "unchanged_windows": len(neg),
            }
        )
    return rows
