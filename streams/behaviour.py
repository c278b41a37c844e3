"""The behaviour path, one micro-batch at a time: validate, vectorise, update state, recommend.

Kept free of Faust types so it can be driven by the agent, by tests, and by offline replays
with the same code. Events of one user inside a batch are applied in order and coalesced into
one recommendation per target domain (for the user's last event of the batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inference.blend import InterestModel
from inference.errors import InvalidEventError, ModelError
from inference.interest import InterestParams, UserState, apply_event, dumps, loads, rebase
from store.base import ItemQuery, UserPoint, VectorStore
from streams.deadletter import DeadLetter, SourceMessage, reject
from streams.metrics import (
    ENCODER_TEXTS,
    EVENT_TO_RECOMMENDATION_SECONDS,
    EVENTS,
    RECOMMENDATION_EMPTY,
    RECOMMENDATIONS,
    STAGE_SECONDS,
)
from streams.records import (
    Action,
    BehaviourEvent,
    Explanation,
    RecommendationEvent,
    RecommendedItem,
    parse_behaviour,
)
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

TextEncoderFn = Callable[[Sequence[str]], "np.ndarray"]


@dataclass
class BatchOutput:
    """What one batch produced: recommendations to publish and letters for the dead-letter topic."""

    recommendations: list[RecommendationEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0


class _Timer:
    def __init__(self, stage: str) -> None:
        self.stage = stage

    def __enter__(self) -> None:
        self.t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        STAGE_SECONDS.labels(self.stage).observe(time.perf_counter() - self.t)


class BehaviourProcessor:
    """Applies behaviour batches to user state and turns them into recommendations."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        params: InterestParams,
        model: InterestModel,
        store: VectorStore,
        call_store: StoreCaller,
        encode: Callable,
        topic: str,
    ) -> None:
        self.settings = settings
        self.params = params
        self.model = model
        self.store = store
        self.call_store = call_store
        self.encode = encode  # async: list[str] -> np.ndarray
        self.topic = topic

    async def process(
        self,
        msgs: Sequence[SourceMessage],
        state_get: Callable[[str], bytes | None],
        state_set: Callable[[str, bytes, SourceMessage], None],
    ) -> BatchOutput:
        """Process one micro-batch. State reads/writes go through the given table accessors."""
        out = BatchOutput()
        with _Timer("parse"):
            events = self._parse(msgs, out)
        if not events:
            return out
        states: dict[str, UserState] = {}
        with _Timer("state_load"):
            for _, ev in events:
                if ev.user_id not in states:
                    states[ev.user_id] = loads(state_get(ev.user_id))
        await self._rebase_stale(states)
        fresh = [
            (m, ev)
            for m, ev in events
            if not states[ev.user_id].seen(ev.event_id, m.partition, m.offset)
        ]
        fresh_keys = {(m.partition, m.offset) for m, _ in fresh}
        vectors = await self._vectors(fresh, out)
        last: dict[str, tuple[SourceMessage, BehaviourEvent]] = {}
        with _Timer("state_update"):
            for m, ev in events:
                key = (m.partition, m.offset)
                vec = vectors.get(key, _MISSING) if key in fresh_keys else None
                if vec is _MISSING:
                    continue  # dead-lettered while vectorising
                applied = apply_event(
                    states[ev.user_id],
                    event_id=ev.event_id,
                    domain=ev.domain,
                    action=ev.action.value,
                    event_time=ev.event_time,
                    vector=vec,
                    item_id=ev.item_id,
                    rating=ev.rating,
                    params=self.params,
                    partition=m.partition,
                    offset=m.offset,
                )
                if applied:
                    out.applied += 1
                    last[ev.user_id] = (m, ev)
                else:
                    out.duplicates += 1
            for user, (m, _) in last.items():
                state_set(user, dumps(states[user]), m)
        EVENTS.labels(self.topic, "applied").inc(out.applied)
        EVENTS.labels(self.topic, "duplicate").inc(out.duplicates)
        if last:
            await self._recommend(last, states, out)
        return out

    async def _rebase_stale(self, states: dict[str, UserState]) -> None:
        """Move states built under an older model into the current model's item space."""
        version = self.model.version
        stale = [st for st in states.values() if st.space and st.space != version]
        for st in states.values():
            if not st.space:
                st.space = version
        if not stale:
            return
        ids = sorted({i for st in stale for d in st.domains.values() for i in d.recent})
        with _Timer("state_rebase"):
            items = await self.call_store("get_items", self.store.get_items, ids) if ids else {}
            inputs = {}
            for item_id, item in items.items():
                try:
                    inputs[item_id] = self.model.item_input(item)
                except ModelError:  # not re-indexed for this model yet: leave it out
                    continue
            for st in stale:
                rebase(st, inputs, version, self.params)
        log.info("rebased %d user states onto %s", len(stale), version)

    def _parse(
        self, msgs: Sequence[SourceMessage], out: BatchOutput
    ) -> list[tuple[SourceMessage, BehaviourEvent]]:
        events = []
        for m in msgs:
            try:
                ev = parse_behaviour(
                    m.value,
                    max_bytes=self.settings.max_event_bytes,
                    max_text_chars=self.settings.max_text_chars,
                )
            except InvalidEventError as exc:
                out.dead_letters.append(reject(m, exc.reason, exc.message))
                continue
            if m.key is not None and m.key.decode("utf-8", "replace") != ev.user_id:
                # A wrong key would put this user's events on two partitions and break ordering.
                out.dead_letters.append(reject(m, "bad_key", f"key {m.key[:64]!r} != user_id"))
                continue
            events.append((m, ev))
        return events

    async def _vectors(
        self, events: list[tuple[SourceMessage, BehaviourEvent]], out: BatchOutput
    ) -> dict[tuple[int, int], object]:
        """Vector per event offset: the item's vector, the encoded text, or a blend of both."""
        item_ids = sorted({ev.item_id for _, ev in events if ev.item_id is not None})
        with _Timer("item_lookup"):
            items = (
                await self.call_store("get_items", self.store.get_items, item_ids)
                if item_ids
                else {}
            )
        texts = [
            ((m.partition, m.offset), ev.text)
            for m, ev in events
            if ev.text and ev.action in (Action.SEARCH, Action.REVIEW)
        ]
        text_vecs: dict[tuple[int, int], np.ndarray] = {}
        if texts:
            with _Timer("encode"):
                encoded = await self.encode([t for _, t in texts])
            ENCODER_TEXTS.labels("behaviour").inc(len(texts))
            text_vecs = {off: v for (off, _), v in zip(texts, encoded, strict=True)}
        result: dict[tuple[int, int], object] = {}
        for m, ev in events:
            key = (m.partition, m.offset)
            vec: np.ndarray | None = None
            if ev.item_id is not None:
                item = items.get(ev.item_id)
                if item is None:
                    out.dead_letters.append(
                        reject(m, "unknown_item", f"item {ev.item_id!r} is not in the catalogue")
                    )
                    result[key] = _MISSING
                    continue
                if item.domain != ev.domain:
                    out.dead_letters.append(
                        reject(m, "domain_mismatch", f"item {ev.item_id!r} is in {item.domain!r}")
                    )
                    result[key] = _MISSING
                    continue
                vec = self.model.item_input(item)
            if key in text_vecs:
                tv = self.model.text_input(text_vecs[key], ev.domain)
                vec = tv if vec is None else 0.5 * (vec + tv)
            result[key] = vec
        return result

    async def _recommend(
        self,
        last: dict[str, tuple[SourceMessage, BehaviourEvent]],
        states: dict[str, UserState],
        out: BatchOutput,
    ) -> None:
        targets = self.settings.target_domains or sorted(
            await self.call_store("domains", self.store.domains)
        )
        queries: list[ItemQuery] = []
        meta: list[tuple[str, str, object]] = []
        users: list[UserPoint] = []
        with _Timer("blend"):
            for user in last:
                state = states[user]
                for target in targets:
                    q = self.model.query(state, target)
                    if q is None or not np.isfinite(q.vector).all() or not q.vector.any():
                        RECOMMENDATION_EMPTY.inc()
                        continue
                    queries.append(
                        ItemQuery(
                            q.vector, target, self.settings.top_k, tuple(state.consumed(target))
                        )
                    )
                    meta.append((user, target, q))
                    users.append(UserPoint(user, target, q.vector))
        if not queries:
            return
        with _Timer("store_query"):
            results = await self.call_store("query_items", self.store.query_items_batch, queries)
        with _Timer("store_upsert_users"):
            await self.call_store("upsert_users", self.store.upsert_users, users)
        now = time.time()
        for (user, target, q), hits in zip(meta, results, strict=True):
            m, ev = last[user]
            out.recommendations.append(
                RecommendationEvent(
                    user_id=user,
                    domain=target,
                    source_event_id=ev.event_id,
                    items=[
                        RecommendedItem(item_id=h.item_id, score=round(h.score, 6)) for h in hits
                    ],
                    model_version=self.model.version,
                    explanation=Explanation(strategy=q.strategy, weights=q.weights),
                    event_time=ev.event_time,
                    produced_at=now,
                )
            )
            RECOMMENDATIONS.labels(q.strategy).inc()
            EVENT_TO_RECOMMENDATION_SECONDS.observe(max(0.0, now - m.timestamp_s))


_MISSING = object()
