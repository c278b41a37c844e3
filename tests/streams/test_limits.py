"""Per-user rate and items-per-event limits, through the real behaviour processor.

Real CPU encoder and real Qdrant Edge store (the ``runtime`` fixture); a dict stands in for the
Faust users table, as in the fuzz tests.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from inference.errors import InvalidEventError
from inference.interest import UserState
from inference.interest_codec import dumps, loads
from streams.deadletter import SourceMessage
from streams.ratelimit import UserRateLimit
from streams.records import parse_behaviour
from streams.runtime import Runtime
from streams.settings import WorkerSettings
from synth.generator import SyntheticWorld

T0 = 1_700_000_000.0


def test_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    limit = UserRateLimit(per_s=2.0, burst=5)
    st = UserState()
    assert [limit.admit(st, T0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert limit.admit(st, T0 + 0.5) and not limit.admit(st, T0 + 0.5)  # one token per 0.5 s
    assert [limit.admit(st, T0 + 100) for _ in range(6)] == [True] * 5 + [False]  # capped at burst
    # the bucket is part of the stored state: a reloaded state decides the same way
    again = loads(dumps(st))
    assert (again.rate_tokens, again.rate_at) == (st.rate_tokens, st.rate_at)
    assert not limit.admit(again, T0 + 100)


def test_zero_rate_turns_the_limit_off() -> None:
    st = UserState()
    assert all(UserRateLimit(0.0, 1).admit(st, T0) for _ in range(1000))
    assert st.rate_tokens is None


def test_items_per_event_is_limited_before_the_ids_are_validated() -> None:
    base = {"event_id": "e", "user_id": "u", "domain": "books", "action": "purchase"}
    base["event_time"] = T0

    def reason(**over: object) -> str:
        try:
            parse_behaviour(json.dumps({**base, **over}), max_bytes=10**6, max_text_chars=100)
        except InvalidEventError as exc:
            return exc.reason
        return "ok"

    assert reason(item_ids=[f"i{k}" for k in range(100)]) == "ok"
    assert reason(item_ids=[f"i{k}" for k in range(101)]) == "too_many_items"
    assert reason(item_ids=[{"not": "an id"}] * 101) == "too_many_items"
    assert reason(item_ids=["a", "a"]) == "schema"
    assert reason(item_ids=["a"], item_id="a") == "schema"
    assert reason(item_ids=[]) == "schema"  # a purchase of nothing


def _world_and_processor(runtime: Runtime, ws: WorkerSettings):
    world = SyntheticWorld(users=4, items_per_topic_domain=3, seed=3)
    msgs = [
        SourceMessage("catalogue", 0, n, e["item_id"].encode(), json.dumps(e).encode(), T0)
        for n, e in enumerate(world.catalogue())
    ]
    asyncio.run(runtime.catalogue_processor(ws, "catalogue").process(msgs))
    return world, runtime.behaviour_processor(ws, "behaviour")


@pytest.mark.model
def test_a_user_over_the_rate_is_dead_lettered_and_others_are_not(runtime: Runtime) -> None:
    ws = WorkerSettings(user_rate_per_s=1.0, user_burst=10, top_k=3)
    world, proc = _world_and_processor(runtime, ws)
    item = world.items[0]
    table: dict[str, bytes] = {}

    def event(n: int, user: str, at: float) -> SourceMessage:
        ev = {"event_id": f"{user}-{n}", "user_id": user, "domain": item.domain, "action": "view"}
        ev |= {"item_id": item.item_id, "event_time": T0}
        return SourceMessage("behaviour", 0, n, user.encode(), json.dumps(ev).encode(), at)

    def run(msgs: list[SourceMessage]):
        return asyncio.run(proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v)))

    # a bot sends 30 events in the same second, a person 3 in between
    msgs = [event(n, "bot" if n % 11 else "person", T0) for n in range(33)]
    out = run(msgs)
    letters = out.dead_letters
    assert {dl.reason for dl in letters} == {"rate_limited"}
    assert len(letters) == 30 - 10
    assert all(dl.source.key == b"bot" for dl in letters)
    assert loads(table["bot"]).events_applied == 10
    assert loads(table["person"]).events_applied == 3
    assert all("WORKER_USER_RATE_PER_S" in dl.message for dl in letters)

    # five seconds later the bot has five tokens again, not a new burst
    later = [event(100 + n, "bot", T0 + 5) for n in range(8)]
    out = run(later)
    assert out.applied == 5 and len(out.dead_letters) == 3
    assert loads(table["bot"]).events_applied == 15


@pytest.mark.model
def test_text_in_a_domain_without_catalogue_items_is_dead_lettered(runtime: Runtime) -> None:
    # Item events are vouched for by their item's domain; text alone is not. Without this a
    # user's state would grow a domain per made-up name (text space accepts any name).
    world, proc = _world_and_processor(runtime, WorkerSettings(top_k=3))
    table: dict[str, bytes] = {}
    known = world.items[0].domain

    def search(n: int, domain: str) -> SourceMessage:
        ev = {"event_id": f"s{n}", "user_id": "u", "domain": domain, "action": "search"}
        ev |= {"text": "cast iron pan", "event_time": T0 + n}
        return SourceMessage("behaviour", 0, n, b"u", json.dumps(ev).encode(), T0)

    msgs = [search(n, f"made-up-{n}") for n in range(20)] + [search(20, known)]
    out = asyncio.run(proc.process(msgs, table.get, lambda u, v, _m: table.__setitem__(u, v)))
    assert [dl.reason for dl in out.dead_letters] == ["unknown_domain"] * 20
    assert "'made-up-0' has no items in the catalogue" in out.dead_letters[0].message
    assert out.applied == 1 and set(loads(table["u"]).domains) == {known}
