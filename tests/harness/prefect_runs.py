"""Waiting for a Prefect flow run's state, as tests must: poll with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


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


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 90.0, interval: float = 0.3
) -> T:
    """``condition()``'s first truthy value, polled every ``interval`` seconds with a deadline
    (never sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} did not come within {timeout:g} s")


def run_in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """Run a flow in another thread, as a worker would while the officer uses the browser;
    ``thread.outcome`` holds ``{"result": ...}`` or ``{"error": ...}`` once it ended."""

    def run() -> None:
        try:
            thread.outcome = {"result": function(*args, **kwargs)}  # type: ignore[attr-defined]
        except BaseException as error:  # the test reads it
            thread.outcome = {"error": error}  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, daemon=True)
    thread.outcome = None  # type: ignore[attr-defined]
    thread.start()
    return thread
