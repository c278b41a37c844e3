"""The one-command demo (`xrec demo`): runs end to end, ignores the shell's connections, and
stops cleanly on Ctrl-C. Real local broker, real worker process, real model."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inference.errors import ConfigError
from streams.broker import free_port, start_broker
from streams.processes import KAFKA_CONNECTION, QDRANT_CONNECTION, worker_env

REPO = Path(__file__).resolve().parents[2]

# What an operator's shell might hold: nothing answers at these, so a demo that read them
# would fail (QDRANT_URL) or never reach its own broker (KAFKA_*).
FOREIGN_ENV = {
    "KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_USERNAME": "svc",
    "KAFKA_SASL_PASSWORD": "secret",
    "QDRANT_URL": "http://127.0.0.1:1",
}


def _demo(model_dir: Path, web_port: int, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **FOREIGN_ENV, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "streams.cli", "demo", "--model-dir", str(model_dir)]
    return subprocess.Popen(
        [*command, "--web-port", str(web_port), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, signalled as a terminal would
    )


class _Lines:
    """Collects a process's output on a thread, so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "\n".join(self.lines)


def _end(proc: subprocess.Popen[str]) -> None:
    """A demo a failing test left running: Ctrl-C (it stops its own broker and worker, which
    run in sessions of their own), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_the_demo_recommends_on_its_own_broker_and_store_whatever_the_shell_says(
    model_dir: Path,
) -> None:
    proc = _demo(model_dir, free_port(), "--users", "8", "--events-per-user", "3")
    out = _Lines(proc)
    try:
        code = proc.wait(timeout=240)
    finally:
        _end(proc)
    text = out.text()
    assert code == 0, text
    assert "catalogue: " in text and "Traceback" not in text
    # a line per recommendation: the event it answers, the domain, the first item's title
    assert re.search(r"user-\d+ likes .* after \w+ \w+ +-> \w+ +\[\w+ *\] .+ \(\w+ #\d+\)", text)
    total = float(re.search(r'"recommendations_total": ([\d.]+)', text).group(1))
    assert total > 0
    assert re.search(r"stopped the worker and the local broker; worker log kept at ", text)


def test_ctrl_c_stops_the_worker_then_the_broker_and_says_so(model_dir: Path) -> None:
    web_port = free_port()
    proc = _demo(
        model_dir, web_port, "--users", "30", "--events-per-user", "200", "--duration-s", "120"
    )
    out = _Lines(proc)
    try:
        broker_port = int(out.wait_for(r"local broker \(Tansu\) on [\d.]+:(\d+)", 120).group(1))
        log = Path(out.wait_for(r"worker started \(log: (\S+)\)", 120).group(1))
        out.wait_for(r"user-\d+ likes", 180)  # recommendations are flowing
        logged = log.stat().st_size
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGINT)  # impatient: again, while it is stopping
        code = proc.wait(timeout=90)
    finally:
        _end(proc)
    text = out.text()
    assert code == 130, text
    assert "interrupted: stopped the worker and the local broker" in text
    assert "Traceback" not in text and "Connect call failed" not in text, text
    # the worker stopped while its broker was still there: no reconnecting to a dead broker
    after = log.read_bytes()[logged:].decode(errors="replace")
    assert "Unable connect" not in after and "Connection refused" not in after, after[-2000:]
    # and nothing was left running: the second Ctrl-C did not cut the clean-up short
    assert not _listening(broker_port) and not _listening(web_port)
    assert log.is_file() and not (log.parent / "qdrant").exists()


def test_a_broker_port_in_use_is_a_config_error_naming_the_setting() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"port {port} .* in use.*XREC_BROKER_PORT"):
            start_broker(port)


def test_a_demo_broker_that_does_not_answer_is_named_by_the_demos_setting(
    model_dir: Path,
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    env = {**os.environ, **FOREIGN_ENV, "XREC_DEMO_BOOTSTRAP": nobody}
    env.pop("KAFKA_SECURITY_PROTOCOL")  # plaintext: the one failure is the address
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo", "--model-dir", str(model_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after aiokafka's own connect errors
    # the demo never reads KAFKA_BOOTSTRAP (here 127.0.0.1:1): naming it would mislead
    assert last.startswith(f"error: XREC_DEMO_BOOTSTRAP={nobody}: could not connect"), last
    assert "KAFKA_BOOTSTRAP" not in last.replace("XREC_DEMO_BOOTSTRAP", "")


def test_a_worker_for_the_callers_own_broker_and_store_inherits_none_of_the_shells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in FOREIGN_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "/etc/ca.pem")
    monkeypatch.setenv("QDRANT_API_KEY", "key")
    monkeypatch.setenv("WORKER_DIVERSITY", "0.3")  # tuning stays
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "50")
    monkeypatch.setenv("QDRANT_HNSW_EF", "64")
    env = worker_env({"KAFKA_BOOTSTRAP": "127.0.0.1:9999"}, KAFKA_CONNECTION + QDRANT_CONNECTION)
    assert env["KAFKA_BOOTSTRAP"] == "127.0.0.1:9999"
    tuning = ("WORKER_DIVERSITY", "KAFKA_FETCH_MAX_WAIT_MS", "QDRANT_HNSW_EF")
    assert [env[k] for k in tuning] == ["0.3", "50", "64"]
    gone = {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}
    gone |= {"KAFKA_SSL_CAFILE", "QDRANT_URL", "QDRANT_API_KEY"}
    assert not gone & set(env)
    # a broker the caller names keeps the shell's security settings; nothing dropped by default
    named = worker_env({"KAFKA_BOOTSTRAP": "kafka:9093"}, QDRANT_CONNECTION)
    assert named["KAFKA_SASL_PASSWORD"] == "secret" and "QDRANT_URL" not in named
    assert worker_env({})["QDRANT_URL"] == FOREIGN_ENV["QDRANT_URL"]


def test_a_worker_metric_that_cannot_be_read_fails_instead_of_reading_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import generate_latest

    import tests.fixtures.worker as fixture
    from streams.metrics import REGISTRY
    from streams.settings import KafkaSettings

    monkeypatch.setattr(fixture, "SCRAPE_RETRY_S", 0.5)
    nobody = fixture.WorkerHandle(
        KafkaSettings(), "app", free_port(), tmp_path, tmp_path, tmp_path / "log"
    )
    with pytest.raises(AssertionError, match="did not answer"):
        nobody.metric("xrec_store_available")
    text = generate_latest(REGISTRY).decode()
    assert fixture.declares(text, "xrec_events_total")
    assert fixture.declares(text, "xrec_stage_seconds_count")  # a histogram's sample
    assert not fixture.declares(text, "xrec_store_availble")
