"""Start one worker process: create topics, load the runtime, run the Faust app until stopped."""

from __future__ import annotations

import asyncio
import logging

from streams.settings import EventLoop, KafkaSettings, WorkerSettings

log = logging.getLogger(__name__)


def new_event_loop(kind: EventLoop) -> asyncio.AbstractEventLoop:
    """A fresh event loop of ``kind`` (``WORKER_EVENT_LOOP``), set as this process's policy.

    The policy, not only the loop: Faust runs the Kafka consumer in a thread of its own whose
    loop comes from ``asyncio.new_event_loop()``.
    """
    if kind is EventLoop.UVLOOP:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    return asyncio.new_event_loop()


def run_worker(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    model_settings: object,
    qdrant_settings: object,
    loglevel: str = "info",
) -> None:
    """Block running the worker; returns when it is stopped (SIGTERM / SIGINT)."""
    import faust

    from streams.app import build_app
    from streams.heap import install_gc_metrics
    from streams.runtime import build_runtime
    from streams.topics import ensure_topics

    install_gc_metrics()
    loop = new_event_loop(worker.event_loop)
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(kafka, worker))
    runtime = build_runtime(model_settings, qdrant_settings, worker)
    app = build_app(kafka, worker, runtime)
    log.info(
        "worker %s: broker %s, web http://%s:%d/metrics",
        worker.app_id,
        kafka.bootstrap,
        worker.web_host,
        worker.web_port,
    )
    try:
        faust.Worker(
            app, loop=loop, loglevel=loglevel, redirect_stdouts=False, override_logging=False
        ).execute_from_commandline()
    finally:
        runtime.close()
