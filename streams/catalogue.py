"""The catalogue path: validate item events, encode their text in one batch, upsert vectors.

An item's vector is computed once, here, when its catalogue event arrives; behaviour events look
it up in the vector store instead of encoding again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from inference.blend import InterestModel
from inference.errors import InvalidEventError, ModelError
from store.base import ItemPoint, VectorStore
from streams.behaviour import BatchOutput, _Timer
from streams.deadletter import SourceMessage, reject
from streams.metrics import ENCODER_TEXTS, EVENTS
from streams.records import CatalogueEvent, parse_catalogue
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings


class CatalogueProcessor:
    """Turns catalogue batches into item vectors in the store."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        model: InterestModel,
        store: VectorStore,
        call_store: StoreCaller,
        encode: Callable,
        topic: str,
    ) -> None:
        self.settings = settings
        self.model = model
        self.store = store
        self.call_store = call_store
        self.encode = encode
        self.topic = topic

    async def process(self, msgs: Sequence[SourceMessage]) -> BatchOutput:
        """Upsert (or delete) every valid item of the batch; dead-letter the rest."""
        out = BatchOutput()
        latest: dict[str, tuple[SourceMessage, CatalogueEvent]] = {}
        with _Timer("catalogue_parse"):
            for m in msgs:
                try:
                    ev = parse_catalogue(
                        m.value,
                        max_bytes=self.settings.max_event_bytes,
                        max_text_chars=self.settings.max_text_chars,
                    )
                except InvalidEventError as exc:
                    out.dead_letters.append(reject(m, exc.reason, exc.message))
                    continue
                latest[ev.item_id] = (m, ev)  # a later version of the same item in the batch wins
        upserts = [(m, ev) for m, ev in latest.values() if not ev.deleted]
        deletes = [ev.item_id for _, ev in latest.values() if ev.deleted]
        points: list[ItemPoint] = []
        if upserts:
            with _Timer("encode"):
                vecs = await self.encode([ev.text() for _, ev in upserts])
            ENCODER_TEXTS.labels("catalogue").inc(len(upserts))
            for (m, ev), v in zip(upserts, vecs, strict=True):
                try:
                    vec = self.model.catalogue_vector(ev.item_id, v, ev.domain)
                except ModelError as exc:  # e.g. a domain the fitted model does not know
                    out.dead_letters.append(reject(m, "unknown_domain", str(exc)))
                    continue
                points.append(ItemPoint(ev.item_id, ev.domain, np.asarray(vec, np.float32)))
            with _Timer("store_upsert_items"):
                await self.call_store("upsert_items", self.store.upsert_items, points)
            EVENTS.labels(self.topic, "upserted").inc(len(points))
        if deletes:
            await self.call_store("delete_items", self.store.delete_items, deletes)
            EVENTS.labels(self.topic, "deleted").inc(len(deletes))
        out.applied = len(points) + len(deletes)
        return out
