"""The worker's event loop choice (``WORKER_EVENT_LOOP``)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from pydantic import ValidationError

from streams.settings import EventLoop, WorkerSettings
from streams.worker import new_event_loop


@pytest.mark.parametrize("kind", list(EventLoop))
def test_each_loop_kind_runs_a_coroutine(kind: EventLoop) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, uvloop.Loop) is (kind is EventLoop.UVLOOP)
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()


def test_uvloop_is_the_default_and_the_env_var_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().event_loop is EventLoop.UVLOOP
    monkeypatch.setenv("WORKER_EVENT_LOOP", "asyncio")
    assert WorkerSettings().event_loop is EventLoop.ASYNCIO
    monkeypatch.setenv("WORKER_EVENT_LOOP", "trio")
    with pytest.raises(ValidationError, match="event_loop"):
        WorkerSettings()
