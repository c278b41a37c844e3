"""The worker's HTTP surface: ``/metrics`` for Prometheus and ``/healthz`` for probes, only.

Faust's web server mounts its own blueprints by default: ``/router/`` (cluster topology),
``/table/`` (table names and *values* by key), ``/`` (a status page), and, when the
``APP_WEB_*_ENABLED`` variables or ``debug`` turn them on, ``/stats/``, ``/assignment/``,
``/graph/`` and ``/performance/``. The users table holds every user's interest state, so none
of that may be served: :func:`register_views` empties Faust's blueprint list before the server
starts, whatever the Faust settings or environment say, and every other path answers 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faust.web.base import BlueprintManager
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import REGISTRY

if TYPE_CHECKING:
    import faust

    from streams.runtime import Runtime

#: The only paths the worker serves (GET and HEAD).
PATHS = ("/metrics", "/healthz")


def register_views(
    app: faust.App,
    runtime: Runtime,
    catalogue_caught_up: Callable[[], bool],
    publish_pending_s: Callable[[], float],
    publish_stall_s: float,
    behaviour_partitions: Callable[[], set[int]],
) -> None:
    """Serve the two views and nothing else on the Faust web server.

    ``ready`` in /healthz: the worker has recovered its tables for its partitions, no
    rebalance is under way, and its store has read the catalogue up to where it stood at start
    (stores inside the worker); until then ``status`` is ``not_ready`` (HTTP 503), so a
    rollout waits for it. ``status`` is ``degraded`` (HTTP 503) while the store is down or a
    batch has waited ``publish_stall_s`` for the broker's acknowledgements: the worker rides
    either out (it backs off, or waits up to the producer's request timeout before it stops),
    so a probe should take it out of service, not restart it. ``partitions``: the
    behaviour partitions this worker holds now.
    """
    # Blueprints are applied when the server starts (Web.init_server): an empty manager here
    # means Faust's own views are never mounted. Checked against a running worker in
    # tests/streams/test_security.py.
    app.web.blueprints = BlueprintManager()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        caught_up = catalogue_caught_up()
        recovered = app.tables.recovery.completed.is_set()  # set once, after the first join
        ready = recovered and not app.rebalancing and caught_up
        pending = publish_pending_s()
        stalled = pending >= publish_stall_s
        healthy = runtime.call_store.available and not stalled
        status = {
            "status": ("ok" if ready else "not_ready") if healthy else "degraded",
            "store_available": runtime.call_store.available,
            "publish_pending_s": round(pending, 3),
            "publish_stalled": stalled,
            "ready": bool(ready),
            "catalogue_caught_up": caught_up,
            "model_version": runtime.model.version,
            "encoder_provider": str(runtime.encoder.provider),
            "partitions": sorted(behaviour_partitions()),
        }
        return web.json(status, status=200 if healthy and ready else 503)
