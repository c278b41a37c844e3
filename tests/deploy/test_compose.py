"""The compose stack and the worker image, checked by reading them against the worker's code.

Docker may not run where the tests do, so nothing is started here: every file must parse, and
every name, port, path and env var must be one the worker (or the other service) really uses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import topic_names
from tests.deploy.files import (
    ALERTS,
    COMPOSE_DIR,
    COMPOSE_FILE,
    DASHBOARDS,
    DOCKERFILE,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    REPO,
    SETTINGS_CLASSES,
    XREC_PREFIXES,
    compose,
    deploy_files,
    interpolate,
    load_json,
    load_yaml,
    load_yaml_docs,
    service_env,
    worker_env_names,
)

QDRANT_HTTP_PORT = 6333  # the qdrant/qdrant image's REST port


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No developer KAFKA_* / WORKER_* / ... variables leak into the settings' defaults."""
    for name in list(os.environ):
        if name.startswith(XREC_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch


def mounts(service: dict) -> dict[str, Path]:
    """Bind mounts of a compose service: container path -> file or folder here."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = (COMPOSE_DIR / source).resolve()
    return out


def services_from_worker_image() -> dict[str, dict]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if svc.get("build", {}).get("dockerfile") == "deploy/docker/Dockerfile"
    }


def test_every_yaml_and_json_file_in_deploy_parses() -> None:
    files = deploy_files(".yml", ".yaml", ".json")
    assert len(files) >= 10, files
    for path in files:
        docs = load_json(path) if path.suffix == ".json" else load_yaml_docs(path)
        assert docs, f"{path.relative_to(REPO)} is empty"


def test_stack_has_kafka_in_kraft_mode_and_every_service() -> None:
    services = compose()["services"]
    assert {
        "kafka",
        "topics",
        "qdrant",
        "worker",
        "kafka-exporter",
        "prometheus",
        "grafana",
    } <= set(services)
    kafka = service_env(services["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in kafka)
    # Topics come from the topics service only (a client's metadata request must not create one).
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_worker_env_vars_are_settings_fields_and_validate(clean_env: pytest.MonkeyPatch) -> None:
    valid = worker_env_names()
    services = services_from_worker_image()
    assert "worker" in services  # else the loop below would check nothing
    for name, svc in services.items():
        env = service_env(svc, {"QDRANT_API_KEY": "test-key"})
        if name == "worker":
            required = {
                "KAFKA_BOOTSTRAP",
                "QDRANT_URL",
                "QDRANT_API_KEY",
                "MODEL_DIR",
                "WORKER_WEB_HOST",
                "WORKER_WEB_PORT",
                "WORKER_TABLE_STORE",
            }
            assert required <= set(env), required - set(env)
            assert set(env) <= valid, f"not read by the worker: {sorted(set(env) - valid)}"
            assert env["WORKER_WEB_HOST"] == "0.0.0.0"  # reachable from the other containers
        else:
            # Other services of the image run their own script: its variables are its own.
            script = svc["entrypoint"][-1]
            source = (COMPOSE_DIR / Path(script).name).read_text()
            for var in env:
                assert var in valid or f'"{var}"' in source, f"{name}: {var} is read by nothing"
        for var, value in env.items():
            if var.startswith(XREC_PREFIXES):
                clean_env.setenv(var, value)
        for cls in SETTINGS_CLASSES:
            cls()  # raises when a value does not validate (a bad URL, store, provider, ...)
        for var in env:
            clean_env.delenv(var, raising=False)


def test_worker_env_points_at_the_other_services() -> None:
    services = compose()["services"]
    env = service_env(services["worker"])
    kafka = service_env(services["kafka"])
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{env['KAFKA_BOOTSTRAP']}" in advertised
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"
    assert env["QDRANT_URL"] == f"http://qdrant:{QDRANT_HTTP_PORT}"
    # The worker and Qdrant take the key from one variable.
    qdrant_key = services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]
    assert qdrant_key == services["worker"]["environment"]["QDRANT_API_KEY"]
    assert qdrant_key.startswith("${QDRANT_API_KEY")
    assert env["WORKER_WEB_PORT"] in [str(p) for p in services["worker"]["expose"]]
    scrape = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    job = next(j for j in scrape if j["job_name"] == "xrec-worker")
    assert job["dns_sd_configs"] == [
        {
            "names": ["worker"],
            "type": "A",
            "port": int(env["WORKER_WEB_PORT"]),
            "refresh_interval": "10s",
        }
    ]
    depends = services["worker"]["depends_on"]
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert depends["qdrant"]["condition"] == "service_started"


def test_topics_service_creates_the_workers_topics_with_one_partition_count(
    clean_env: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    topics = service_env(services["topics"])
    kafka, worker = KafkaSettings(), WorkerSettings()
    assert topics["TOPICS"].split() == topic_names(kafka, worker)
    assert int(topics["PARTITIONS"]) == kafka.partitions
    assert int(service_env(services["kafka"])["KAFKA_NUM_PARTITIONS"]) == kafka.partitions
    assert int(service_env(services["worker"])["KAFKA_PARTITIONS"]) == kafka.partitions
    assert service_env(services["worker"])["WORKER_APP_ID"] == worker.app_id
    # Changing the partition count or app id in .env changes the topics and the worker alike.
    env = {"KAFKA_PARTITIONS": "8", "WORKER_APP_ID": "shop"}
    assert service_env(services["topics"], env)["PARTITIONS"] == "8"
    assert service_env(services["worker"], env)["KAFKA_PARTITIONS"] == "8"
    assert service_env(services["topics"], env)["TOPICS"].split()[-2:] == [
        "shop-users-changelog",
        "shop-projection-changelog",
    ]
    script = interpolate(services["topics"]["command"][0])
    assert "--if-not-exists" in script and '--partitions "$PARTITIONS"' in script
    assert "PartitionCount" in script  # an existing topic with another count fails the service


def test_mounted_files_exist_and_agree() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), f"{name}: {source} is missing"
    prom = mounts(services["prometheus"])
    config = next(
        a.split("=", 1)[1]
        for a in services["prometheus"]["command"]
        if a.startswith("--config.file=")
    )
    assert prom[config] == PROMETHEUS_CONFIG
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:  # relative to the config file
        assert prom[str(Path(config).parent / rule_file)] == ALERTS

    grafana = mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    provider = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "xrec.yml")["providers"][0]
    assert grafana[provider["options"]["path"]] == DASHBOARDS
    home = service_env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).relative_to(provider["options"]["path"])).is_file()
    datasource = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    (ds,) = datasource["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]


def dockerfile_stages() -> dict[str, list[str]]:
    """Instructions per stage (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current = "preamble"
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.match(r"FROM \S+ AS (\w+)", line):
            current = m.group(1)
        stages.setdefault(current, []).append(line)
    return stages


def test_worker_image_exports_the_model_apart_and_runs_the_worker() -> None:
    services = compose()["services"]
    build = services["worker"]["build"]
    assert (COMPOSE_DIR / build["context"]).resolve() == REPO
    assert (REPO / build["dockerfile"]).resolve() == DOCKERFILE
    # The ignore file is an allow-list (.venv, data and models stay out of the build context):
    # every package pyproject installs must be on it, or `pip install .` misses it.
    rules = [
        line
        for line in DOCKERFILE.with_name("Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages | {"pyproject.toml"} <= allowed, packages - allowed

    stages = dockerfile_stages()
    assert stages["preamble"] == ["ARG PYTHON_IMAGE=python:3.11-slim"]
    export, runtime = "\n".join(stages["export"]), "\n".join(stages["runtime"])
    assert "FROM ${PYTHON_IMAGE} AS export" in export
    assert '"/src[export]"' in export  # torch and transformers: export stage only
    out = re.search(r"xrec model export --out (\S+)", export).group(1)  # type: ignore[union-attr]
    assert "FROM ${PYTHON_IMAGE} AS runtime" in runtime
    assert "[export]" not in runtime and "torch" not in runtime
    assert re.search(r"pip install /tmp/src ", runtime)
    assert f"COPY --from=export {out} {out}" in runtime
    env = dict(
        re.findall(
            r"(\w+)=(\S+)", " ".join(line for line in stages["runtime"] if line.startswith("ENV "))
        )
    )
    assert env["MODEL_DIR"] == out == service_env(services["worker"])["MODEL_DIR"]
    valid = worker_env_names()
    assert {k for k in env if k.startswith(XREC_PREFIXES)} <= valid
    assert env["WORKER_WEB_PORT"] == str(WorkerSettings.model_fields["web_port"].default)
    assert f"EXPOSE {env['WORKER_WEB_PORT']}" in runtime
    assert 'ENTRYPOINT ["xrec"]' in runtime and 'CMD ["worker"]' in runtime


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file() -> None:
    """Compose's own schema check (`config` needs no daemon); skipped where compose is absent."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "--profile", "demo", "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "QDRANT_API_KEY": "test-key"},
    )
    assert result.returncode == 0, result.stderr
