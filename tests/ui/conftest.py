"""One Prefect server with its web UI for the tests of tests/ui (a package, so that the server
stops once they are done)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.prefect_ui import PrefectUIServer, drain_prefect_workers


@pytest.fixture(scope="package")
def ui_server(prefect_server, tmp_path_factory) -> Iterator[PrefectUIServer]:
    """The server, its API behind ``ui_server.auth_string``."""
    # The session's test server first: Prefect's harness, started after this module pointed
    # Prefect elsewhere, was seen to hang at the end of the session draining its workers.
    with PrefectUIServer("admin:pass", tmp_path_factory.mktemp("prefect-ui")) as server:
        yield server
        drain_prefect_workers(server)
