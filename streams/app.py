"""The Faust application: topics, the users table, the two agents and the web views.

:func:`build_app` wires settings and the runtime (encoder, store, model) into a ``faust.App``.
Agents take micro-batches (``take_events``), hand them to the Faust-free processors and publish
what comes back. A behaviour batch's events are acknowledged to Faust only once the broker
holds every record the batch produced (recommendations, dead letters, changelog), so an offset
is never committed ahead of the state and recommendations it produced; the agent computes the
next batch meanwhile (:mod:`streams.publish`, :mod:`streams.changelog`).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event  # the table picks its changelog partition from it

from streams.behaviour import LearnedState
from streams.catalogue_replica import CataloguePosition, CatalogueReplica
from streams.catalogue_resync import SharedCatalogueResync
from streams.changelog import AckedTable
from streams.consumer import worker_consumer
from streams.deadletter import DeadLetter, SourceMessage, reject, span
from streams.heap import FREEZE_AFTER_CATALOGUE_EVENTS
from streams.metrics import BATCH_SIZE, PUBLISH_PENDING_SECONDS, STAGE_SECONDS, USERS_IN_STATE
from streams.publish import Delivery, PublishPipeline, fail_stop, hold_messages, releaser
from streams.runtime import Runtime
from streams.settings import KafkaSettings, SecurityProtocol, WorkerSettings
from streams.table_codec import from_table, to_table
from streams.topics import PROJECTION_TABLE, USERS_TABLE
from streams.web import register_views

log = logging.getLogger(__name__)


def _credentials(kafka: KafkaSettings) -> Any:
    proto = kafka.security_protocol
    if proto is SecurityProtocol.PLAINTEXT:
        return None
    ssl_context = kafka.aiokafka_kwargs().get("ssl_context")
    if proto is SecurityProtocol.SSL:
        return faust.SSLCredentials(ssl_context)
    assert kafka.sasl_password is not None
    return faust.SASLCredentials(
        username=kafka.sasl_username,
        password=kafka.sasl_password.get_secret_value(),
        ssl_context=ssl_context,
        mechanism=kafka.sasl_mechanism.value,
    )


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """The worker's producer settings for ``faust.App``.

    Every write is acknowledged by all replicas before its batch is acknowledged. aiokafka
    keeps one produce request in flight per broker, holding one record batch per partition, so
    a micro-batch is acknowledged after as many round trips as its fullest partition has
    batches: batches are sized to hold a micro-batch's recommendations and state changes.
    """
    return {"producer_acks": -1, "producer_max_batch_size": kafka.producer_batch_bytes}


def _source(event: Any) -> SourceMessage:
    m = event.message
    return SourceMessage(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp or time.time())


def build_app(kafka: KafkaSettings, worker: WorkerSettings, runtime: Runtime) -> faust.App:
    """Create the Faust app with its topics, table, agents and web views."""
    worker.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        worker.app_id,
        broker=kafka.broker_url,
        broker_credentials=_credentials(kafka),
        store=worker.table_store,
        datadir=str(worker.data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        broker_rebalance_timeout=kafka.rebalance_timeout_s,
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, kafka.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        **producer_options(kafka),
        web_host=worker.web_host,
        web_port=worker.web_port,
        web_bind=worker.web_host,
        autodiscover=False,
        # Raw bytes everywhere: records are validated by us at the edge (and dead-lettered
        # unchanged), and the users table holds our own compact binary state.
        key_serializer="raw",
        value_serializer="raw",
        # A few seconds of recovery delay are for multi-worker rebalances; one worker starts now.
        stream_recovery_delay=0.0,
        Table=AckedTable,  # app.Table builds tables whose changelog writes can be awaited
    )
    # Recovery reads changelog ends from fetch responses, and no fetch is lost between the
    # seek and the buffer clear after it (see streams.consumer).
    app.transport.Consumer = worker_consumer(kafka)  # type: ignore[misc]
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": kafka.partitions,
    }
    catalogue_topic = app.topic(kafka.catalogue_topic, **raw)
    behaviour_topic = app.topic(kafka.behaviour_topic, **raw)
    recommendations = app.topic(kafka.recommendations_topic, **raw)
    deadletters = app.topic(kafka.deadletter_topic, **raw)
    # str keys, our own binary values (base64 text, see table_codec), one changelog each.
    table_schema = faust.Schema(
        key_type=str, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    users = cast(
        AckedTable,
        app.Table(USERS_TABLE, default=None, partitions=kafka.partitions, schema=table_schema),
    )

    # Read at scrape time, not after every batch: with rocksdb:// a len() walks every key.
    def users_in_state() -> float:
        try:
            return float(len(users))
        except Exception:  # a store being recovered or closed: no figure, not a failed scrape
            return float("nan")

    USERS_IN_STATE.set_function(users_in_state)
    # Online projection statistics, one record per source partition, kept like user state.
    projection = cast(
        AckedTable,
        app.Table(PROJECTION_TABLE, default=None, partitions=kafka.partitions, schema=table_schema),
    )
    behaviour_proc = runtime.behaviour_processor(worker, kafka.behaviour_topic)
    catalogue_proc = runtime.catalogue_processor(worker, kafka.catalogue_topic)

    async def send_dead_letters(letters: Sequence[DeadLetter], deliveries: list[Delivery]) -> None:
        for dl in letters:
            dl.count()
            deliveries.append(
                await deadletters.send(key=dl.key(), value=dl.value(), headers=dl.headers())
            )

    async def process_singly(
        msgs: Sequence[SourceMessage],
        proc_one: Callable[[SourceMessage], Awaitable[None]],
        deliveries: list[Delivery],
    ) -> None:
        """After a batch failed unexpectedly: retry one event at a time, dead-letter poison."""
        for msg in msgs:
            try:
                await proc_one(msg)
            except Exception as exc:  # a poison message must not block its partition
                log.exception("processing %s failed; dead-lettering it", msg.where())
                await send_dead_letters([reject(msg, "processing_error", repr(exc))], deliveries)

    async def run_behaviour(
        msgs: list[SourceMessage], events_by_pos: dict, deliveries: list[Delivery]
    ) -> None:
        """Process a batch and send what it produced, each send's delivery into ``deliveries``
        (a failed attempt's sends too: they are on their way all the same)."""

        # take_events batches span partitions, and a table writes a key to the current
        # event's partition (its changelog partition; RocksDB also keeps a database per
        # partition and reads a key from the current event's alone): before each read and
        # write, point the table at an event of the key's partition.
        of_key = {m.key: events_by_pos[(m.partition, m.offset)] for m in msgs if m.key}
        of_partition = {m.partition: events_by_pos[(m.partition, m.offset)] for m in msgs}

        def point_at(event: Any) -> None:
            # None: no event of that key here (it will be rejected); every partition is read
            _current_event.set(weakref.ref(event) if event is not None else None)

        def state_get(user: str) -> bytes | None:
            point_at(of_key.get(user.encode()))
            return from_table(users.get(user))

        def state_set(user: str, value: bytes, msg: SourceMessage) -> None:
            point_at(events_by_pos[(msg.partition, msg.offset)])
            users[user] = to_table(value)

        def learned_get(partition: int) -> bytes | None:
            point_at(of_partition.get(partition))
            return from_table(projection.get(str(partition)))

        def learned_set(partition: int, value: bytes, msg: SourceMessage) -> None:
            point_at(events_by_pos[(msg.partition, msg.offset)])
            projection[str(partition)] = to_table(value)

        def learned_first() -> None:
            # The batch's user records reach the broker only after its learned records are
            # acknowledged (two changelogs, see LearnedState); the agent does not wait.
            users.send_after(projection.pending())

        learned = LearnedState(learned_get, learned_set, learned_first)
        try:
            out = await behaviour_proc.process(msgs, state_get, state_set, learned)
        finally:
            users.release()
        start = time.perf_counter()
        publishing.sending()
        try:
            await send_dead_letters(out.dead_letters, deliveries)
            # Straight to the producer: Topic.send wraps every message in Faust's channel
            # machinery (FutureMessage, codecs, callbacks), ~2 recommendations per event; the
            # topic exists (ensure_topics), and the batch is acknowledged only once these
            # deliveries resolved.
            send, name = app.producer.send, recommendations.get_topic_name()
            for rec in out.recommendations:
                key, value = rec.user_id.encode(), rec.to_json()
                deliveries.append(await send(name, key, value, None, None, None))
        except Exception as exc:
            # Not a poison event: the batch is applied, and retrying it event by event would
            # find every event a duplicate and publish nothing. A restart replays it instead.
            where = span((m.topic, m.partition, m.offset) for m in msgs)
            fail_stop(f"sending what {len(msgs)} events produced ({where}) failed: {exc!r}")
        STAGE_SECONDS.labels("publish").observe(time.perf_counter() - start)

    async def run_catalogue(msgs: list[SourceMessage]) -> list[SourceMessage]:
        out = await catalogue_proc.process(msgs)
        await send_dead_letters(out.dead_letters, [])  # the flush below waits for them
        return [dl.source for dl in out.dead_letters]

    async def replay_catalogue(msgs: list[SourceMessage]) -> None:
        # Records applied before: their dead letters were sent then.
        out = await catalogue_proc.process(msgs)
        if out.dead_letters:
            log.info("catalogue replay: %d records rejected again", len(out.dead_letters))

    async def apply_catalogue(msgs: list[SourceMessage]) -> list[SourceMessage]:
        """Apply a batch; the records it rejected (after a failed batch: none are named)."""
        # The catalogue is idempotent (upserts by item id), so its batches are simply flushed.
        BATCH_SIZE.labels(kafka.catalogue_topic).observe(len(msgs))
        rejected: list[SourceMessage] = []
        try:
            rejected = await run_catalogue(msgs)
        except Exception:
            log.exception("catalogue batch of %d failed; retrying event by event", len(msgs))
            await process_singly(msgs, lambda m: run_catalogue([m]), [])
        await app.producer.flush()
        return rejected

    since_freeze = 0

    async def catalogue_idle(applied: int) -> None:
        """The catalogue backlog is drained: index what the load brought (a no-op unless
        enough new items wait; see Runtime.optimize_store) and settle the heap."""
        nonlocal since_freeze
        since_freeze += applied
        try:
            await runtime.optimize_store()
        except Exception:
            log.exception("indexing new items failed; queries stay exact meanwhile")
        if since_freeze >= FREEZE_AFTER_CATALOGUE_EVENTS:
            runtime.settle_heap(f"{since_freeze} catalogue events")
            since_freeze = 0

    def held_partitions(topic: str) -> set[int]:
        """The partitions of ``topic`` this worker holds now."""
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}

    replica: CatalogueReplica | None = None
    resync: SharedCatalogueResync | None = None
    if runtime.store.local_dir is None:  # one store for every worker: the group splits the work
        resync = shared = SharedCatalogueResync(
            kafka, kafka.catalogue_topic, worker.batch_size, replay_catalogue
        )

        @app.agent(catalogue_topic, name="catalogue")
        async def catalogue_agent(stream: faust.StreamT) -> None:
            since_idle = 0
            async for events in stream.take_events(worker.batch_size, within=worker.batch_within_s):
                await shared.apply([_source(e) for e in events], apply_catalogue)
                since_idle += len(events)
                if len(events) < worker.batch_size:
                    await catalogue_idle(since_idle)
                    since_idle = 0

    else:  # a store inside this worker: it reads the whole catalogue (streams.catalogue_replica)
        replica = reader = CatalogueReplica(
            kafka,
            CataloguePosition(runtime.store.local_dir, kafka.catalogue_topic),
            batch_size=worker.batch_size,
            within_s=worker.batch_within_s,
            apply=apply_catalogue,
            on_idle=catalogue_idle,
            replay=replay_catalogue,
        )

        if runtime.reseeded and reader.position.load():
            # Started with another bundle than the store was last seeded with: the items
            # placed from their text by that one are placed again, as after a reload.
            reader.rewind()

        @app.task
        async def read_catalogue() -> None:
            try:
                await reader.run()
            except Exception as exc:  # the store would silently fall behind the catalogue
                fail_stop(f"reading the catalogue stopped: {exc!r}")

    # take_events acknowledges a batch when the agent asks for the next one; the pipeline's
    # extra reference keeps the offsets uncommitted until the batch is durable. A delivery
    # that neither succeeds nor fails within the producer's request timeout stops the worker.
    publish_timeout_s = float(app.conf.producer_request_timeout) + 60.0
    publishing = PublishPipeline(hold_messages, releaser(app), publish_timeout_s)

    async def handle_behaviour(events: Sequence[Any]) -> None:
        if replica is not None and not replica.caught_up.is_set():
            # A new or wiped store would dead-letter events for items it has not read yet.
            # The wait is inside the first batch, not before the loop: Faust routes a
            # partition's records to the stream channels that exist when the partition is
            # assigned, and the stream's channel exists once iteration has begun.
            await replica.caught_up.wait()
        BATCH_SIZE.labels(kafka.behaviour_topic).observe(len(events))
        pos = {(e.message.partition, e.message.offset): e for e in events}
        msgs = [_source(e) for e in events]
        deliveries: list[Delivery] = []
        try:
            await run_behaviour(msgs, pos, deliveries)
        except Exception:
            log.exception(
                "behaviour batch of %d (%s) failed; retrying event by event",
                len(events),
                span((m.topic, m.partition, m.offset) for m in msgs),
            )
            await process_singly(msgs, lambda m: run_behaviour([m], pos, deliveries), deliveries)
        # Every attempt's state changes, the failed ones' included, belong to this batch.
        deliveries += users.take_unacked() + projection.take_unacked()
        start = time.perf_counter()
        await publishing.submit(events, deliveries)
        STAGE_SECONDS.labels("publish_wait").observe(time.perf_counter() - start)

    @app.agent(behaviour_topic, name="behaviour")
    async def behaviour_agent(stream: faust.StreamT) -> None:
        async for events in stream.take_events(worker.batch_size, within=worker.batch_within_s):
            # Held before anything can fail: if this batch escaped the pipeline, take_events'
            # own acknowledgement would let Faust commit past the batch still in flight.
            publishing.hold(events)
            try:
                await handle_behaviour(events)
            except Exception as exc:
                where = f"{events[0].message.tp} offset {events[0].message.offset}"
                fail_stop(f"behaviour batch of {len(events)} from {where} not published: {exc!r}")

    @app.task
    async def settle_started_heap() -> None:
        # App tasks start after table recovery: the recovered users table is in the heap.
        runtime.settle_heap("start-up")

    if worker.bundle_dir is not None:
        bundle_dir = worker.bundle_dir

        resync_due = False  # a shared store's replay failed: tried again on the next tick

        @app.timer(worker.bundle_reload_s)
        async def reload_bundle() -> None:
            nonlocal resync_due
            reloaded = await runtime.maybe_reload(bundle_dir)
            # Items the new bundle was not fitted on hold the old bundle's place from their
            # text: each item's latest record is applied again, by the new bundle (fitted
            # items are not encoded again). A shared store: by each worker for its partitions.
            if reloaded and replica is not None:
                replica.rewind()
            elif (reloaded or resync_due) and resync is not None:
                catalogue_name = catalogue_topic.get_topic_name()
                try:
                    await resync.run(lambda: held_partitions(catalogue_name))
                    resync_due = False
                except Exception:  # the broker, say: the items keep their place meanwhile
                    log.exception("re-placing the catalogue after the reload failed; retrying")
                    resync_due = True

    behaviour_name = behaviour_topic.get_topic_name()

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: object, revoked: set, **_: object) -> None:
        # Sent once the agents are idle (after wait_empty). The projection statistics of a
        # partition are cached in memory; another worker refines them from now on, and a
        # stale copy kept here would overwrite its work if the partition came back.
        behaviour_proc.forget_partitions(
            {tp.partition for tp in revoked if tp.topic == behaviour_name}
        )

    PUBLISH_PENDING_SECONDS.set_function(publishing.pending_s)
    register_views(
        app,
        runtime,
        lambda: replica is None or replica.caught_up.is_set(),
        publishing.pending_s,
        worker.publish_stall_s,
        lambda: held_partitions(behaviour_name),
    )
    return app
