"""The ``xrec`` tools around a running worker: produce, consume and health.

Registered on the ``xrec`` app by :mod:`streams.cli`; every flag has an environment twin.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

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
    with sys.stdin.buffer if str(file) == "-" else file.open("rb") as lines:
        records, parsed = read_jsonl(lines, str(file), raw)
    key = key_field or default_key(topic, kafka, parsed)
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


def read_jsonl(
    lines: Iterable[bytes], name: str, raw: bool
) -> tuple[list[dict | bytes], list[dict]]:
    """The records to send and, per record, what parsed as a JSON object ({} else).

    Read as bytes: ``raw`` sends each line's bytes as they are, invalid UTF-8 included.
    """
    records: list[dict | bytes] = []
    parsed: list[dict] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)  # bytes: bad UTF-8 is a ValueError too
        except ValueError as exc:
            if not raw:
                raise ConfigError(
                    f"{name}:{n}: not JSON ({exc}); fix the line, or send lines as they are "
                    "with --raw"
                ) from exc
            doc = None
        if raw:
            records.append(line.rstrip(b"\r\n"))
        elif not isinstance(doc, dict):
            raise ConfigError(f"{name}:{n}: a record is a JSON object; use --raw to send it")
        else:
            records.append(doc)
        parsed.append(doc if isinstance(doc, dict) else {})
    return records, parsed


def default_key(topic: str, kafka: KafkaSettings, parsed: list[dict]) -> str:
    """The field records are keyed by: user_id on behaviour, item_id on the catalogue, else
    user_id when any record has one (not the first line's say: it may be malformed)."""
    if topic == kafka.behaviour_topic:
        return "user_id"
    if topic == kafka.catalogue_topic:
        return "item_id"
    return "user_id" if any("user_id" in p for p in parsed) else "item_id"


def record_key(doc: dict, field: str) -> bytes | None:
    """The key a record is sent with: its ``field``, trimmed (as the worker reads ids)."""
    value = doc.get(field)
    return None if value is None else str(value).strip().encode()


def readable(key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> dict:
    """A record as JSON: the value parsed where it is JSON, else its text; headers as text."""

    def text(b: bytes | None) -> str | None:
        return None if b is None else b.decode("utf-8", errors="replace")

    try:
        shown: Any = None if value is None else json.loads(value)
    except ValueError:
        shown = text(value)
    return {"key": text(key), "value": shown, "headers": {k: text(v) for k, v in headers.items()}}
