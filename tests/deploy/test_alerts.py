"""Alert rules: one set for compose and Kubernetes, valid for promtool, behaving as intended."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.files import ALERTS, K8S_DIR, PROMETHEUS_CONFIG, load_yaml

RULE_TESTS = Path(__file__).with_name("alerts_test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip(
            "promtool is not installed (Debian package `prometheus`; ./dev test installs it)"
        )
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_prometheus_rule_carries_the_same_groups_as_alerts_yml() -> None:
    rule = load_yaml(K8S_DIR / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    # Regenerate after editing alerts.yml: indent its `groups:` block under `spec:`.
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"]


def test_every_alert_has_severity_summary_and_a_scraped_job() -> None:
    # Compose names its jobs here; in Kubernetes the job is the Service name (test_k8s.py).
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert set(re.findall(r'\bjob="([^"]+)"', rule["expr"])) <= jobs, rule["alert"]


def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    spec = tmp_path / "prometheusrule-groups.yml"
    spec.write_text(yaml.safe_dump(load_yaml(K8S_DIR / "prometheusrule.yaml")["spec"]))
    result = promtool("check", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config names its rule file relative to itself, as it is mounted in compose.
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should_and_only_then() -> None:
    """promtool's rule unit tests (tests/deploy/alerts_test.yml) on synthetic series."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
