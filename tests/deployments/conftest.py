"""One production stack for every test of tests/deployments: bringing it up (PostgreSQL,
Prefect's server on it, the worker, the deployments) is the slowest step of the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started
