"""Wire records: flat JSON objects, validated at the edge before anything else sees them.

A record that fails here never reaches the state: the agent dead-letters its original bytes
with the ``reason`` of the InvalidEventError raised by the ``parse_*`` functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from inference.errors import InvalidEventError

Id = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Domain = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
# Numbers as JSON numbers: lax parsing would take "4" and true (a rating of 1: a strong dislike).
Number = Annotated[float, Field(strict=True)]
# Event times are epoch seconds; anything before 2000 or more than a day ahead is a bug upstream.
EPOCH_MIN = 946_684_800.0
FUTURE_SLACK_S = 86_400.0


class Action(StrEnum):
    """What a user did. Item actions name an item; text actions carry free text."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"
    RATING = "rating"
    REVIEW = "review"
    SEARCH = "search"
    SKIP = "skip"  # negative feedback: shown and ignored / dismissed
    DISLIKE = "dislike"


ITEM_ACTIONS = frozenset(
    {
        Action.VIEW,
        Action.CLICK,
        Action.CART,
        Action.PURCHASE,
        Action.RATING,
        Action.REVIEW,
        Action.SKIP,
        Action.DISLIKE,
    }
)
TEXT_ACTIONS = frozenset({Action.SEARCH, Action.REVIEW})


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


_R = TypeVar("_R", bound=_Record)


class CatalogueEvent(_Record):
    """A new or changed item (topic ``catalogue``, key = item id)."""

    item_id: Id
    domain: Domain
    title: Annotated[str, StringConstraints(min_length=1)]
    description: str = ""
    category: str = ""
    deleted: Annotated[bool, Field(strict=True)] = False  # lax would read "yes" or 1 as true
    event_time: Number | None = None

    def text(self) -> str:
        """The text the encoder sees for this item."""
        return " | ".join(p for p in (self.title, self.category, self.description) if p)


class BehaviourEvent(_Record):
    """One thing a user did (topic ``behaviour``, key = user id)."""

    event_id: Id
    user_id: Id
    domain: Domain
    action: Action
    event_time: Number
    item_id: Id | None = None
    # Several items in one event (a basket bought, a slate skipped); exclusive with item_id.
    item_ids: list[Id] | None = None
    text: str | None = None
    rating: Annotated[float, Field(strict=True, ge=0, le=5)] | None = None

    def items(self) -> tuple[str, ...]:
        """The items this event names (none, one, or a basket)."""
        if self.item_ids:
            return tuple(self.item_ids)
        return (self.item_id,) if self.item_id is not None else ()


class RecommendedItem(_Record):
    item_id: str
    score: float


class Explanation(_Record):
    """Which domains' interest produced a recommendation, and how much each counted."""

    strategy: str
    weights: dict[str, float]
    # items of the list that came from the user's short-term interest alone (written only when
    # above 0, so unsplit lists read as before it existed)
    short_term_items: int = Field(0, ge=0)


class RecommendationEvent(_Record):
    """Top items for one user in one target domain (topic ``recommendations``, key = user id)."""

    user_id: str
    domain: str
    source_event_id: str
    items: list[RecommendedItem]
    model_version: str
    explanation: Explanation
    event_time: float
    produced_at: float


class ScoredItem(NamedTuple):
    """One recommended item and its score (a RecommendedItem on the wire)."""

    item_id: str
    score: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    """An outgoing recommendation as the worker builds it; on the wire a RecommendationEvent.

    Built from the worker's own values, so it is not validated again: building the pydantic
    model per record cost ~50 ms per micro-batch of 360 recommendations, a dataclass ~5 ms.
    ``tests/streams/test_records.py`` checks that ``to_json`` parses as a RecommendationEvent.
    """

    user_id: str
    domain: str
    source_event_id: str
    items: tuple[ScoredItem, ...]
    model_version: str
    strategy: str
    weights: Mapping[str, float]
    event_time: float
    produced_at: float
    short_term_items: int = 0

    def to_json(self) -> bytes:
        """The RecommendationEvent JSON of this record (non-finite numbers raise ValueError)."""
        explanation: dict[str, Any] = {
            "strategy": self.strategy,
            "weights": {k: float(v) for k, v in self.weights.items()},
        }
        if self.short_term_items:
            explanation["short_term_items"] = self.short_term_items
        doc = {
            "user_id": self.user_id,
            "domain": self.domain,
            "source_event_id": self.source_event_id,
            "items": [{"item_id": i, "score": s} for i, s in self.items],
            "model_version": self.model_version,
            "explanation": explanation,
            "event_time": self.event_time,
            "produced_at": self.produced_at,
        }
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def _load(raw: bytes | str | None, max_bytes: int) -> dict[str, Any]:
    if raw is None or len(raw) == 0:  # a tombstone, or a zero-length value
        raise InvalidEventError("empty", "the message has no value")
    if len(raw) > max_bytes:
        raise InvalidEventError("oversize", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        # Strict UTF-8 (a BOM is tolerated): json.loads(bytes) would also take UTF-16/32 and let
        # encoded surrogates (b"\xed\xa0\x80") through as lone surrogates ("surrogatepass").
        obj = json.loads(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)
    except ValueError as exc:
        # bad UTF-8 and bad JSON, and also an integer of more than 4,300 digits (Python's
        # int-from-string limit), whose plain ValueError used to fail the whole micro-batch
        raise InvalidEventError("unparseable", str(exc)[:200]) from exc
    except RecursionError as exc:
        # A few KB of "[[[[..." nest deeper than the interpreter's stack: without this the
        # error escaped the parser and failed the whole micro-batch (found by fuzzing).
        raise InvalidEventError("unparseable", "JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise InvalidEventError("schema", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _validate(model: type[_R], obj: dict[str, Any]) -> _R:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<record>"
        raise InvalidEventError("schema", f"{where}: {first['msg']}") from exc


def _check_text(name: str, value: str | None, max_chars: int) -> None:
    if value is not None and len(value) > max_chars:
        raise InvalidEventError("oversize", f"{name} has {len(value)} chars > limit {max_chars}")


def _check_time(t: float | None, now: float) -> None:
    if t is None:
        return
    if not math.isfinite(t) or t < EPOCH_MIN or t > now + FUTURE_SLACK_S:
        raise InvalidEventError("bad_time", f"event_time {t!r} is not a plausible epoch second")


def parse_catalogue(raw: bytes | None, *, max_bytes: int, max_text_chars: int) -> CatalogueEvent:
    """Decode and validate a catalogue record, or raise InvalidEventError."""
    event = _validate(CatalogueEvent, _load(raw, max_bytes))
    for name in ("title", "description", "category"):
        _check_text(name, getattr(event, name), max_text_chars)
    _check_time(event.event_time, time.time())
    return event


def parse_behaviour(
    raw: bytes | None, *, max_bytes: int, max_text_chars: int, max_items: int = 100
) -> BehaviourEvent:
    """Decode and validate a behaviour record, or raise InvalidEventError."""
    obj = _load(raw, max_bytes)
    # Checked before validation so a 100k-item list is refused without validating each id.
    listed = obj.get("item_ids")
    if isinstance(listed, list) and len(listed) > max_items:
        raise InvalidEventError("too_many_items", f"{len(listed)} item_ids > limit {max_items}")
    if isinstance(obj.get("action"), str) and obj["action"] not in Action._value2member_map_:
        raise InvalidEventError(
            "unknown_action",
            f"action {obj['action']!r} is not one of {', '.join(a.value for a in Action)}",
        )
    event = _validate(BehaviourEvent, obj)
    _check_text("text", event.text, max_text_chars)
    _check_time(event.event_time, time.time())
    if event.item_id is not None and event.item_ids is not None:
        raise InvalidEventError("schema", "give item_id or item_ids, not both")
    if event.item_ids is not None and len(set(event.item_ids)) != len(event.item_ids):
        raise InvalidEventError("schema", "item_ids repeats an item")
    if event.action in ITEM_ACTIONS and not event.items():
        raise InvalidEventError("schema", f"action {event.action.value} needs item_id or item_ids")
    if event.action is Action.SEARCH and not event.text:
        raise InvalidEventError("schema", "action search needs text")
    if event.action is Action.RATING and event.rating is None:
        raise InvalidEventError("schema", "action rating needs rating (0-5)")
    return event


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of every wire record, for the README and for producers."""
    return {
        m.__name__: m.model_json_schema()
        for m in (CatalogueEvent, BehaviourEvent, RecommendationEvent)
    }
