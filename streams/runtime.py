"""Everything a worker needs besides Kafka: the encoder, the vector store and the model.

Built once per process from settings; the processors share one store caller, so store calls
run one at a time (on the event loop's thread for Qdrant Edge, which holds the GIL anyway; on
one store thread for the other engines), and the encoder runs on its own thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from inference.blend import InterestModel, TextSpaceModel
from inference.drift import DriftParams
from inference.errors import ConfigError, RecommenderError
from inference.interest import InterestParams
from store.base import ItemPoint, VectorStore, chunks
from streams.behaviour import BehaviourProcessor, ServesModel
from streams.catalogue import CatalogueProcessor
from streams.heap import freeze_heap
from streams.metrics import ENCODER_BATCH, ENCODER_DEVICE, ENCODER_SECONDS, MODEL, STAGE_SECONDS
from streams.resilience import store_caller
from streams.settings import WorkerSettings

if TYPE_CHECKING:
    from inference.bundle_model import BundleModel

log = logging.getLogger(__name__)
P = TypeVar("P")


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
    optimize_on_idle: bool = False  # QDRANT_OPTIMIZE_ON_IDLE (Qdrant Edge)
    gc_freeze: bool = False  # WORKER_GC_FREEZE (see streams.heap)
    # The bundle's items were seeded at start: the store held another bundle's (or nothing),
    # so items placed from their text by that one need placing again (streams.app).
    reseeded: bool = False

    def __post_init__(self) -> None:
        self._processors: list[ServesModel] = []
        self._refused: str | None = None  # the last bundle version a reload refused
        self.call_store = store_caller(self.store, self.store_thread, self.max_backoff_s)
        ENCODER_DEVICE.labels(self.encoder.provider).set(1)
        MODEL.info({"version": self.model.version, "provider": str(self.encoder.provider)})

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Encode on the encoder's own thread and record batch size and time."""
        start = time.perf_counter()
        vecs = await self.encoder.encode_async(texts)
        ENCODER_SECONDS.observe(time.perf_counter() - start)
        ENCODER_BATCH.observe(len(texts))
        return vecs

    async def optimize_store(self) -> None:
        """Let the store index the items that arrived since the last build (catalogue idle).

        Qdrant Edge searches items outside its HNSW segments by brute force (~0.2 us per item
        per query, holding the GIL), so a bulk catalogue load must be indexed before the
        behaviour stream relies on it. A no-op unless enough new items wait; a real build
        pauses the worker for seconds (the engine holds the GIL), hence only when idle.
        """
        if not self.optimize_on_idle:
            return
        start = time.perf_counter()
        await self.call_store("optimize", self.store.optimize)
        took = time.perf_counter() - start
        STAGE_SECONDS.labels("store_optimize").observe(took)
        if took > 0.5:
            log.info("indexed new items in %.1f s: %s", took, _index_stats(self.store))

    def settle_heap(self, reason: str) -> None:
        """Freeze the long-lived heap now (``WORKER_GC_FREEZE``; see ``streams.heap``)."""
        if self.gc_freeze:
            freeze_heap(reason)

    def behaviour_processor(self, worker: WorkerSettings, topic: str) -> BehaviourProcessor:
        return self._track(
            BehaviourProcessor(
                settings=worker,
                params=self.params,
                model=self.model,
                store=self.store,
                call_store=self.call_store,
                encode=self.encode,
                topic=topic,
            )
        )

    def catalogue_processor(self, worker: WorkerSettings, topic: str) -> CatalogueProcessor:
        return self._track(
            CatalogueProcessor(
                settings=worker,
                model=self.model,
                store=self.store,
                call_store=self.call_store,
                encode=self.encode,
                topic=topic,
            )
        )

    def _track(self, processor: P) -> P:
        self._processors.append(processor)
        return processor

    async def maybe_reload(self, folder: Path) -> bool:
        """Swap in the bundle at ``folder`` when its version changed; keep serving otherwise.

        Loading runs off the event loop and seeding in chunks with the loop running between
        them; the swap itself is between two batches, and user states follow lazily (each is
        rebased onto the new item space when next touched).
        """
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return False  # being rewritten, or gone: try again at the next tick
        version = f"bundle@{manifest.get('version')}"
        if version in (self.model.version, self._refused):
            return False  # serving it, or refused it (tried again when the version changes)
        loop = asyncio.get_running_loop()
        try:
            model = await loop.run_in_executor(
                None,
                load_bundle_model,
                folder,
                self.encoder.model_version,
                getattr(self.model, "drift", None),
            )
            try:
                await self.call_store(
                    "seed_bundle", self.store.ensure_collections, model.stored_dim
                )
            except ConfigError:  # another vector size: the old bundle keeps serving, and
                self._refused = version  # this version is not loaded again on every tick
                raise
            await self._seed(model)
        except RecommenderError as exc:  # e.g. a bundle still being copied: tried again
            log.error("not reloading bundle %s (%s): %s", folder, version, exc)
            return False
        self.model = model
        self.params = model.interest_params(self.params)
        for proc in self._processors:  # each takes it when its next batch starts
            proc.serve(model, self.params if hasattr(proc, "params") else None)
        MODEL.info({"version": model.version, "provider": str(self.encoder.provider)})
        log.info("now serving %s", model.version)
        self.settle_heap("bundle reload")  # frees the old model's reference cycles
        return True

    async def _seed(self, model: BundleModel, batch: int = 1024) -> None:
        """``seed_bundle_items`` a chunk per store call, the event loop running in between
        (Qdrant Edge calls run inline: one call for a whole bundle would hold the loop, its
        heartbeats and scrapes included, for seconds)."""
        points = model.bootstrap_points()
        if await self.call_store("seed_bundle", holds_bundle, self.store, points):
            return
        for chunk in bundle_chunks(points, batch):
            await self.call_store("seed_bundle", self.store.upsert_items, chunk)
            await asyncio.sleep(0)  # an inline call never yields by itself
        log.info("seeded %d items of %s into the store", len(points), model.version)

    def close(self) -> None:
        self.store_thread.shutdown(wait=True)
        self.store.close()


def build_runtime(
    model_settings: object, qdrant_settings: object, worker: WorkerSettings
) -> Runtime:
    """Load the encoder, open the store, and pick the interest model the settings ask for.

    With ``WORKER_BUNDLE_DIR`` the fitted bundle (``xrec eval-transfer --bundle-out DIR``)
    serves: its items are seeded into the store once; without it, items live in the text
    encoder's space.
    """
    from inference.encoder import TextEncoder
    from store.factory import open_store

    encoder = TextEncoder(model_settings)
    store = open_store(qdrant_settings)
    params = InterestParams(recent_items=worker.recent_items)
    drift = DriftParams(adaptive=worker.drift_adaptive, online_mix=worker.drift_online_mix)
    model: InterestModel
    reseeded = False
    if worker.bundle_dir is not None:
        model = load_bundle_model(worker.bundle_dir, encoder.model_version, drift)
        params = model.interest_params(params)
        store.ensure_collections(model.stored_dim)
        reseeded = seed_bundle_items(store, model) > 0
    else:
        model = TextSpaceModel(version=encoder.model_version, drift=drift)
        store.ensure_collections(encoder.dim)
    optimize = getattr(qdrant_settings, "optimize_on_idle", False)
    if optimize:
        # Before consuming: a restarted worker finds its catalogue still waiting for HNSW
        # when it stopped mid-load (or the bundle's items were just seeded).
        start = time.perf_counter()
        store.optimize()
        log.info("store indexed in %.1f s: %s", time.perf_counter() - start, _index_stats(store))
    log.info(
        "model %s; encoder %s on %s; store %s",
        model.version,
        encoder.model_version,
        encoder.provider,
        store,
    )
    return Runtime(
        encoder,
        store,
        model,
        params,
        max_backoff_s=worker.store_retry_max_s,
        optimize_on_idle=optimize,
        gc_freeze=worker.gc_freeze,
        reseeded=reseeded,
    )


def load_bundle_model(
    folder: Path, encoder_version: str, drift: DriftParams | None = None
) -> BundleModel:
    """Load a bundle and check it was fitted for this text encoder."""
    from inference.bundle import ModelBundle
    from inference.bundle_model import BundleModel

    if not folder.is_dir():
        raise ConfigError(
            f"WORKER_BUNDLE_DIR={folder} is not a folder: fit one with "
            "`xrec eval-transfer --bundle-out DIR` first, or unset WORKER_BUNDLE_DIR to serve "
            "in the text space"
        )
    model = BundleModel(ModelBundle.load(folder), drift=drift or DriftParams())
    fitted_for = model.bundle.text_model
    # The fit records the encoder version plus its precision variant (e.g. ...@3288c04a-fp32).
    if fitted_for and not fitted_for.startswith(encoder_version):
        raise ConfigError(
            f"bundle {folder} was fitted for text encoder {fitted_for}, the worker "
            f"runs {encoder_version}: set MODEL_DIR to that model or refit"
        )
    return model


def holds_bundle(store: VectorStore, points: list[tuple[str, str, np.ndarray]]) -> bool:
    """Whether the store already holds these bundle points (first and last vector, count)."""
    probe = store.get_items([points[0][0], points[-1][0]]) if points else {}
    return (
        len(probe) == 2
        and all(np.allclose(probe[i].vector, v, atol=1e-5) for i, _, v in (points[0], points[-1]))
        and store.count_items() >= len(points)
    )


def bundle_chunks(
    points: list[tuple[str, str, np.ndarray]], batch: int
) -> Iterator[list[ItemPoint]]:
    """The bundle's points as item points, ``batch`` per upsert."""
    for chunk in chunks(points, batch):
        yield [ItemPoint(i, d, v) for i, d, v in chunk]


def seed_bundle_items(store: VectorStore, model: BundleModel, batch: int = 1024) -> int:
    """Upsert the bundle's fitted items unless the store already holds this bundle's vectors."""
    points = model.bootstrap_points()
    if holds_bundle(store, points):
        return 0
    for chunk in bundle_chunks(points, batch):
        store.upsert_items(chunk)
    log.info("seeded %d items of %s into the store", len(points), model.version)
    return len(points)


def _index_stats(store: VectorStore) -> dict:
    """The engine's index figures for a log line (only Qdrant Edge has them)."""
    stats = getattr(store, "index_stats", None)
    return stats() if stats is not None else {}
