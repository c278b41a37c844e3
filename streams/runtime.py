"""Everything a worker needs besides Kafka: the encoder, the vector store and the model.

Built once per process from settings; the processors share one store thread so calls to the
embedded engine never race, and the encoder runs on its own thread, off the event loop.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from inference.blend import InterestModel, TextSpaceModel
from inference.interest import InterestParams
from store.base import VectorStore
from streams.behaviour import BehaviourProcessor
from streams.catalogue import CatalogueProcessor
from streams.metrics import ENCODER_BATCH, ENCODER_DEVICE, ENCODER_SECONDS, MODEL
from streams.resilience import StoreCaller
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The worker's non-Kafka dependencies."""

    encoder: object  # inference.encoder.TextEncoder (duck-typed so tests can pass a real one)
    store: VectorStore
    model: InterestModel
    params: InterestParams = field(default_factory=InterestParams)
    store_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="store")
    )
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        self.call_store = StoreCaller(self.store_thread, self.max_backoff_s)
        ENCODER_DEVICE.labels(self.encoder.provider).set(1)
        MODEL.info({"version": self.model.version, "provider": str(self.encoder.provider)})

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Encode on the encoder's own thread and record batch size and time."""
        import time

        start = time.perf_counter()
        vecs = await self.encoder.encode_async(texts)
        ENCODER_SECONDS.observe(time.perf_counter() - start)
        ENCODER_BATCH.observe(len(texts))
        return vecs

    def behaviour_processor(self, worker: WorkerSettings, topic: str) -> BehaviourProcessor:
        return BehaviourProcessor(
            settings=worker,
            params=self.params,
            model=self.model,
            store=self.store,
            call_store=self.call_store,
            encode=self.encode,
            topic=topic,
        )

    def catalogue_processor(self, worker: WorkerSettings, topic: str) -> CatalogueProcessor:
        return CatalogueProcessor(
            settings=worker,
            model=self.model,
            store=self.store,
            call_store=self.call_store,
            encode=self.encode,
            topic=topic,
        )

    def close(self) -> None:
        self.store_thread.shutdown(wait=True)
        self.store.close()


def build_runtime(
    model_settings: object, qdrant_settings: object, worker: WorkerSettings
) -> Runtime:
    """Load the encoder and open the store described by the settings."""
    from inference.encoder import TextEncoder
    from store.factory import open_store

    encoder = TextEncoder(model_settings)
    store = open_store(qdrant_settings)
    store.ensure_collections(encoder.dim)
    params = InterestParams(recent_items=worker.recent_items)
    model = TextSpaceModel(version=encoder.model_version)
    log.info("encoder %s on %s; store %s", encoder.model_version, encoder.provider, store)
    return Runtime(encoder, store, model, params, max_backoff_s=worker.store_retry_max_s)
