"""`xrec produce` and `xrec consume` against the real local broker, as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import LocalBroker, free_port
from streams.client import consume
from streams.settings import KafkaSettings


def xrec(
    broker: LocalBroker, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP": broker.bootstrap, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_malformed_line_is_named_and_nothing_is_sent(
    broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1", "event_id": "e1"}\n{"user_id": "u2",\n')
    topic = f"behaviour-{unique}"
    bad = xrec(broker, "produce", topic, str(events))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"error: {events}:2: not JSON" in bad.stderr and "--raw" in bad.stderr
    read = xrec(broker, "consume", topic, "--timeout-s", "2")
    assert read.returncode == 0 and read.stdout == ""  # the good line was not sent either


def test_raw_lines_reach_the_topic_as_they_are_and_read_back_with_their_keys(
    broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": " u1 ", "event_id": "e1"}\nnot json at all\n\n[1, 2]\n')
    topic = f"behaviour-{unique}"
    sent = xrec(broker, "produce", topic, str(events), "--raw")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"sent 3 records to {topic}"
    assert f"note: {topic!r} is none of the worker's topics" in sent.stderr
    read = xrec(broker, "consume", topic, "--timeout-s", "3")
    assert read.returncode == 0, read.stderr
    # unkeyed records land on any partition: compared without their order
    records = sorted(read.stdout.splitlines())
    assert records == sorted(
        json.dumps(r, ensure_ascii=False)
        for r in [
            {"key": "u1", "value": {"user_id": " u1 ", "event_id": "e1"}, "headers": {}},
            {"key": None, "value": "not json at all", "headers": {}},
            {"key": None, "value": [1, 2], "headers": {}},
        ]
    )
    assert "read 3 records" in read.stderr
    first = xrec(broker, "consume", topic, "-n", "1", "--timeout-s", "3")
    assert len(first.stdout.splitlines()) == 1


def test_raw_sends_bytes_that_are_not_utf8_and_keys_behaviour_by_user(
    broker: LocalBroker, unique: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    # a malformed first line must not decide the key of the rest
    events.write_bytes(b'\xff\xfe\x00garbage\n{"user_id": "u7", "item_id": "gear-1"}\n')
    topic = f"behaviour-{unique}"
    refused = xrec(broker, "produce", topic, str(events))
    assert refused.returncode == 2 and f"{events}:1: not JSON" in refused.stderr
    kafka = KafkaSettings(bootstrap=broker.bootstrap, behaviour_topic=topic)
    env = {"KAFKA_BEHAVIOUR_TOPIC": topic}
    sent = xrec(broker, "produce", topic, str(events), "--raw", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "none of the worker's topics" not in sent.stderr  # it is this worker's behaviour topic

    async def read() -> list[tuple[bytes | None, bytes]]:
        return [(k, v) async for k, v, _ in consume(kafka, topic, timeout_s=3)]

    got = sorted(asyncio.run(read()), key=lambda kv: kv[1])
    assert got == sorted(
        [(None, b"\xff\xfe\x00garbage"), (b"u7", b'{"user_id": "u7", "item_id": "gear-1"}')],
        key=lambda kv: kv[1],
    )


@pytest.mark.parametrize("command", ["produce", "consume"])
def test_a_broker_that_does_not_answer_is_one_line(command: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "u1"}\n')
    nobody = f"127.0.0.1:{free_port()}"
    args = ["produce", "behaviour", str(events)] if command == "produce" else ["consume", "x"]
    result = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP": nobody},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: KAFKA_BOOTSTRAP={nobody}: could not connect")


def test_a_missing_file_is_one_line() -> None:
    command = [sys.executable, "-c", "from streams.cli import main; main()", "produce"]
    result = subprocess.run(
        [*command, "behaviour", "/nonexistent/events.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: /nonexistent/events.jsonl: no such file")
