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
from streams.behaviour import BatchOutput, ServesModel
from streams.deadletter import SourceMessage, reject
from streams.metrics import ENCODER_TEXTS, EVENTS, STAGE_SECONDS
from streams.records import CatalogueEvent, parse_catalogue
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings


class CatalogueProcessor(ServesModel):
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
        self._take_served()
        out = BatchOutput()
        latest: dict[str, tuple[SourceMessage, CatalogueEvent]] = {}
        with STAGE_SECONDS.labels("catalogue_parse").time():
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
                if m.key != ev.item_id.encode():
                    # An item's versions apply in order only on one partition: its key's.
                    why = "no key" if m.key is None else f"key {m.key[:64]!r}"
                    out.dead_letters.append(
                        reject(m, "bad_key", f"{why}: catalogue events are keyed by their item_id")
                    )
                    continue
                latest[ev.item_id] = (m, ev)  # a later version of the same item in the batch wins
        upserts = [(m, ev) for m, ev in latest.values() if not ev.deleted]
        deletes = [ev.item_id for _, ev in latest.values() if ev.deleted]
        points: list[ItemPoint] = []
        if upserts:
            vecs = await self._text_vectors(upserts)
            for (m, ev), v in zip(upserts, vecs, strict=True):
                try:
                    vec = self.model.catalogue_vector(ev.item_id, v, ev.domain)
                except ModelError as exc:  # e.g. a domain the fitted model does not know
                    out.dead_letters.append(reject(m, "unknown_domain", str(exc)))
                    continue
                points.append(ItemPoint(ev.item_id, ev.domain, np.asarray(vec, np.float32)))
            with STAGE_SECONDS.labels("store_upsert_items").time():
                await self.call_store("upsert_items", self.store.upsert_items, points)
            EVENTS.labels(self.topic, "upserted").inc(len(points))
        if deletes:
            await self.call_store("delete_items", self.store.delete_items, deletes)
            EVENTS.labels(self.topic, "deleted").inc(len(deletes))
        out.applied = len(points) + len(deletes)
        return out

    async def _text_vectors(
        self, upserts: list[tuple[SourceMessage, CatalogueEvent]]
    ) -> list[np.ndarray | None]:
        """Encoded text per item, in one encoder call; None where the model needs no text.

        Items of a fitted bundle keep their collaborative vectors (the model ignores the text),
        and the CPU encoder does ~100-300 titles/s on 2 cores: re-encoding a catalogue the
        bundle already knows would cost minutes for nothing.
        """
        fitted = _fitted(self.model)
        todo = [i for i, (_, ev) in enumerate(upserts) if not fitted(ev.item_id)]
        out: list[np.ndarray | None] = [None] * len(upserts)
        if todo:
            with STAGE_SECONDS.labels("encode").time():
                vecs = await self.encode([upserts[i][1].text() for i in todo])
            ENCODER_TEXTS.labels("catalogue").inc(len(todo))
            for i, v in zip(todo, vecs, strict=True):
                out[i] = v
        return out


def _fitted(model: InterestModel) -> Callable[[str], bool]:
    """Whether the model has its own fitted vector for an item (a bundle's items), not text."""
    index_of = getattr(getattr(model, "bundle", None), "index_of", None)
    if index_of is None:
        return lambda _item_id: False
    return lambda item_id: index_of(item_id) is not None
