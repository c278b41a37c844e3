"""The Kubernetes manifests, checked against the worker's settings, web routes and each other."""

from __future__ import annotations

import os
from typing import Any

import pytest

from streams.settings import WorkerSettings
from tests.deploy.files import (
    K8S_DIR,
    SETTINGS_CLASSES,
    WEB_ROUTES,
    XREC_PREFIXES,
    load_yaml,
    load_yaml_docs,
    secret_env_names,
    worker_env_names,
)

# Documented alternative to qdrant.yaml (the official chart's values), not a manifest.
NOT_IN_KUSTOMIZATION = {"kustomization.yaml", "qdrant-values.yaml"}


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> document, over every file kustomization.yaml lists."""
    out = {}
    for resource in load_yaml(K8S_DIR / "kustomization.yaml")["resources"]:
        for doc in load_yaml_docs(K8S_DIR / resource):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def worker_pod() -> dict[str, Any]:
    return manifests()[("Deployment", "xrec-worker")]["spec"]["template"]


def worker_container() -> dict[str, Any]:
    (container,) = worker_pod()["spec"]["containers"]
    return container


def env_from(kind: str) -> dict[str, str]:
    """Data of the ConfigMap or Secret the worker container takes its environment from."""
    key = {"ConfigMap": "configMapRef", "Secret": "secretRef"}[kind]
    (ref,) = [s[key]["name"] for s in worker_container()["envFrom"] if key in s]
    doc = manifests()[(kind, ref)]
    return {k: str(v) for k, v in (doc.get("data") or doc.get("stringData")).items()}


def test_kustomization_lists_every_manifest_and_each_parses() -> None:
    listed = load_yaml(K8S_DIR / "kustomization.yaml")["resources"]
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - NOT_IN_KUSTOMIZATION
    assert sorted(listed) == sorted(on_disk)
    kinds = {kind for kind, _ in manifests()}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "StatefulSet",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds
    for doc in manifests().values():
        assert doc["apiVersion"] and doc["metadata"]["name"]
    image = load_yaml(K8S_DIR / "kustomization.yaml")["images"][0]["name"]
    assert worker_container()["image"].split(":")[0] == image


def test_env_names_are_settings_fields_and_secrets_stay_in_the_secret() -> None:
    config, secret = env_from("ConfigMap"), env_from("Secret")
    valid = worker_env_names()
    assert set(config) <= valid, f"not read by the worker: {sorted(set(config) - valid)}"
    assert set(secret) <= valid, f"not read by the worker: {sorted(set(secret) - valid)}"
    secrets = secret_env_names()
    assert {"KAFKA_SASL_PASSWORD", "QDRANT_API_KEY"} <= set(secret) <= secrets
    assert not set(config) & secrets, "a SecretStr setting is in the ConfigMap"
    assert config["WORKER_WEB_HOST"] == "0.0.0.0"  # the kubelet and Prometheus reach the pod IP


def test_config_and_secret_validate_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(XREC_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in {**env_from("ConfigMap"), **env_from("Secret")}.items():
        monkeypatch.setenv(name, value)
    for cls in SETTINGS_CLASSES:
        cls()  # SASL without credentials, a bad store URL, an unknown provider... all raise


def test_workers_scale_within_the_partitions() -> None:
    replicas = manifests()[("Deployment", "xrec-worker")]["spec"]["replicas"]
    assert 1 <= replicas <= int(env_from("ConfigMap")["KAFKA_PARTITIONS"])


def test_probes_and_metrics_port_match_the_worker_web_server() -> None:
    container = worker_container()
    port = int(env_from("ConfigMap")["WORKER_WEB_PORT"])
    assert port == WorkerSettings.model_fields["web_port"].default
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in WEB_ROUTES, f"{probe} path {get['path']} is not served"
        assert ports[get["port"]] == port
    # Readiness reflects the store (503 while it is down); liveness must not, or a Qdrant outage
    # would restart every worker instead of letting them back off and catch up.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(env_from("ConfigMap")["WORKER_DATA_DIR"].startswith(m) for m in mounts)


def test_service_and_service_monitor_reach_the_metrics_port() -> None:
    docs = manifests()
    pod_labels = worker_pod()["metadata"]["labels"]
    service = docs[("Service", "xrec-worker")]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["publishNotReadyAddresses"] is True
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"
    monitor = docs[("ServiceMonitor", "xrec-worker")]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] in WEB_ROUTES
    # The encoder-on-CPU alert keys on this target label.
    assert "accelerator" in monitor["podTargetLabels"] and "accelerator" in pod_labels
    # The operator names the job after the Service: the alerts select job="xrec-worker".
    assert service["metadata"]["name"] == "xrec-worker"


def test_qdrant_serves_the_url_and_key_the_workers_use() -> None:
    docs = manifests()
    url = env_from("ConfigMap")["QDRANT_URL"]
    host, port = url.removeprefix("http://").split(":")
    service = docs[("Service", host)]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    qdrant = docs[("StatefulSet", "qdrant")]["spec"]["template"]
    assert service["spec"]["selector"].items() <= qdrant["metadata"]["labels"].items()
    (container,) = qdrant["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["QDRANT__SERVICE__API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "QDRANT_API_KEY"
    assert ref["key"] in docs[("Secret", ref["name"])]["stringData"]
    values = load_yaml(K8S_DIR / "qdrant-values.yaml")
    (chart_env,) = values["env"]
    assert chart_env["valueFrom"]["secretKeyRef"] == ref


def test_everything_lives_in_the_namespace() -> None:
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    assert ("Namespace", kustomization["namespace"]) in manifests()
