"""The scratch folder of a run: gone when the run ends well, kept and named when it fails."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from streams.processes import scratch_dir


def test_a_run_that_ends_well_leaves_nothing_behind() -> None:
    with scratch_dir("xrec-scratch-test-") as tmp:
        (tmp / "worker.log").write_text("started\n")
        (tmp / "qdrant" / "items").mkdir(parents=True)
        assert tmp.parent == Path(tempfile.gettempdir())
    assert not tmp.exists()


def test_a_failed_run_keeps_its_logs_and_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    with (
        pytest.raises(TimeoutError, match="waiting for the worker"),
        scratch_dir("xrec-scratch-test-") as tmp,
    ):
        (tmp / "worker.log").write_text("the line that explains it\n")
        raise TimeoutError("waiting for the worker")
    assert (tmp / "worker.log").read_text() == "the line that explains it\n"
    assert str(tmp) in capsys.readouterr().err
