"""The worker's event loop choice (``WORKER_EVENT_LOOP``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvloop
from pydantic import ValidationError

from streams.settings import EventLoop, WorkerSettings
from streams.worker import new_event_loop


@pytest.fixture
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.parametrize("kind", list(EventLoop))
def test_each_loop_kind_runs_a_coroutine_in_every_thread(
    kind: EventLoop, restore_policy: None
) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, uvloop.Loop) is (kind is EventLoop.UVLOOP)
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()
    # Faust's consumer thread makes its own loop with asyncio.new_event_loop(): same kind
    kinds: list[bool] = []
    thread = threading.Thread(target=lambda: kinds.append(_is_uvloop(asyncio.new_event_loop())))
    thread.start()
    thread.join()
    assert kinds == [kind is EventLoop.UVLOOP]


def _is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    loop.close()
    return isinstance(loop, uvloop.Loop)


def test_uvloop_is_the_default_and_the_env_var_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().event_loop is EventLoop.UVLOOP
    monkeypatch.setenv("WORKER_EVENT_LOOP", "asyncio")
    assert WorkerSettings().event_loop is EventLoop.ASYNCIO
    monkeypatch.setenv("WORKER_EVENT_LOOP", "trio")
    with pytest.raises(ValidationError, match="event_loop"):
        WorkerSettings()
