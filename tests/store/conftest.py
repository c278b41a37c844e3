"""Every contract test runs on both real engines.

``edge`` is Qdrant Edge (the embedded default); ``local`` is qdrant-client's local mode, which
stands in for a Qdrant server here because no server can run on CI machines: it goes through
ServerStore's requests and answers as a server (URL set) does, minus the network, and minus
what local mode cannot take: the keyword index on the domain field, the search parameters
(ACORN, hnsw_ef), the API key and the timeout. Those are checked in test_server_requests.py,
on the requests a server-configured store sends to a real engine behind a recorder.
"""

from __future__ import annotations

import pytest

from tests.fixtures.store import ENGINES, Engine


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The engine under test: ``edge`` or ``local`` (the server stand-in)."""
    return request.param
