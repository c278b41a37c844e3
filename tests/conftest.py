"""Shared fixtures live in tests/fixtures/*; listed here so every test module can use them."""

import tempfile
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.model",
    "tests.fixtures.broker",
    "tests.fixtures.store",
    "tests.fixtures.worker",
]


@pytest.fixture(autouse=True, scope="session")
def _temporary_folders_under_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What the code under test, and every process it starts, makes in the temp folder lands
    in this run's pytest folder, which pytest prunes (the demo keeps its worker log on purpose;
    each suite run left it and the benchmarks' failed-run folders in /tmp)."""
    root = str(tmp_path_factory.mktemp("tmp"))
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", root)
    patch.setattr(tempfile, "tempdir", root)
    yield
    patch.undo()
