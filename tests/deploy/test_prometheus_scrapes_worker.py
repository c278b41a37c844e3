"""The real Prometheus scrapes a running worker with deploy/'s job and rules, and answers queries.

Prometheus is Debian's `prometheus` package (./dev test installs it when it can); without it the
test skips and says so. The config is deploy/prometheus/prometheus.yml with the worker job
pointed at the test worker (static target instead of compose's DNS) and 1 s intervals.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.broker import free_port
from tests.deploy.files import ALERTS, PROMETHEUS_CONFIG, dashboard_queries, grafana_to_promql
from tests.deploy.worker_metrics import fed_worker

pytestmark = [pytest.mark.broker, pytest.mark.model, pytest.mark.slow]

WAIT_S = 30


class Prometheus:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    def api(self, path: str, **params: str) -> dict:
        """Query the HTTP API; raises OSError while the server is still starting (503)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 503:  # TSDB still opening: "Service Unavailable", not JSON; retry
                raise OSError("prometheus is not ready yet") from e
            return json.loads(e.read())  # 400/422 carry the PromQL error as JSON

    def wait(self, what: str, probe) -> object:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            try:
                if result := probe():
                    return result
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        raise AssertionError(f"{what} within {WAIT_S}s\n{self.log.read_text()[-3000:]}")


def scrape_config_for(web_port: int, rules: Path) -> dict:
    """deploy's prometheus.yml, its worker job aimed at 127.0.0.1:web_port, 1 s intervals."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "xrec-worker"]
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{web_port}"]}]
    config["scrape_configs"] = [job]
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    return config


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator:
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip(
            "prometheus is not installed (Debian package `prometheus`; ./dev test "
            "installs it when run as root)"
        )
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: dict) -> Prometheus:
        shutil.copy(ALERTS, tmp_path / "alerts.yml")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port, log = free_port(), tmp_path / "prometheus.log"
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return Prometheus(port, proc, log)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_prometheus_scrapes_the_worker_and_evaluates_deploy_queries(
    make_worker, start_prometheus, tmp_path: Path
) -> None:
    w = fed_worker(make_worker)
    prom = start_prometheus(scrape_config_for(w.web_port, tmp_path / "alerts.yml"))

    def events() -> list:
        body = prom.api("query", query="xrec_events_total")
        return body["status"] == "success" and body["data"]["result"]

    series = prom.wait("a sample of xrec_events_total", events)
    labels = series[0]["metric"]  # type: ignore[index]
    # The job name the alerts select on, and the target label the GPU alert keys on.
    assert labels["job"] == "xrec-worker" and labels["accelerator"] == "cpu"
    assert {s["metric"]["outcome"] for s in series} >= {"upserted", "applied"}  # type: ignore[union-attr]

    # deploy/prometheus/alerts.yml, loaded by the real server, evaluates without error.
    def rules_evaluated() -> list:
        groups = prom.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = rules and all(r["lastEvaluation"] > "2000" for r in rules)
        return rules if done else []

    rules = prom.wait("every alert rule evaluated", rules_evaluated)
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    # Inactive, not merely not firing: most rules wait minutes (`for:`) before they fire, far
    # longer than this test lives, so a rule that is wrong on a healthy worker shows as
    # pending. A rule evaluated before the first scrape (XrecNoWorkerUp: no `up` yet) is
    # pending until its next evaluation, 1 s later; a wrong one stays so through ten of them.
    deadline = time.monotonic() + 10
    while True:
        rules = [r for g in prom.api("rules")["data"]["groups"] for r in g["rules"]]
        active = [(r["name"], r["state"]) for r in rules if r["state"] != "inactive"]
        if not active or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert active == [], f"alerts pending or firing on a healthy worker: {active}"

    # Every dashboard query parses and evaluates on the real server (as Grafana would send it).
    for where, expr in dashboard_queries():
        body = prom.api("query", query=grafana_to_promql(expr))
        assert body["status"] == "success", f"{where}: {body.get('error')}\n{expr}"
