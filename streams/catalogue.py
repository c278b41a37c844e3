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
from streams.deadletter import SourceMessage, key_mismatch, reject
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
        """Upsert (or delete) every valid item of the batch; dead-letter the rest.

        An item's last version in the batch wins. When the model refuses it (a domain the
        bundle does not know), the version before it is applied instead, as one message at a
        time would have left the item, so the outcome does not depend on batch boundaries.
        """
        self._take_served()
        out = BatchOutput()
        versions: dict[str, list[tuple[SourceMessage, CatalogueEvent]]] = {}
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
                letter = key_mismatch(m, ev.item_id, "item_id")
                if letter is not None:
                    out.dead_letters.append(letter)
                    continue
                versions.setdefault(ev.item_id, []).append((m, ev))
        points: list[ItemPoint] = []
        deletes: list[str] = []
        todo = [vs[-1] for vs in versions.values()]
        while todo:  # a second round only for items whose last version was refused
            todo = await self._place(todo, versions, points, deletes, out)
        if points:
            with STAGE_SECONDS.labels("store_upsert_items").time():
                await self.call_store("upsert_items", self.store.upsert_items, points)
            EVENTS.labels(self.topic, "upserted").inc(len(points))
        if deletes:
            await self.call_store("delete_items", self.store.delete_items, deletes)
            EVENTS.labels(self.topic, "deleted").inc(len(deletes))
        out.applied = len(points) + len(deletes)
        return out

    async def _place(
        self,
        todo: list[tuple[SourceMessage, CatalogueEvent]],
        versions: dict[str, list[tuple[SourceMessage, CatalogueEvent]]],
        points: list[ItemPoint],
        deletes: list[str],
        out: BatchOutput,
    ) -> list[tuple[SourceMessage, CatalogueEvent]]:
        """Add each version's point (or delete) to ``points`` / ``deletes``; return the earlier
        versions of the items whose version the model refused."""
        deletes.extend(ev.item_id for _, ev in todo if ev.deleted)
        upserts = [(m, ev) for m, ev in todo if not ev.deleted]
        earlier = []
        for (m, ev), v in zip(upserts, await self._text_vectors(upserts), strict=True):
            try:
                vec = self.model.catalogue_vector(ev.item_id, v, ev.domain)
            except ModelError as exc:  # e.g. a domain the fitted model does not know
                out.dead_letters.append(reject(m, "unknown_domain", str(exc)))
                older = versions[ev.item_id]
                older.pop()
                if older:
                    earlier.append(older[-1])
                continue
            points.append(ItemPoint(ev.item_id, ev.domain, np.asarray(vec, np.float32)))
        return earlier

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
