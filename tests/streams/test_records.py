"""Wire records: valid events parse, every kind of bad input raises with a reason code."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from inference.errors import InvalidEventError
from streams.records import (
    Recommendation,
    RecommendationEvent,
    ScoredItem,
    json_schemas,
    parse_behaviour,
    parse_catalogue,
)

LIMITS = {"max_bytes": 10_000, "max_text_chars": 500}
GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "domain": "books",
    "action": "view",
    "item_id": "i1",
    "event_time": 1_700_000_000.0,
}


def raw(**over: object) -> bytes:
    return json.dumps({**GOOD, **over}).encode()


def test_valid_behaviour_event_parses() -> None:
    ev = parse_behaviour(raw(), **LIMITS)
    assert (ev.user_id, ev.domain, ev.action.value, ev.item_id) == ("u1", "books", "view", "i1")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "unparseable"),
        (b"\xff\xfe\x00garbage", "unparseable"),
        (b"[1, 2]", "schema"),
        (None, "empty"),
        (b"", "empty"),
        (raw(action="teleport"), "unknown_action"),
        (raw(user_id=None), "schema"),
        (raw(event_time="yesterday"), "schema"),
        (raw(event_time="1700000000"), "schema"),  # a number as a string: not taken
        (raw(rating=True, action="rating"), "schema"),  # would have read as 1 star
        (raw(rating="4", action="rating"), "schema"),
        (raw(event_time=-5), "bad_time"),
        (raw(event_time=1e12), "bad_time"),
        (raw(domain="Not A Domain!"), "schema"),
        (raw(item_id=None), "schema"),  # a view needs an item
        (raw(action="search", item_id=None), "schema"),  # a search needs text
        (raw(action="rating"), "schema"),  # a rating needs stars
        (raw(rating=9, action="rating"), "schema"),
        (raw(text="x" * 501, action="search"), "oversize"),
        (raw(extra_field=1), "schema"),
        (b"{" + b" " * 20_000 + b"}", "oversize"),
    ],
)
def test_bad_behaviour_events_raise_with_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_behaviour(payload, **LIMITS)
    assert info.value.reason == reason


def test_catalogue_text_joins_fields_and_limits_apply() -> None:
    ev = parse_catalogue(
        json.dumps({"item_id": "i", "domain": "books", "title": "T", "category": "C"}).encode(),
        **LIMITS,
    )
    assert ev.text() == "T | C"
    with pytest.raises(InvalidEventError) as info:
        parse_catalogue(
            json.dumps({"item_id": "i", "domain": "books", "title": "T" * 600}).encode(), **LIMITS
        )
    assert info.value.reason == "oversize"


@pytest.mark.parametrize("deleted", ["yes", "false", 1])
def test_a_delete_flag_must_be_a_json_boolean(deleted: object) -> None:
    # lax parsing read "yes", "false" and 1 as true: a malformed record deleted the item
    item = {"item_id": "i", "domain": "books", "title": "T", "deleted": deleted}
    with pytest.raises(InvalidEventError) as info:
        parse_catalogue(json.dumps(item).encode(), **LIMITS)
    assert info.value.reason == "schema"
    assert parse_catalogue(json.dumps({**item, "deleted": True}).encode(), **LIMITS).deleted


def test_schemas_cover_every_record() -> None:
    assert set(json_schemas()) == {"CatalogueEvent", "BehaviourEvent", "RecommendationEvent"}


def test_recommendation_json_is_a_valid_recommendation_event() -> None:
    rec = Recommendation(
        user_id="u1",
        domain="kitchen",
        source_event_id="e9",
        items=(ScoredItem("i1", 0.75), ScoredItem("i2", 0.5)),
        model_version="m1",
        strategy="transfer",
        weights={"food": np.float32(0.25), "kitchen": 0.75},
        event_time=1_700_000_000.0,
        produced_at=1_700_000_001.5,
    )
    wire = RecommendationEvent.model_validate_json(rec.to_json())
    assert wire.user_id == "u1" and wire.domain == "kitchen" and wire.source_event_id == "e9"
    assert [(i.item_id, i.score) for i in wire.items] == [("i1", 0.75), ("i2", 0.5)]
    assert wire.explanation.strategy == "transfer"
    assert wire.explanation.weights == {"food": 0.25, "kitchen": 0.75}
    assert (wire.model_version, wire.event_time, wire.produced_at) == ("m1", 1.7e9, 1.7e9 + 1.5)
    with pytest.raises(ValueError):
        replace(rec, items=(ScoredItem("i1", float("nan")),)).to_json()
