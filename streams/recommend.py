"""From updated user states to recommendation records: query, rank, upsert the user vectors.

One query per (user, target domain) of a micro-batch, all sent to the vector store as one
batch; a user's consumed items in the domain are excluded. Each user's blended query vector is
upserted next to its recommendation, so the users collection always holds the one the last
recommendation used.
Where the model learned to weigh short-term interest (a bundle adapting online), that share of
each list goes to the nearest items of the short-term interest alone, a second query in the same
store call (:mod:`inference.short_term_slots`; not with the diversity step).
With ``WORKER_DIVERSITY`` the queries ask for ``WORKER_DIVERSITY_CANDIDATES`` nearest items, and
the diversity step (:mod:`inference.diversity`) picks the list from them by their vectors.
"""

from __future__ import annotations

import time

import numpy as np

from inference.blend import InterestModel, Query
from inference.diversity import list_similarity, mmr_batch, unit_rows
from inference.interest import UserState
from inference.short_term_slots import merge_lists, short_term_slots
from store.base import Hit, ItemQuery, UserPoint, VectorStore
from streams.deadletter import SourceMessage
from streams.metrics import (
    EVENT_TO_RECOMMENDATION_SECONDS,
    RECOMMENDATION_EMPTY,
    RECOMMENDATION_LIST_COSINE,
    RECOMMENDATION_SHORT_TERM,
    RECOMMENDATIONS,
    STAGE_SECONDS,
)
from streams.records import BehaviourEvent, Recommendation, ScoredItem
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings


class Recommender:
    """Turns a batch's last event per user into one recommendation per target domain."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        store: VectorStore,
        call_store: StoreCaller,
    ) -> None:
        self.settings = settings
        self.store = store
        self.call_store = call_store

    async def recommend(
        self,
        model: InterestModel,
        last: dict[str, tuple[SourceMessage, BehaviourEvent]],
        states: dict[str, UserState],
    ) -> list[Recommendation]:
        """Recommendations for the users of ``last`` (their state after the batch), each naming
        the user's last event of the batch as its source. ``model`` is the one serving now (a
        bundle reload swaps it between batches)."""
        targets = self.settings.target_domains or sorted(
            await self.call_store("domains", self.store.domains)
        )
        diverse = self.settings.diversity > 0
        k = self.settings.diversity_candidates if diverse else self.settings.top_k
        queries: list[ItemQuery] = []
        meta: list[tuple[str, str, Query]] = []
        users: list[UserPoint] = []
        # (the blended query's index, the places it gives, the short-term interest's query)
        short: list[tuple[int, int, ItemQuery]] = []
        empty = 0
        with STAGE_SECONDS.labels("blend").time():
            for user in last:
                state = states[user]
                for target in targets:
                    q = model.query(state, target)
                    if q is None or not _usable(q.vector):
                        empty += 1
                        continue
                    consumed = tuple(state.consumed(target))
                    # not with the diversity step: it ranks candidates by their scores, and
                    # two queries' scores are not on one scale
                    slots = 0 if diverse else short_term_slots(q.short_share, k)
                    vector = model.short_term_query(state, target) if slots else None
                    if vector is not None and _usable(vector):
                        query = ItemQuery(vector, target, k, consumed)
                        short.append((len(queries), slots, query))
                    queries.append(ItemQuery(q.vector, target, k, consumed))
                    meta.append((user, target, q))
                    users.append(UserPoint(user, target, q.vector))
        taken = [0] * len(queries)
        if queries:
            with STAGE_SECONDS.labels("store_query").time():
                results = await self.call_store(
                    "query_items", self.store.query_items_batch, queries + [q for *_, q in short]
                )
            results, taken = _split_lists(results, short, len(queries), k)
            with STAGE_SECONDS.labels("store_upsert_users").time():
                await self.call_store("upsert_users", self.store.upsert_users, users)
            if diverse:
                with STAGE_SECONDS.labels("diversify").time():
                    results = await self._diversify(model, results)
        # after the store calls: a batch failing in them is retried event by event, and its
        # empty queries and split lists would count again (a failure after them, writing the
        # state, retries it too, and counts these as it counts the recommendations: twice)
        RECOMMENDATION_EMPTY.inc(empty)
        RECOMMENDATION_SHORT_TERM.inc(sum(n > 0 for n in taken))
        if not queries:
            return []
        return self._records(model.serving_version, last, meta, results, taken)

    async def _diversify(self, model: InterestModel, results: list[list[Hit]]) -> list[list[Hit]]:
        """The top-k lists the diversity step picks from the queries' candidates.

        The candidates' vectors come in one store call for the whole batch, each item once:
        queries of one batch share many candidates, and fetching them with every query made
        the step cost twice as much on the Food/Kitchen stream (README, "Diversity").
        """
        ids = list(dict.fromkeys(h.item_id for hits in results for h in hits))
        stored = await self.call_store("get_items", self.store.get_items, ids) if ids else {}
        known = [i for i in ids if i in stored]  # an item deleted since the query drops out
        if not known:
            return [[] for _ in results]
        row = {item: n for n, item in enumerate(known)}
        features = unit_rows(model.item_inputs(np.stack([stored[i].vector for i in known])))
        candidates = [[h for h in hits if h.item_id in row] for hits in results]
        lists = [
            (np.array([h.score for h in hits]), np.array([row[h.item_id] for h in hits], int))
            for hits in candidates
        ]
        picks = mmr_batch(lists, features, self.settings.top_k, self.settings.diversity)
        out = []
        for hits, (_, rows), pick in zip(candidates, lists, picks, strict=True):
            if pick:
                RECOMMENDATION_LIST_COSINE.observe(list_similarity(features[rows[pick]]))
            out.append([hits[i] for i in pick])
        return out

    @staticmethod
    def _records(
        version: str, last: dict, meta: list, results: list, taken: list[int]
    ) -> list[Recommendation]:
        now = time.time()
        out: list[Recommendation] = []
        strategies: dict[str, int] = {}
        for (user, target, q), hits, from_short in zip(meta, results, taken, strict=True):
            m, ev = last[user]
            out.append(
                Recommendation(
                    user_id=user,
                    domain=target,
                    source_event_id=ev.event_id,
                    items=tuple(ScoredItem(h.item_id, round(h.score, 6)) for h in hits),
                    model_version=version,
                    strategy=q.strategy,
                    weights=q.weights,
                    event_time=ev.event_time,
                    produced_at=now,
                    short_term_items=from_short,
                )
            )
            strategies[q.strategy] = strategies.get(q.strategy, 0) + 1
            EVENT_TO_RECOMMENDATION_SECONDS.observe(max(0.0, now - m.timestamp_s))
        for strategy, n in strategies.items():
            RECOMMENDATIONS.labels(strategy).inc(n)
        return out


def _usable(vector: np.ndarray) -> bool:
    return bool(np.isfinite(vector).all() and vector.any())


def _split_lists(
    results: list[list[Hit]], short: list[tuple[int, int, ItemQuery]], n: int, k: int
) -> tuple[list[list[Hit]], list[int]]:
    """The ``n`` blended queries' lists, each with its short-term places filled from the extra
    queries' answers (``results`` holds those after the blended ones, in ``short``'s order),
    and how many items of each list came from them."""
    lists, taken = results[:n], [0] * n
    for (i, slots, _), hits in zip(short, results[n:], strict=True):
        lists[i], taken[i] = merge_lists(lists[i], hits, k, slots)
    return lists, taken
