"""The worker's HTTP surface: ``/metrics`` for Prometheus and ``/healthz`` for probes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import REGISTRY

if TYPE_CHECKING:
    import faust

    from streams.runtime import Runtime


def register_views(app: faust.App, runtime: Runtime) -> None:
    """Add the two views to the Faust web server."""

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ready = app.rebalancing is False and app.consumer is not None
        status = {
            "status": "ok" if runtime.call_store.available else "degraded",
            "store_available": runtime.call_store.available,
            "ready": bool(ready),
            "model_version": runtime.model.version,
            "encoder_provider": str(runtime.encoder.provider),
        }
        return web.json(status, status=200 if runtime.call_store.available else 503)
