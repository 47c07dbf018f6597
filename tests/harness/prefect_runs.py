"""Waiting for a Prefect flow run's state, as tests must: poll with a deadline."""

from __future__ import annotations

import time
from uuid import UUID


def paused_state_id(run_id: str) -> str | None:
    """The id of the run's current state when it is paused (waiting for a form), else None."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    return str(state.id) if state is not None and state.is_paused() else None


def wait_paused(run_id: str, deadline: float, other_than: str | None = None) -> str:
    """Wait until the run is paused (on a pause other than ``other_than``): its state's id.
    A thread calling this needs the test's Prefect settings: start it in a copied context
    (``contextvars.copy_context().run``)."""
    while time.monotonic() < deadline:
        paused = paused_state_id(run_id)
        if paused is not None and paused != other_than:
            return paused
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not pause in time")
