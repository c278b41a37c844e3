"""The ``xrec`` command: worker, local broker, demo, produce/consume/health, schemas, config,
and (imported only when named) export, evaluation and the benchmarks.

Every flag has an environment-variable twin (shown in ``--help``); flags left unset fall back
to the environment, then to the settings' defaults.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from collections.abc import Container
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

from inference.errors import ConfigError, RecommenderError
from inference.model_settings import ModelSettings
from store.settings import QdrantSettings
from streams.cli_tools import Bootstrap, consume, health, produce
from streams.settings import KafkaSettings, WorkerSettings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Streaming cross-domain recommender."
)

LogLevel = Annotated[
    str,
    typer.Option("--log-level", envvar="XREC_LOG_LEVEL", help="debug, info, warning or error"),
]


def _set(d: dict[str, Any], **kv: Any) -> dict[str, Any]:
    d.update({k: v for k, v in kv.items() if v is not None})
    return d


def _logging(level: str) -> None:
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError(
            f"XREC_LOG_LEVEL / --log-level {level!r} is not a level: use debug, info, warning "
            "or error"
        )
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _about(settings: type, field: str) -> str:
    """A flag's help: the description of the settings field it sets (one source for both)."""
    return str(settings.model_fields[field].description)


@app.command()
def worker(
    bootstrap: Bootstrap = None,
    app_id: Annotated[
        str | None, typer.Option(envvar="WORKER_APP_ID", help=_about(WorkerSettings, "app_id"))
    ] = None,
    web_port: Annotated[
        int | None,
        typer.Option(envvar="WORKER_WEB_PORT", help=_about(WorkerSettings, "web_port")),
    ] = None,
    table_store: Annotated[
        str | None,
        typer.Option(envvar="WORKER_TABLE_STORE", help=_about(WorkerSettings, "table_store")),
    ] = None,
    bundle_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="WORKER_BUNDLE_DIR", help="fitted bundle (xrec eval-transfer --bundle-out)"
        ),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(envvar="MODEL_DIR", help=_about(ModelSettings, "dir"))
    ] = None,
    provider: Annotated[
        str | None, typer.Option(envvar="MODEL_PROVIDER", help="auto, cuda or cpu")
    ] = None,
    qdrant_url: Annotated[
        str | None, typer.Option(envvar="QDRANT_URL", help=_about(QdrantSettings, "url"))
    ] = None,
    qdrant_path: Annotated[
        Path | None, typer.Option(envvar="QDRANT_PATH", help=_about(QdrantSettings, "path"))
    ] = None,
    log_level: LogLevel = "info",
) -> None:
    """Run a worker: consume catalogue and behaviour events, publish recommendations."""
    from streams.worker import run_worker

    _logging(log_level)
    run_worker(
        KafkaSettings(**_set({}, bootstrap=bootstrap)),
        WorkerSettings(
            **_set(
                {}, app_id=app_id, web_port=web_port, table_store=table_store, bundle_dir=bundle_dir
            )
        ),
        ModelSettings(**_set({}, dir=model_dir, provider=provider)),
        QdrantSettings(**_set({}, url=qdrant_url, path=qdrant_path)),
        loglevel=log_level,
    )


@app.command()
def broker(
    port: Annotated[int, typer.Option(envvar="XREC_BROKER_PORT")] = 9092,
) -> None:
    """Run the local Kafka-protocol broker (Tansu, memory storage) in the foreground."""
    from streams.broker import start_broker

    b = start_broker(port)
    typer.echo(f"local broker on {b.bootstrap} (memory storage); Ctrl-C stops it")
    try:
        b.process.wait()
    except KeyboardInterrupt:
        b.stop()


for _tool in (produce, consume, health):
    app.command()(_tool)


@app.command()
def schemas() -> None:
    """Print the JSON schema of every wire record."""
    from streams.records import json_schemas

    typer.echo(json.dumps(json_schemas(), indent=2))


@app.command()
def config() -> None:
    """Print every worker setting: environment variable, default, meaning (Markdown); each
    command's own options show their environment twins in its --help."""
    from streams.config_doc import markdown

    typer.echo(markdown())


@app.command()
def demo(
    users: Annotated[int, typer.Option(envvar="XREC_DEMO_USERS")] = 40,
    events_per_user: Annotated[int, typer.Option(envvar="XREC_DEMO_EVENTS_PER_USER")] = 8,
    duration_s: Annotated[
        float,
        typer.Option(envvar="XREC_DEMO_DURATION_S", help="keep serving this long after the feed"),
    ] = 5,
    web_port: Annotated[int, typer.Option(envvar="WORKER_WEB_PORT")] = 6066,
    model_dir: Annotated[Path, typer.Option(envvar="MODEL_DIR")] = Path("models/all-MiniLM-L6-v2"),
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            envvar="XREC_DEMO_BOOTSTRAP",
            help="an existing broker to use instead of starting a local one (not read from "
            "KAFKA_BOOTSTRAP, so a shell set up for a real cluster runs the demo locally)",
        ),
    ] = None,
) -> None:
    """Everything on embedded defaults: local broker, worker, synthetic feed, live output.

    Ctrl-C stops the feed, the worker and the broker, in that order.
    """
    from streams.demo import run_demo

    _logging("warning")
    run_demo(
        users=users,
        events_per_user=events_per_user,
        duration_s=duration_s,
        web_port=web_port,
        model_dir=model_dir,
        bootstrap=bootstrap,
    )


# Sub-apps that live outside streams/, with the extra each needs beyond the worker's packages.
_SUBCOMMANDS = [
    ("exporter.cli", "model", "export", "Export and validate the ONNX encoder (export extra)."),
    (
        "bench.transfer_eval",
        "eval-transfer",
        "bench",
        "Fit and score cross-domain transfer on real data.",
    ),
    (
        "bench.transfer_stream",
        "replay-transfer",
        "bench",
        "Prequential replay through the pipeline.",
    ),
    ("bench.stream_bench", "bench-stream", "bench", "Throughput and latency of broker + worker."),
    (
        "bench.encoder_bench",
        "bench-encoder",
        "bench",
        "Encoder texts/s per backend, batch and length.",
    ),
    ("bench.memory_bench", "bench-memory", "bench", "Resident memory per user in state."),
    ("bench.reliability", "reliability", "bench", "Fault injection and fuzzing figures."),
    ("bench.drift_bench", "bench-drift", "bench,drift", "Drift scenarios, adaptive vs static."),
]


def _mount_optional(wanted: Container[str] | None = None) -> None:
    """Mount the optional commands: those ``wanted`` (all: None) imported, the others listed
    by name and help only, so that ``xrec worker`` does not import scipy and the benchmarks
    (the worker's modules took 1.1 s and 62 MiB more with them: README, Memory)."""
    import importlib

    for module, name, extra, help_text in _SUBCOMMANDS:
        if wanted is not None and name not in wanted:
            app.add_typer(typer.Typer(help=help_text), name=name, help=help_text)
            continue
        try:
            sub = importlib.import_module(module).app
        except ImportError as exc:
            if wanted is None:  # listing everything: the command is just not there
                continue
            raise ConfigError(
                f"xrec {name} needs the {extra} extra ({exc.name or exc} is missing): "
                f"pip install -e '.[{extra}]'"
            ) from exc
        app.add_typer(sub, name=name, help=help_text)


def main() -> None:
    """Entry point of the ``xrec`` console script."""
    # SIGTERM unwinds like Ctrl-C, so the commands' finally blocks stop the broker and worker
    # processes they started (the worker installs Faust's own handlers over this one).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _mount_optional(set(sys.argv[1:2]))  # the command named, if it is one of them
        app()
    except RecommenderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    except (ValidationError, SettingsError) as exc:
        if isinstance(exc, ValidationError) and _env_prefix(exc.title) is None:
            raise  # not a settings class: a bug, with its traceback
        typer.echo(f"error: {settings_error(exc)}", err=True)
        raise SystemExit(2) from exc


_SECRET = re.compile(r"password|secret|api_key|token", re.I)


def settings_error(exc: Exception) -> str:
    """A settings failure in one line: each bad value named by its environment variable."""
    hint = "fix it (or its flag) or unset it for the default; `xrec config` lists every setting"
    if not isinstance(exc, ValidationError):
        return f"{exc}; {hint}"
    prefix = _env_prefix(exc.title) or ""
    problems = []
    for err in exc.errors():
        field = "_".join(str(p) for p in err["loc"])
        name = f"{prefix}{field}".upper() if field else exc.title
        got = "" if _SECRET.search(field) else f" (got {err.get('input')!r})"
        problems.append(f"{name}: {err['msg']}{got}")
    return f"{'; '.join(problems)}; {hint}"


def _env_prefix(class_name: str) -> str | None:
    """The env prefix of the settings class called ``class_name`` (None: no such class)."""
    todo = list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__name__ == class_name:
            return str(cls.model_config.get("env_prefix", ""))
        todo.extend(cls.__subclasses__())
    return None


if __name__ == "__main__":
    main()
