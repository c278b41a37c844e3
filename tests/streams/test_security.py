"""Security: secrets stay secret, TLS/SASL settings reach the clients, input sizes are bounded,
and the worker's HTTP server serves /metrics and /healthz and nothing else."""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import faust
import pytest

from inference.errors import ConfigError, InvalidEventError
from store.factory import describe
from store.settings import QdrantSettings
from streams.app import _credentials
from streams.records import parse_behaviour, parse_catalogue
from streams.settings import KafkaSettings, SecurityProtocol, WorkerSettings
from streams.web import PATHS

SECRET = "s3cr3t-Pa55-do-not-log"
API_KEY = "qdrant-key-do-not-log"
REPO = Path(__file__).resolve().parents[2]
CA_FILE = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def _sasl_ssl(**over: object) -> KafkaSettings:
    return KafkaSettings(
        bootstrap="broker-1:9093,broker-2:9093",
        security_protocol=SecurityProtocol.SASL_SSL,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc-xrec",
        sasl_password=SECRET,
        **over,
    )


def _texts(obj: object) -> list[str]:
    return [repr(obj), str(obj), f"{obj}", f"{obj!r}"]


# --- secrets ---------------------------------------------------------------------------------


def test_kafka_password_never_appears_in_repr_str_dumps_or_logs(caplog) -> None:
    kafka = _sasl_ssl()
    shown = [*_texts(kafka), kafka.model_dump_json(), str(kafka.model_dump()), str(vars(kafka))]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("xrec.test").info("settings %s / %r", kafka, kafka)
    shown.append(caplog.text)
    assert all(SECRET not in s for s in shown)
    assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == SECRET


def test_qdrant_api_key_never_appears_in_repr_dumps_or_the_store_description() -> None:
    q = QdrantSettings(
        url="https://admin:hunter2@qdrant.internal:6333/?api-key=xyz", api_key=API_KEY
    )
    shown = [*_texts(q), q.model_dump_json(), str(q.model_dump()), describe(q)]
    assert all(API_KEY not in s for s in shown)
    # the URL's user info and query string may carry credentials too
    assert describe(q) == (
        "qdrant server at https://qdrant.internal:6333/ (collections items/users, api key set)"
    )


def test_settings_read_secrets_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "svc-xrec")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("QDRANT_API_KEY", API_KEY)
    kafka, q = KafkaSettings(), QdrantSettings()
    assert kafka.aiokafka_kwargs()["sasl_plain_password"] == SECRET
    assert q.api_key is not None and q.api_key.get_secret_value() == API_KEY
    assert SECRET not in repr(kafka) and API_KEY not in repr(q)


# --- TLS / SASL reach the clients --------------------------------------------------------------


def test_sasl_ssl_settings_give_aiokafka_and_faust_the_credentials_and_a_verifying_context():
    kafka = _sasl_ssl(ssl_cafile=CA_FILE) if CA_FILE.is_file() else _sasl_ssl()
    kw = kafka.aiokafka_kwargs()
    ctx = kw.pop("ssl_context")
    assert kw == {
        "bootstrap_servers": "broker-1:9093,broker-2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc-xrec",
        "sasl_plain_password": SECRET,
    }
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert kafka.broker_url == "kafka://broker-1:9093;kafka://broker-2:9093"

    creds = _credentials(kafka)  # what build_app hands to faust.App(broker_credentials=...)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("svc-xrec", SECRET)
    assert creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.protocol.value == "SASL_SSL" and creds.ssl_context is not None
    assert SECRET not in repr(creds)


def test_ssl_and_plaintext_settings() -> None:
    ssl_only = KafkaSettings(security_protocol=SecurityProtocol.SSL)
    kw = ssl_only.aiokafka_kwargs()
    assert kw["security_protocol"] == "SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert "sasl_plain_password" not in kw
    assert isinstance(_credentials(ssl_only), faust.SSLCredentials)
    plain = KafkaSettings(sasl_password=SECRET)  # set but unused without a SASL protocol
    assert "sasl_plain_password" not in plain.aiokafka_kwargs()
    assert _credentials(plain) is None


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        (lambda: KafkaSettings(security_protocol="SASL_SSL"), ["KAFKA_SASL_USERNAME"]),
        (
            lambda: KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_username="u"),
            ["KAFKA_SASL_PASSWORD"],
        ),
        (lambda: KafkaSettings(ssl_cafile=Path("/no/such/ca.pem")), ["KAFKA_SSL_CAFILE"]),
        (lambda: QdrantSettings(api_key=API_KEY), ["QDRANT_API_KEY", "QDRANT_URL"]),
    ],
)
def test_incomplete_security_settings_are_config_errors_naming_the_setting(settings, names):
    with pytest.raises(ConfigError) as info:
        settings()
    assert all(n in str(info.value) for n in names)
    assert API_KEY not in str(info.value)


def test_worker_refuses_a_qdrant_api_key_without_a_url_and_does_not_print_it(
    tmp_path: Path, model_dir: Path
) -> None:
    """The embedded engines take no key: the worker exits at once, naming the setting."""
    env = {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "QDRANT_API_KEY": API_KEY,
        "QDRANT_PATH": str(tmp_path / "q"),
        "KAFKA_BOOTSTRAP": "127.0.0.1:1",
    }
    env.pop("QDRANT_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    out = (proc.stdout + proc.stderr).decode()
    assert proc.returncode == 2, out
    assert "QDRANT_API_KEY" in out and "QDRANT_URL" in out
    assert API_KEY not in out


# --- input limits ------------------------------------------------------------------------------


def test_text_event_and_id_sizes_are_bounded_by_default() -> None:
    ws = WorkerSettings()
    limits = {"max_bytes": ws.max_event_bytes, "max_text_chars": ws.max_text_chars}
    assert ws.max_event_bytes <= 1_000_000 and ws.max_text_chars <= ws.max_event_bytes
    base = {
        "event_id": "e1",
        "user_id": "u1",
        "domain": "books",
        "action": "search",
        "text": "espresso",
        "event_time": 1_700_000_000.0,
    }

    def reason(**over: object) -> str:
        try:
            parse_behaviour(json.dumps({**base, **over}).encode(), **limits)
        except InvalidEventError as exc:
            return exc.reason
        return "ok"

    assert reason() == "ok"
    assert reason(text="x" * ws.max_text_chars) == "ok"
    assert reason(text="x" * (ws.max_text_chars + 1)) == "oversize"
    assert reason(text="é" * (ws.max_event_bytes // 2)) == "oversize"  # bytes, not chars
    assert reason(user_id="u" * 257) == "schema"
    assert reason(event_id="e" * 257) == "schema"
    assert reason(domain="d" * 65) == "schema"
    # one item per event: a list of items is not an item id
    assert reason(action="view", item_id=["i1", "i2"]) == "schema"
    with pytest.raises(InvalidEventError) as info:
        item = {"item_id": "i", "domain": "books", "title": "t", "description": "d" * 5000}
        parse_catalogue(json.dumps(item).encode(), **limits)
    assert info.value.reason == "oversize"


# --- the HTTP surface of a running worker --------------------------------------------------------


def _request(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


#: Faust's own views (router, tables, index, stats, assignment, graph, performance) and others.
NOT_SERVED = (
    "/",
    "/router/",
    "/router/users/get/",
    "/table/",
    "/table/users/",
    "/table/users/{user}/",
    "/stats/",
    "/assignment/",
    "/graph/",
    "/performance/",
    "/metrics/extra",
    "/healthz/",
    "/static/",
    "/favicon.ico",
    "/../etc/passwd",
)


@pytest.mark.broker
@pytest.mark.model
@pytest.mark.slow
def test_worker_serves_only_metrics_and_healthz_and_logs_no_secret(make_worker) -> None:
    """A worker with a SASL password in its environment, every Faust web view switched on
    through Faust's own variables, and debug logging: it serves /metrics and /healthz (GET and
    HEAD) and answers 404 (405 for other methods) to everything else; neither its responses nor
    its log contain the password or a user's data."""
    w = make_worker()
    extra = {
        "KAFKA_SASL_USERNAME": "svc-xrec",
        "KAFKA_SASL_PASSWORD": SECRET,
        "XREC_LOG_LEVEL": "debug",
        **{
            f"APP_WEB_{v}_ENABLED": "true"
            for v in ("STATS", "GRAPH", "METRICS", "TABLES", "ROUTER")
        },
    }
    w.extra_env = {**w.extra_env, **extra}
    w.start()
    item = {"item_id": "books-1", "domain": "books", "title": "The Art of Espresso"}
    user = "user-private-42"
    event = {
        "event_id": "e1",
        "user_id": user,
        "domain": "books",
        "action": "purchase",
        "item_id": "books-1",
        "event_time": 1_700_000_000.0,
    }
    w.send(w.kafka.catalogue_topic, [item], "item_id")
    w.wait_metric("xrec_events_total", 1, outcome="upserted")
    w.send(w.kafka.behaviour_topic, [event], "user_id")
    w.wait_metric("xrec_events_total", 1, outcome="applied")

    bodies = []
    for path in PATHS:
        for method in ("GET", "HEAD"):
            status, body = _request(w.web_port, path, method)
            assert status == 200, (method, path, status)
            bodies.append(body)
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert _request(w.web_port, path, method)[0] == 405, (method, path)
    for path in NOT_SERVED:
        for method in ("GET", "POST"):
            status, body = _request(w.web_port, path.format(user=user), method)
            assert status == 404, (method, path, status, body[:200])
            bodies.append(body)
    assert all(SECRET.encode() not in b and user.encode() not in b for b in bodies)
    w.stop()
    log = w.log_path.read_text(errors="replace")
    assert "DEBUG" in log  # debug logging was on
    assert SECRET not in log


@pytest.mark.broker
def test_a_worker_using_sasl_logs_no_secret_even_when_the_broker_refuses_it(
    make_worker,
) -> None:
    """The path where the password is used: SASL_PLAINTEXT with debug logging, against the
    local broker, which speaks plaintext only (so the handshake fails and the worker stops,
    saying which setting). Neither the log nor the error holds the password."""
    w = make_worker()
    w.extra_env = {
        **w.extra_env,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_USERNAME": "svc-xrec",
        "KAFKA_SASL_PASSWORD": SECRET,
        "XREC_LOG_LEVEL": "debug",
    }
    w.start(wait=False)  # it stops before it would serve
    assert w.proc is not None
    try:
        code = w.proc.wait(timeout=120)
    finally:
        w.stop()
    log = w.log_path.read_text(errors="replace")
    assert code == 2, log[-3000:]
    assert "DEBUG" in log and "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT" in log.splitlines()[-1]
    assert SECRET not in log
