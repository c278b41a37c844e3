"""The benchmark's worker processes: N ``xrec worker`` processes of one consumer group.

Each has its own web port, log, Faust data folder and embedded Qdrant Edge store; each reads
the whole catalogue into its store (see ``streams.catalogue_replica``), the group splits the
behaviour partitions between them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import rss_bytes
from streams.broker import free_port
from streams.processes import scrape, start_worker_process, wait_for, wait_metric


@dataclass
class WorkerPool:
    """Started worker processes; ``stop`` ends them all."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        n: int,
        *,
        bootstrap: str,
        model_dir: Path,
        root: Path,
        app_id: str,
        env: dict[str, str],
    ) -> WorkerPool:
        pool = cls()
        for i in range(n):
            name = f"worker-{i}" if n > 1 else "worker"
            port = free_port()
            log = root / f"{name}.log"
            pool.procs.append(
                start_worker_process(
                    bootstrap,
                    web_port=port,
                    model_dir=model_dir,
                    qdrant_path=root / f"qdrant-{i}",
                    app_id=app_id,
                    log_path=log,
                    extra_env={**env, "WORKER_DATA_DIR": str(root / f"{name}-data")},
                )
            )
            pool.ports.append(port)
            pool.logs.append(log)
        return pool

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_serving(self, timeout_s: float) -> None:
        for port, proc, log in zip(self.ports, self.procs, self.logs, strict=True):
            wait_for(lambda port=port: bool(scrape(port)), timeout_s, f"web server ({log})", proc)

    def wait_catalogue(self, n_items: int, timeout_s: float) -> None:
        """Until every worker's store holds ``n_items`` items (each reads all of them)."""
        for port, proc, log in zip(self.ports, self.procs, self.logs, strict=True):
            wait_metric(
                port,
                "xrec_events_total",
                n_items,
                timeout_s,
                f"{n_items} catalogue items indexed (log: {log})",
                proc,
                outcome="upserted",
            )

    def rss_mib(self) -> list[float]:
        return [round(rss_bytes(pid) / 2**20, 1) for pid in self.pids]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
