"""Worker processes for the demo, the tests and the benchmarks: start, watch, stop.

A worker is started as ``xrec worker`` with its settings in its environment, and watched
through its own HTTP surface (``/metrics``), as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# Settings that connect a worker to a broker / a store. A child meant for a broker or store of
# the caller's own must not inherit the shell's (the demo, run in an operator's shell, wrote
# into their real Qdrant, or authenticated against its plaintext local broker).
KAFKA_CONNECTION = ("KAFKA_BOOTSTRAP", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_", "KAFKA_SSL_")
QDRANT_CONNECTION = ("QDRANT_URL", "QDRANT_API_KEY", "QDRANT_LOCAL_MODE")


def worker_env(overrides: dict[str, str], drop: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment without the variables starting with any of ``drop``, plus
    ``overrides``."""
    inherited = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    return {**inherited, **overrides}


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for one run's broker and worker logs, stores and state.

    Removed when the run ends well (every benchmark run left megabytes in the temp folder);
    kept when it fails, and named on stderr, as its logs are what explains the failure.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        print(f"the failed run's logs and stores are kept in {path}", file=sys.stderr)
        raise
    shutil.rmtree(path, ignore_errors=True)


def start_worker_process(
    bootstrap: str,
    *,
    web_port: int,
    model_dir: Path,
    qdrant_path: Path,
    app_id: str = "xrec",
    log_path: Path | None = None,
    extra_env: dict[str, str] | None = None,
    drop_env: tuple[str, ...] = (),
    own_session: bool = False,
    command: Sequence[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``xrec worker`` (or ``command``, a stand-in for it) as a child process
    configured only through its env vars.

    It inherits this environment less ``drop_env`` (see :data:`KAFKA_CONNECTION`), with
    ``extra_env`` on top. ``own_session``: in a session of its own, so that a terminal's Ctrl-C
    reaches only the parent, which stops it in order (the demo); otherwise it shares the
    caller's process group, which kills aimed at the group (a CI job's) then reach too.
    """
    env = worker_env(
        {
            "KAFKA_BOOTSTRAP": bootstrap,
            "WORKER_WEB_PORT": str(web_port),
            "WORKER_APP_ID": app_id,
            "MODEL_DIR": str(model_dir),
            "QDRANT_PATH": str(qdrant_path),
            "MODEL_PROVIDER": os.environ.get("MODEL_PROVIDER", "cpu"),
            **(extra_env or {}),
        },
        drop_env,
    )
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        list(command or (sys.executable, "-m", "streams.cli", "worker")),
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=own_session,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM (the worker's graceful stop), then SIGKILL if it has not exited in time."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def log_tail(path: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def scrape(port: int, timeout_s: float = 2.0) -> str:
    """The worker's /metrics text, or '' while it is not serving yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (tiny text parser)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def wait_for(
    predicate: Callable[[], object],
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` on timeout or if ``proc`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def wait_metric(
    port: int,
    name: str,
    at_least: float,
    timeout_s: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    **labels: str,
) -> None:
    """Poll the worker's /metrics on ``port`` until ``name{labels}`` sums to ``at_least``."""
    wait_for(lambda: metric_sum(scrape(port), name, **labels) >= at_least, timeout_s, what, proc)
