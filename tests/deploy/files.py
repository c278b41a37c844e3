"""Reading deploy/: the files, compose interpolation, the env names the worker reads, PromQL names.

Shared by the deploy tests; nothing here starts a process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
import yaml

from inference.model_settings import ModelSettings
from store.settings import QdrantSettings
from streams.cli import app as cli_app
from streams.settings import KafkaSettings, WorkerSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S_DIR = DEPLOY / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"

SETTINGS_CLASSES = (KafkaSettings, WorkerSettings, QdrantSettings, ModelSettings)
# Prefixes of the worker's settings: an env var with one of these is the worker's to read.
XREC_PREFIXES = (*(cls.model_config["env_prefix"] for cls in SETTINGS_CLASSES), "XREC_")

# The worker serves these two paths (streams/web.py) on WORKER_WEB_PORT.
WEB_ROUTES = frozenset(
    re.findall(r'@app\.page\("([^"]+)"\)', (REPO / "streams" / "web.py").read_text())
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def settings_env_names() -> set[str]:
    """Every env var the settings classes read: prefix + field name, upper-cased."""
    return {
        (cls.model_config["env_prefix"] + name).upper()
        for cls in SETTINGS_CLASSES
        for name in cls.model_fields
    }


def cli_env_names(command: str = "worker") -> set[str]:
    """Env vars declared on the ``xrec <command>`` options (e.g. XREC_LOG_LEVEL)."""
    group = typer.main.get_command(cli_app)
    names: set[str] = set()
    for param in group.commands[command].params:  # type: ignore[attr-defined]
        envvar = getattr(param, "envvar", None)
        names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def worker_env_names() -> set[str]:
    """What an ``xrec worker`` process really reads from its environment."""
    return settings_env_names() | cli_env_names("worker")


def secret_env_names() -> set[str]:
    """Settings fields typed SecretStr: they belong in a Secret, never a ConfigMap."""
    return {
        (cls.model_config["env_prefix"] + name).upper()
        for cls in SETTINGS_CLASSES
        for name, field in cls.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }


_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}|\$\$")


def interpolate(value: object, env: dict[str, str] | None = None) -> str:
    """Compose's variable interpolation, with ``env`` standing in for .env / the shell.

    ``${VAR:-default}`` gives the default when VAR is unset, ``${VAR:?message}`` a placeholder
    (docker compose would refuse to start), ``$$`` a literal ``$``.
    """
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.groups()
        if name in env:
            return env[name]
        if op == "-":
            return arg
        return f"<required:{name}>"

    return _VAR.sub(sub, str(value))


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def service_env(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """A compose service's environment (mapping or list form), interpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(v, env) for k, v in raw.items()}


# --- PromQL, roughly: enough to find metric names and the labels a query relies on ---

METRIC = re.compile(r"\bxrec_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count", "_created")
SELECTOR = re.compile(r"\b(xrec_[a-z0-9_]+|kafka_[a-z0-9_]+|up)\s*\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def family(name: str) -> str:
    """The metric family of a series name: histogram and counter suffixes stripped."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def metric_names(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched in its braces) for every ``name{...}`` selector."""
    return [(m.group(1), set(MATCHER_LABEL.findall(m.group(2)))) for m in SELECTOR.finditer(expr)]


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by / without / on / ignoring clauses."""
    return {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")} - {""}


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) for every target of every panel of every dashboard JSON."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in load_json(path)["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


def alert_queries() -> list[tuple[str, str]]:
    """(where, expr) for every rule of deploy/prometheus/alerts.yml."""
    return [
        (f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in load_yaml(ALERTS)["groups"]
        for rule in group["rules"]
    ]


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Prometheus sees it once Grafana has filled in its variables."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$app_id", "xrec")
    )
