"""The ``xrec`` tools around a running worker: produce, consume and health.

Registered on the ``xrec`` app by :mod:`streams.cli`; every flag has an environment twin.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from inference.errors import ConfigError, RecommenderError
from streams.settings import KafkaSettings

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP", help="Kafka bootstrap host:port"),
]


def _kafka(bootstrap: str | None) -> KafkaSettings:
    return KafkaSettings(**({} if bootstrap is None else {"bootstrap": bootstrap}))


def produce(
    topic: Annotated[str, typer.Argument(help="topic to write to")],
    file: Annotated[Path, typer.Argument(help="JSON Lines file, one record per line; - = stdin")],
    key_field: Annotated[
        str | None, typer.Option(envvar="XREC_KEY_FIELD", help="record field used as the key")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            envvar="XREC_PRODUCE_RAW",
            help="send each line's bytes unchanged, JSON or not (to see what the worker "
            "dead-letters); keyed like the others where the line parses",
        ),
    ] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Replay a JSON Lines file into a topic (keyed by user_id / item_id by default)."""
    from streams.client import produce as send
    from streams.client import read_jsonl, record_key

    if str(file) != "-" and not file.is_file():
        raise ConfigError(f"{file}: no such file (FILE is a JSON Lines file, or - for stdin)")
    kafka = _kafka(bootstrap)
    known = {
        kafka.catalogue_topic,
        kafka.behaviour_topic,
        kafka.recommendations_topic,
        kafka.deadletter_topic,
    }
    if topic not in known:  # a broker that creates topics on first use takes a typo silently
        typer.echo(
            f"note: {topic!r} is none of the worker's topics ({', '.join(sorted(known))})",
            err=True,
        )
    with sys.stdin if str(file) == "-" else file.open() as lines:
        records, parsed = read_jsonl(lines, str(file), raw)
    key = key_field or ("user_id" if parsed and "user_id" in parsed[0] else "item_id")
    keys = [record_key(p, key) for p in parsed] if raw else None
    n = asyncio.run(send(kafka, topic, records, None if raw else key, keys=keys))
    typer.echo(f"sent {n} records to {topic}")


def consume(
    topic: Annotated[str, typer.Argument(help="topic to read from its beginning")],
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", envvar="XREC_CONSUME_LIMIT", help="stop after N records"),
    ] = None,
    timeout_s: Annotated[
        float,
        typer.Option(envvar="XREC_CONSUME_TIMEOUT_S", help="stop after this long without one"),
    ] = 5.0,
    bootstrap: Bootstrap = None,
) -> None:
    """Print a topic's records as JSON Lines: key, value and headers (dead letters' reasons)."""
    from streams.client import consume as read
    from streams.client import readable

    kafka = _kafka(bootstrap)

    async def run() -> int:
        n = 0
        async for key, value, headers in read(kafka, topic, timeout_s=timeout_s):
            typer.echo(json.dumps(readable(key, value, headers), ensure_ascii=False))
            n += 1
            if limit is not None and n >= limit:
                break
        return n

    n = asyncio.run(run())
    typer.echo(f"read {n} records from {topic}", err=True)


def health(
    port: Annotated[
        int, typer.Option(envvar="WORKER_WEB_PORT", help="the worker's web port")
    ] = 6066,
    host: Annotated[str, typer.Option(envvar="XREC_HEALTH_HOST", help="the worker's host")] = (
        "127.0.0.1"
    ),
) -> None:
    """Print a worker's /healthz; exit 1 unless it is ok (`docker compose exec`, probes)."""
    import urllib.error
    import urllib.request

    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body, ok = r.read(), True
    except urllib.error.HTTPError as exc:  # 503: degraded or not ready, and the body says why
        body, ok = exc.read(), False
    except OSError as exc:
        raise RecommenderError(
            f"{url}: no worker answers ({exc}); check --port / WORKER_WEB_PORT"
        ) from exc
    typer.echo(body.decode(errors="replace"))
    raise typer.Exit(0 if ok else 1)
