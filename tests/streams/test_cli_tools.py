"""`xrec produce` and `xrec consume` against the real local broker, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from streams.broker import LocalBroker


def xrec(broker: LocalBroker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP": broker.bootstrap},
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
