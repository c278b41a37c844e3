"""The behaviour path, one micro-batch at a time: validate, vectorise, update state, recommend.

Kept free of Faust types so it can be driven by the agent, by tests, and by offline replays
with the same code. Events of one user inside a batch are applied in order and coalesced into
one recommendation per target domain (for the user's last event of the batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inference.blend import InterestModel
from inference.errors import InvalidEventError, ModelError
from inference.interest import InterestParams, UserState, apply_event, rebase, trim_recent
from inference.interest_codec import dumps, loads
from inference.recency_mix import InterestBefore, interest_before
from store.base import VectorStore
from streams.deadletter import DeadLetter, SourceMessage, key_mismatch, reject
from streams.metrics import (
    DRIFT_DETECTIONS,
    ENCODER_TEXTS,
    EVENTS,
    PROJECTION_UPDATES,
    SHORT_TERM_WEIGHT,
    STAGE_SECONDS,
    STATE_TRIMMED,
)
from streams.ratelimit import UserRateLimit
from streams.recommend import Recommender
from streams.records import (
    Action,
    BehaviourEvent,
    Recommendation,
    parse_behaviour,
)
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings
from streams.table_codec import MAX_STATE_BYTES

log = logging.getLogger(__name__)

TextEncoderFn = Callable[[Sequence[str]], "np.ndarray"]


@dataclass
class BatchOutput:
    """What one batch produced: recommendations to publish and letters for the dead-letter topic."""

    recommendations: list[Recommendation] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class LearnedState:
    """Table accessors for what the model learns per source partition (online projections).

    ``before_user_state``, when given, is called after a batch's learned records are set and
    before any of its user states is. It must see to it that those user records reach the
    broker only after these learned records did (the worker holds them back until then, see
    :mod:`streams.changelog`). A crash in between then replays events whose folds are stored
    (skipped by their offsets), never events applied to a user but not folded.
    """

    get: Callable[[int], bytes | None]
    set: Callable[[int, bytes, SourceMessage], None]
    before_user_state: Callable[[], None] | None = None


class ServesModel:
    """A processor whose model a bundle reload replaces between two batches, never inside one:
    the reload offers it (:meth:`serve`, from a timer task that can run while a batch awaits)
    and the processor takes it when its next batch starts (:meth:`_take_served`)."""

    model: InterestModel
    _served: tuple[InterestModel, InterestParams | None] | None = None

    def serve(self, model: InterestModel, params: InterestParams | None = None) -> None:
        """Serve ``model`` (with ``params``, when the processor has any) from the next batch."""
        self._served = (model, params)

    def _take_served(self) -> None:
        if self._served is None:
            return
        self.model, params = self._served
        self._served = None
        if params is not None:
            self.params = params


class BehaviourProcessor(ServesModel):
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
        self.recommender = Recommender(settings=settings, store=store, call_store=call_store)
        self.topic = topic
        self.rate_limit = UserRateLimit(settings.user_rate_per_s, settings.user_burst)

    async def process(
        self,
        msgs: Sequence[SourceMessage],
        state_get: Callable[[str], bytes | None],
        state_set: Callable[[str, bytes, SourceMessage], None],
        learned: LearnedState | None = None,
    ) -> BatchOutput:
        """Process one micro-batch. State reads/writes go through the given table accessors.

        ``learned`` stores what the model learns online per source partition (the worker's
        projection table); without it that is kept in memory only.
        """
        self._take_served()
        out = BatchOutput()
        with STAGE_SECONDS.labels("parse").time():
            events = self._parse(msgs, out)
        if not events:
            return out
        states: dict[str, UserState] = {}
        with STAGE_SECONDS.labels("state_load").time():
            for _, ev in events:
                if ev.user_id not in states:
                    states[ev.user_id] = loads(state_get(ev.user_id))
        await self._rebase_stale(states)
        fresh, limited = [], set()
        for m, ev in events:
            if not states[ev.user_id].seen(ev.event_id, m.partition, m.offset):
                if self._admit(m, ev, states[ev.user_id], out):
                    fresh.append((m, ev))
                else:
                    limited.add((m.partition, m.offset))
        fresh_keys = {(m.partition, m.offset) for m, _ in fresh}
        vectors = await self._vectors(fresh, out)
        last: dict[str, tuple[SourceMessage, BehaviourEvent]] = {}
        newest: dict[int, SourceMessage] = {}
        # Each user state to write, with an event of the user's that routes its record. A
        # replayed event already in a user's state is in the changelog too, unless the worker
        # died between its local store (RocksDB writes at once) and the changelog: the state
        # is sent again, or a worker that later recovers the user from the changelog would
        # miss events whose offsets are committed by then. Only replays pay for it.
        to_write: dict[str, SourceMessage] = {}
        user_drifts = 0
        with STAGE_SECONDS.labels("state_update").time():
            for m, ev in events:
                key = (m.partition, m.offset)
                if key in limited:
                    continue  # dead-lettered by the rate limit
                vec = vectors.get(key, _MISSING) if key in fresh_keys else None
                if vec is _MISSING:
                    continue  # dead-lettered while vectorising
                st = states[ev.user_id]
                before = interest_before(st, ev.domain) if vec is not None else None
                applied = apply_event(
                    st,
                    event_id=ev.event_id,
                    domain=ev.domain,
                    action=ev.action.value,
                    event_time=ev.event_time,
                    vector=vec,
                    item_id=None,
                    item_ids=ev.items(),
                    rating=ev.rating,
                    params=self.params,
                    partition=m.partition,
                    offset=m.offset,
                )
                if applied:
                    out.applied += 1
                    last[ev.user_id] = (m, ev)
                    to_write[ev.user_id] = m
                    newest[m.partition] = m  # a batch holds a partition's events in order
                    # only what raised the short-term interest can carry a change on
                    w = self.params.weight(ev.action.value, ev.rating)
                    added = vec if w > 0 else None
                    user_drifts += self._learn(st, ev.domain, m, learned, added, before)
                else:
                    out.duplicates += 1
                    to_write.setdefault(ev.user_id, m)
            if learned is not None and newest:
                self._store_learned(newest, learned)
        if learned is not None and learned.before_user_state is not None and to_write:
            learned.before_user_state()
        if last:
            out.recommendations = await self.recommender.recommend(self.model, last, states)
        # Written last: a batch that raised before this point left every user state as it
        # was, so the agent's event-by-event retry applies its events again and dead-letters
        # only the one that fails. What the model learned from the failed attempt stays, and
        # its offsets keep the retry from learning it twice.
        with STAGE_SECONDS.labels("state_store").time():
            for user, m in to_write.items():
                state_set(user, _fitted(states[user], m), m)
        # A user detection lives in the user's state, so a failed batch's retry detects it
        # again: counted only now. A population one is counted where it happens (its folds
        # are kept and skipped by offset on the retry).
        DRIFT_DETECTIONS.labels("user").inc(user_drifts)
        for domain in {ev.domain for _, ev in last.values()}:
            SHORT_TERM_WEIGHT.labels(domain).set(self.model.short_weight_of(domain))
        EVENTS.labels(self.topic, "applied").inc(out.applied)
        EVENTS.labels(self.topic, "duplicate").inc(out.duplicates)
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
        with STAGE_SECONDS.labels("state_rebase").time():
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

    def _learn(
        self,
        state: UserState,
        domain: str,
        m: SourceMessage,
        learned: LearnedState | None,
        vector: np.ndarray | None,
        before: InterestBefore | None,
    ) -> int:
        """Let the model learn from an applied event; the number of user drift detections."""
        online = getattr(self.model, "online", None)
        if online is not None and learned is not None and m.partition not in online.parts:
            online.restore(m.partition, learned.get(m.partition))  # first sight since start
        pairs = online.updates if online is not None else 0
        levels = self.model.learn(state, domain, m.partition, m.offset, vector, before)
        if "population" in levels:
            DRIFT_DETECTIONS.labels("population").inc()
        if online is not None:
            PROJECTION_UPDATES.inc(online.updates - pairs)
        return levels.count("user")

    def forget_partitions(self, partitions: set[int]) -> None:
        """After a rebalance revoked ``partitions``: drop the model's in-memory learning from
        them, so that it is read again from the table if they come back."""
        online = getattr(self.model, "online", None)
        if online is not None and partitions & set(online.parts):
            online.forget(partitions)
            log.info(
                "partitions %s revoked: their learned statistics will be read again",
                sorted(partitions),
            )

    def _store_learned(self, newest: dict[int, SourceMessage], learned: LearnedState) -> None:
        """A record per partition that folded something in the batch (``newest``: each
        partition's last applied message, which routes the record to its partition)."""
        online = getattr(self.model, "online", None)
        if online is None:
            return
        for partition, m in newest.items():
            if online.changed(partition):
                learned.set(partition, online.dumps(partition), m)

    def _admit(
        self, m: SourceMessage, ev: BehaviourEvent, state: UserState, out: BatchOutput
    ) -> bool:
        if self.rate_limit.admit(state, m.timestamp_s):
            return True
        out.dead_letters.append(
            reject(
                m,
                "rate_limited",
                f"user {ev.user_id!r} is over {self.rate_limit.per_s:g} events/s "
                f"(burst {self.rate_limit.burst}); set WORKER_USER_RATE_PER_S to change it",
            )
        )
        return False

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
                    max_items=self.settings.max_items_per_event,
                )
            except InvalidEventError as exc:
                out.dead_letters.append(reject(m, exc.reason, exc.message))
                continue
            letter = key_mismatch(m, ev.user_id, "user_id")
            if letter is not None:
                out.dead_letters.append(letter)
                continue
            events.append((m, ev))
        return events

    async def _vectors(
        self, events: list[tuple[SourceMessage, BehaviourEvent]], out: BatchOutput
    ) -> dict[tuple[int, int], object]:
        """Vector per event offset: the item's vector, the encoded text, or a blend of both."""
        item_ids = sorted({i for _, ev in events for i in ev.items()})
        with STAGE_SECONDS.labels("item_lookup").time():
            items = (
                await self.call_store("get_items", self.store.get_items, item_ids)
                if item_ids
                else {}
            )
        result: dict[tuple[int, int], object] = {}
        if any(not ev.items() for _, ev in events):
            # Text alone names no item whose domain vouches for the event's: a domain without
            # catalogue items can never be recommended in, and would grow the user's state
            # with every made-up name.
            known = await self.call_store("domains", self.store.domains)
            for m, ev in events:
                if not ev.items() and ev.domain not in known:
                    reason = f"domain {ev.domain!r} has no items in the catalogue"
                    out.dead_letters.append(reject(m, "unknown_domain", reason))
                    result[(m.partition, m.offset)] = _MISSING
        texts = [
            ((m.partition, m.offset), ev.text)
            for m, ev in events
            if ev.text
            and ev.action in (Action.SEARCH, Action.REVIEW)
            and (m.partition, m.offset) not in result
        ]
        text_vecs: dict[tuple[int, int], np.ndarray] = {}
        if texts:
            with STAGE_SECONDS.labels("encode").time():
                encoded = await self.encode([t for _, t in texts])
            ENCODER_TEXTS.labels("behaviour").inc(len(texts))
            text_vecs = {off: v for (off, _), v in zip(texts, encoded, strict=True)}
        for m, ev in events:
            key = (m.partition, m.offset)
            if key in result:
                continue  # dead-lettered above
            vec: np.ndarray | None = None
            if ev.items():
                letter = _item_problem(m, ev, items)
                if letter is not None:
                    out.dead_letters.append(letter)
                    result[key] = _MISSING
                    continue
            try:
                if ev.items():
                    # A basket moves interest towards the mean of its items, once.
                    vec = np.mean([self.model.item_input(items[i]) for i in ev.items()], axis=0)
                if key in text_vecs:
                    tv = self.model.text_input(text_vecs[key], ev.domain)
                    vec = tv if vec is None else 0.5 * (vec + tv)
            except ModelError as exc:
                # e.g. a domain the store has but the bundle was not fitted on, or an item
                # not yet re-indexed for this bundle: this event's problem, not the batch's
                out.dead_letters.append(reject(m, "model_mismatch", str(exc)))
                result[key] = _MISSING
                continue
            if vec is not None and not np.isfinite(vec).all():
                where = "its text's encoding" if key in text_vecs else "its items' vectors"
                out.dead_letters.append(
                    reject(m, "non_finite", f"{where} gave NaN or inf: the event is not applied")
                )
                result[key] = _MISSING
                continue
            result[key] = vec
        return result


_MISSING = object()


def _fitted(state: UserState, m: SourceMessage) -> bytes:
    """The state's bytes, its oldest recent items dropped until they fit a changelog record."""
    raw = dumps(state)
    if len(raw) <= MAX_STATE_BYTES:
        return raw
    size = len(raw)
    keep = max((len(d.recent) for d in state.domains.values()), default=0)
    while len(raw) > MAX_STATE_BYTES and keep > 0:
        keep //= 2
        trim_recent(state, keep)
        raw = dumps(state)
    STATE_TRIMMED.inc()
    log.warning(
        "user state of %d bytes cut to %d (recent items per domain kept: %d) to fit a changelog "
        "record; at %s",
        size,
        len(raw),
        keep,
        m.where(),
    )
    return raw


def _item_problem(m: SourceMessage, ev: BehaviourEvent, items: dict) -> DeadLetter | None:
    """The dead letter for an event naming an unknown item or one of another domain."""
    for item_id in ev.items():
        item = items.get(item_id)
        if item is None:
            return reject(m, "unknown_item", f"item {item_id!r} is not in the catalogue")
        if item.domain != ev.domain:
            return reject(m, "domain_mismatch", f"item {item_id!r} is in {item.domain!r}")
    return None
