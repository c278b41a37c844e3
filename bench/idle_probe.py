"""What an idle worker and its broker cost, per fetch wait (``KAFKA_FETCH_MAX_WAIT_MS``).

``python -m bench.idle_probe`` starts the local broker (Tansu) and, for each wait in turn, one
worker with nothing to consume; after the worker has joined its group it measures the CPU of the
worker and of the broker process over ``--seconds``. A shorter wait lowers every event's latency
on a broker that holds a fetch for the whole wait (see ``streams.consumer``) and costs this much
more polling while there is no traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from bench.report import cpu_seconds, emit_probe
from streams.broker import free_port, start_broker
from streams.processes import scrape, scratch_dir, start_worker_process, wait_for


def idle_cores(
    waits: list[int], seconds: float, settle_s: float, model_dir: Path
) -> dict[str, dict[str, float]]:
    """Cores used by an idle worker and by the broker, for each fetch wait in ``waits``."""
    out: dict[str, dict[str, float]] = {}
    with scratch_dir("xrec-idle-") as tmp, contextlib.ExitStack() as running:
        broker = start_broker(log_path=tmp / "tansu.log")
        running.callback(broker.stop)  # after the worker, before the scratch folder goes
        for wait in waits:
            port, app_id = free_port(), f"idle-{wait}"
            proc = start_worker_process(
                broker.bootstrap,
                web_port=port,
                model_dir=model_dir,
                qdrant_path=tmp / app_id / "qdrant",
                app_id=app_id,
                log_path=tmp / f"{app_id}.log",
                extra_env={
                    "KAFKA_FETCH_MAX_WAIT_MS": str(wait),
                    "WORKER_DATA_DIR": str(tmp / app_id / "worker"),
                },
            )
            try:
                wait_for(lambda p=port: bool(scrape(p)), 120, "worker web server", proc)
                time.sleep(settle_s)  # group join, table recovery, the start-up freeze
                w0, b0 = cpu_seconds(proc.pid), cpu_seconds(broker.process.pid)
                t0 = time.time()
                time.sleep(seconds)
                dt = time.time() - t0
                out[f"fetch_max_wait_{wait}ms"] = {
                    "worker_cores": round((cpu_seconds(proc.pid) - w0) / dt, 4),
                    "broker_cores": round((cpu_seconds(broker.process.pid) - b0) / dt, 4),
                }
            finally:
                proc.terminate()
                proc.wait(30)
    return out


def main(argv: list[str] | None = None) -> int:
    from exporter.onnx_export import ensure_exported

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--waits", type=int, nargs="+", default=[100, 20], help="fetch waits, ms")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured idle time per wait")
    ap.add_argument("--settle-s", type=float, default=15.0, help="wait after start-up")
    ap.add_argument("--model-dir", type=Path, default=Path("models/all-MiniLM-L6-v2"))
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    return emit_probe(
        "idle_probe",
        f"python -m bench.idle_probe --waits {' '.join(map(str, a.waits))} --seconds {a.seconds:g}",
        idle_cores(a.waits, a.seconds, a.settle_s, ensure_exported(a.model_dir)),
        a.out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
