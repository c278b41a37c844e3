"""Fixtures shared by the stream tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference.blend import TextSpaceModel
from streams.runtime import Runtime


@pytest.fixture
def runtime(encoder, make_store) -> Iterator[Runtime]:
    """The worker's processors in process: real CPU encoder, real Qdrant Edge store."""
    store = make_store("edge")
    store.ensure_collections(encoder.dim)
    rt = Runtime(encoder, store, TextSpaceModel(version=encoder.model_version))
    yield rt
    rt.store_thread.shutdown(wait=True)  # make_store closes the store
