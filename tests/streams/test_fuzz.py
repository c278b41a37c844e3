"""Bad input, property-based: generated records never crash the worker and nothing valid is lost.

The first two tests drive the Faust-free processors in process (real CPU ONNX encoder, real
Qdrant Edge store, a dict as the users table) with thousands of generated records; the last one
produces a few hundred raw records to a real worker process on the test broker. The generators
and the checked properties live in tests/fixtures/bad_input.py. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference.errors import InvalidEventError
from streams.deadletter import SourceMessage
from streams.records import parse_behaviour, parse_catalogue
from streams.runtime import Runtime
from streams.settings import KafkaSettings, WorkerSettings
from tests.fixtures.bad_input import (
    CATALOGUE_POOL,
    DUPLICATE,
    REASONS,
    FuzzTally,
    Limits,
    behaviour_stream,
    catalogue_stream,
    check_behaviour_batches,
    check_catalogue_batches,
    fuzz_world,
    sample,
    unique_ids,
)
from tests.fixtures.topic_reader import read_until, settled_user_states

pytestmark = [pytest.mark.model]

LIMITS = Limits(max_text_chars=300, max_event_bytes=3000)
FUZZ = settings(
    max_examples=80,
    deadline=None,
    database=None,  # no .hypothesis/ in the repo; a failure prints its reproduction blob
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _settings(limits: Limits) -> WorkerSettings:
    return WorkerSettings(
        max_text_chars=limits.max_text_chars, max_event_bytes=limits.max_event_bytes, top_k=5
    )


def _load_world(rt: Runtime, ws: WorkerSettings) -> dict[str, str]:
    world = fuzz_world()
    msgs = [
        SourceMessage("catalogue", 0, n, e["item_id"].encode(), json.dumps(e).encode(), time.time())
        for n, e in enumerate(world.catalogue())
    ]
    out = asyncio.run(rt.catalogue_processor(ws, "catalogue").process(msgs))
    assert out.applied == len(world.items) and not out.dead_letters
    return {it.item_id: it.domain for it in world.items}


def _split(cases: list, cuts: list[int]) -> list[list]:
    bounds = sorted({0, len(cases), *(c % (len(cases) + 1) for c in cuts)})
    return [cases[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def test_behaviour_processor_applies_each_valid_event_once_and_dead_letters_the_rest(
    runtime: Runtime,
) -> None:
    ws = _settings(LIMITS)
    item_domain = _load_world(runtime, ws)
    proc = runtime.behaviour_processor(ws, "behaviour")
    tally = FuzzTally()
    ids = unique_ids()

    @FUZZ
    @given(
        cases=behaviour_stream(fuzz_world(), LIMITS, ids, max_size=120),
        cuts=st.lists(st.integers(0, 120), max_size=4),
        replay=st.lists(st.booleans(), min_size=5, max_size=5),
    )
    def run(cases, cuts, replay) -> None:
        batches = _split(cases, cuts)
        check_behaviour_batches(proc, batches, replay[: len(batches)], tally, item_domain)

    run()
    print(f"\nbehaviour fuzz: {json.dumps(tally.as_dict())}")
    assert tally.inputs >= 2000, tally.inputs
    # every kind of bad input was tried, and repeats of valid events were among them
    assert len(tally.kinds) >= 25 and tally.duplicates > 0 and tally.replayed_batches > 0
    assert set(tally.dead_letters) <= REASONS


def test_catalogue_processor_stores_exactly_the_valid_items(runtime: Runtime) -> None:
    ws = _settings(LIMITS)
    proc = runtime.catalogue_processor(ws, "catalogue")
    tally = FuzzTally()
    pool = [f"cat-item-{i}" for i in range(CATALOGUE_POOL)]

    @FUZZ
    @given(
        cases=catalogue_stream(LIMITS, max_size=60), cuts=st.lists(st.integers(0, 60), max_size=3)
    )
    def run(cases, cuts) -> None:
        runtime.store.delete_items(pool)  # each example starts from an empty catalogue
        check_catalogue_batches(proc, runtime.store, _split(cases, cuts), tally)

    run()
    print(f"\ncatalogue fuzz: {json.dumps(tally.as_dict())}")
    assert tally.inputs >= 1000, tally.inputs
    assert len(tally.kinds) >= 15


# --- validation gaps the fuzzing found (fixed in streams/records.py) ---------------------------


@pytest.mark.parametrize("parse", [parse_behaviour, parse_catalogue])
def test_deeply_nested_json_is_dead_lettered_not_a_crash(parse) -> None:
    """json.loads raised RecursionError (not an InvalidEventError) on ~2 KB of '[[[[': the error
    escaped the parser and failed the whole micro-batch; now it is 'unparseable'."""
    raw = b'{"x":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    with pytest.raises(InvalidEventError) as info:
        parse(raw, max_bytes=64_000, max_text_chars=4000)
    assert info.value.reason == "unparseable"


@pytest.mark.parametrize("parse", [parse_behaviour, parse_catalogue])
def test_an_integer_past_pythons_digit_limit_is_dead_lettered_not_a_crash(parse) -> None:
    """json.loads raises a plain ValueError on an integer of more than 4,300 digits (a 4.4 KB
    record): like the nesting above, it escaped the parser and failed the whole batch."""
    raw = b'{"event_time": ' + b"1" * 4301 + b"}"
    with pytest.raises(InvalidEventError) as info:
        parse(raw, max_bytes=64_000, max_text_chars=4000)
    assert info.value.reason == "unparseable"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate: not UTF-8
        '{"event_id": "e"}'.encode("utf-16"),  # json.loads(bytes) would take UTF-16
        '{"event_id": "e"}'.encode("utf-32-le"),
    ],
)
def test_only_utf8_is_parsed(raw: bytes) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_behaviour(raw, max_bytes=64_000, max_text_chars=4000)
    assert info.value.reason == "unparseable"


def test_a_utf8_byte_order_mark_is_still_accepted() -> None:
    ev = {"event_id": "e", "user_id": "u", "domain": "d", "action": "search", "text": "t"}
    raw = "\ufeff".encode() + json.dumps({**ev, "event_time": 1.7e9}).encode()
    assert parse_behaviour(raw, max_bytes=64_000, max_text_chars=4000).event_id == "e"


# --- against a running worker ------------------------------------------------------------------


async def _produce_raw(
    kafka: KafkaSettings, topic: str, cases: list
) -> dict[tuple[int, int], object]:
    """Send each case's bytes unchanged under its key; (partition, offset) -> case."""
    producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", max_request_size=2**21)
    await producer.start()
    try:
        futures = [await producer.send(topic, c.value, key=c.key) for c in cases]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return {(m.partition, m.offset): c for m, c in zip(metas, cases, strict=True)}


@pytest.mark.broker
@pytest.mark.slow
def test_worker_dead_letters_generated_bad_input_and_applies_the_rest(make_worker) -> None:
    """A few hundred generated records, produced raw: the worker keeps serving, every bad one is
    in the dead-letter topic with its reason, every valid one is applied exactly once."""
    world = fuzz_world()
    limits = Limits(WorkerSettings().max_text_chars, WorkerSettings().max_event_bytes)
    behaviour = sample(behaviour_stream(world, limits, unique_ids()), 14, at=1)
    # the catalogue's items stay in the world's domains: an item in a new domain would vouch
    # for it, and whether a behaviour event there is unknown_domain would then depend on which
    # of the two topics the worker reads first
    known = tuple(world.domains)
    catalogue = sample(catalogue_stream(limits, prefix="wcat", max_size=30, domains=known), 5, at=2)
    w = make_worker()
    w.start()
    w.send(w.kafka.catalogue_topic, world.catalogue(), "item_id")
    w.wait_metric("xrec_events_total", len(world.items), outcome="upserted")

    sent_c = asyncio.run(_produce_raw(w.kafka, w.kafka.catalogue_topic, catalogue))
    sent_b = asyncio.run(_produce_raw(w.kafka, w.kafka.behaviour_topic, behaviour))
    valid = [c for c in behaviour if c.must_apply]
    dups = [c for c in behaviour if DUPLICATE in c.expect]
    bad = [c for c in (*behaviour, *catalogue) if c.must_dead_letter]
    w.wait_metric("xrec_events_total", len(valid), outcome="applied", timeout_s=120)
    # the dead letters themselves, not their count, so that a miss names the case it missed
    letters = read_until(
        w.kafka, w.kafka.deadletter_topic, lambda r: len(r) >= len(bad), timeout_s=60
    )
    sources = {w.kafka.catalogue_topic: sent_c, w.kafka.behaviour_topic: sent_b}
    lettered = {
        (h["x-source-topic"].decode(), h["x-source-partition"], h["x-source-offset"])
        for _, _, h in letters
    }
    missed = [
        (c.kind, sorted(c.expect), c.key, (c.value or b"")[:120])
        for topic, sent in sources.items()
        for (part, off), c in sent.items()
        if c.must_dead_letter and (topic, str(part).encode(), str(off).encode()) not in lettered
    ]
    assert not missed, f"bad records not dead-lettered: {missed}"
    w.wait_metric("xrec_dead_letters_total", len(bad), timeout_s=30)
    w.wait_metric("xrec_events_total", len(dups), outcome="duplicate", timeout_s=30)

    assert w.proc is not None and w.proc.poll() is None, "the worker died"
    assert w.healthz()["status"] == "ok"
    seen: Counter = Counter()
    for _, value, h in letters:
        topic = h["x-source-topic"].decode()
        where = (int(h["x-source-partition"]), int(h["x-source-offset"]))
        case = sources[topic][where]
        reason = h["x-error-reason"].decode()
        assert reason in case.expect, (case.kind, reason, h["x-error-message"], value[:200])
        assert value == (case.value or b"")  # the original bytes, unchanged
        seen[(topic, where)] += 1
    assert len(seen) == len(bad) and set(seen.values()) == {1}
    expected = Counter(c.user for c in valid)
    states = settled_user_states(w.kafka, w.app_id, len(valid))
    assert {u: s.events_applied for u, s in states.items()} == dict(expected)
    assert w.metric("xrec_events_total", outcome="applied") == len(valid)
    kinds = Counter(c.kind for c in (*behaviour, *catalogue))
    print(f"\nworker fuzz: {len(behaviour) + len(catalogue)} records, kinds {dict(kinds)}")
    assert len(behaviour) + len(catalogue) >= 200  # hypothesis draws vary in size
