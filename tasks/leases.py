"""A flow run's leases on what runs share (warehouse/leases.py holds them in the control
database): taken when the run starts its part, renewed by a heartbeat thread while it works,
given back when it ends; a run that died leaves leases that expire and are taken over.

    @flow(name="evaluate")
    @recorded
    @leased("warehouse", evaluation_not_run)
    def evaluate(settings=None, home=None, ...): ...

``leased`` waits up to ``settings.leases.wait_seconds`` for the resource; when another run
keeps it longer, the flow's body does not run: the run ends Completed and returns what the
second argument builds from the sentence (logged as a warning, kept in the run's summary as
``note``). Inside the body, :func:`claim` takes more resources without waiting (the ingest
claims the school folders nobody else is ingesting) and :func:`wait_for` waits for one.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from ground.settings import Settings, flow_settings
from warehouse.control import ControlDatabase
from warehouse.leases import (
    Holder,
    LeaseHeld,
    acquire,
    acquire_many,
    current_leases,
    release,
    renew,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_CURRENT: contextvars.ContextVar[RunLeases | None] = contextvars.ContextVar(
    "massar_run_leases", default=None
)

WAREHOUSE = "warehouse"
PROVINCE_CHECK = "province-check"


def school_resource(school_code: str) -> str:
    return f"school:{school_code}"


def exchange_resource(partner: str) -> str:
    return f"exchange:{partner.lower()}"


class RunLeases:
    """The leases of one run (one holder: host, process, flow run), with its heartbeat."""

    def __init__(self, settings: Settings, flow: str, run_id: str = "") -> None:
        self.settings = settings
        self.expiry = timedelta(seconds=settings.leases.expiry_seconds)
        self.holder = Holder(socket.gethostname(), os.getpid(), run_id or uuid.uuid4().hex, flow)
        self.database = ControlDatabase(settings.resolved_database_url)
        self.held: list[str] = []
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # taking ------------------------------------------------------------------------------

    def claim(self, resources: list[str]) -> list[str]:
        """Take each of ``resources`` nobody else holds, without waiting; returns those taken."""
        taken = acquire_many(self.database, resources, self.holder, self.expiry)
        self._holding(taken)
        return taken

    def wait_for(self, resource: str, wait_seconds: float | None = None) -> LeaseHeld | None:
        """Take ``resource``, waiting up to ``wait_seconds`` (the settings' by default) for its
        holder to give it back or to die; None when taken, else who holds it still."""
        wait = self.settings.leases.wait_seconds if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + wait
        pause = min(2.0, max(0.2, self.expiry.total_seconds() / 4))
        while True:
            if acquire(self.database, resource, self.holder, self.expiry):
                self._holding([resource])
                return None
            if time.monotonic() >= deadline:
                holders = current_leases(self.database, resource)
                holder = next((h for h in holders if h.resource == resource), None)
                if holder is not None:
                    return holder
                continue  # it expired or was given back just now: try once more
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())) or pause)

    def give_back(self, resources: list[str]) -> None:
        release(self.database, self.holder, resources)
        self.held = [r for r in self.held if r not in resources]

    def close(self) -> None:
        """Stop the heartbeat and give every lease back."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
        try:
            if self.held:
                release(self.database, self.holder)
        except Exception as error:  # the database is away: the leases expire by themselves
            log.warning("The run's leases could not be given back (%r); they expire.", error)
        finally:
            self.held = []
            self.database.dispose()

    # heartbeat ---------------------------------------------------------------------------

    def _holding(self, resources: list[str]) -> None:
        self.held.extend(r for r in resources if r not in self.held)
        if self.held and self._beat is None:
            self._beat = threading.Thread(
                target=self._heartbeat, name=f"lease-heartbeat-{self.holder.run_id}", daemon=True
            )
            self._beat.start()

    def _heartbeat(self) -> None:
        interval = self.expiry.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                count = renew(self.database, self.holder, self.expiry)
            except Exception as error:  # e.g. the database restarting: try again next beat
                log.warning("The run's leases could not be renewed (%r); trying again.", error)
                continue
            if count < len(self.held):
                log.warning(
                    "%d of the run's %d leases were taken over by another run (this run "
                    "was not heard from for %s s).",
                    len(self.held) - count,
                    len(self.held),
                    self.expiry.total_seconds(),
                )


@contextmanager
def run_leases(settings: Settings, flow: str, run_id: str = "") -> Iterator[RunLeases]:
    """The run's leases for the ``with`` block (given back at its end, whatever happens)."""
    leases = RunLeases(settings, flow, run_id)
    token = _CURRENT.set(leases)
    try:
        yield leases
    finally:
        _CURRENT.reset(token)
        leases.close()


def current() -> RunLeases | None:
    """The leases of the flow run being executed (set by :func:`leased`)."""
    return _CURRENT.get()


def busy_sentence(what: str, holder: LeaseHeld, waited: float, then: str) -> str:
    """One sentence: what another run holds, how long this one waited, what happens now."""
    return (
        f"{what} is held by {holder.sentence()}; this run waited {waited:g} s for it, then {then}"
    )


def leased(
    resource: str | Callable[[dict[str, Any]], str] | None,
    not_run: Callable[[dict[str, Any], str], Any] | None = None,
    what: Callable[[str], str] = lambda r: f"The {r}",
) -> Callable[[F], F]:
    """Decorate a flow function (under ``@recorded``): the run holds ``resource`` (a name, or
    a function of the flow's arguments) while its body runs. When another run holds it past
    the settings' wait, the body is skipped and ``not_run(arguments, sentence)`` is returned
    (the run completes). ``resource=None``: the run only gets its leases' holder (for
    :func:`claim` inside the body)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            # the flow's parameter carries no secrets: read them again (ground.settings)
            settings = flow_settings(arguments.get("settings"), arguments.get("home"))
            from prefect.runtime import flow_run

            flow = str(flow_run.flow_name or fn.__name__)
            with run_leases(settings, flow, str(flow_run.id or "")) as leases:
                name = resource(arguments) if callable(resource) else resource
                if name is not None:
                    holder = leases.wait_for(name)
                    if holder is not None:
                        sentence = busy_sentence(
                            what(name),
                            holder,
                            settings.leases.wait_seconds,
                            "ended without doing its work (the other run does it, or the next "
                            "run will).",
                        )
                        _warn(sentence)
                        return not_run(arguments, sentence) if not_run else {"note": sentence}
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


def _warn(sentence: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(sentence)
    except Exception:  # outside a run (tests of the plain functions)
        log.warning(sentence)


def claim_schools(
    settings: Settings, schools: dict[str, list[Path]]
) -> tuple[dict[str, list[Path]], str]:
    """The school folders of ``schools`` this run may ingest (nobody else is ingesting them),
    and a sentence about those left to another run ("" when none)."""
    leases = current()
    if leases is None or not schools:
        return schools, ""
    wanted = {school_resource(code): code for code in schools}
    taken = set(leases.claim(list(wanted)))
    left = [code for resource, code in wanted.items() if resource not in taken]
    if not left:
        return schools, ""
    holders = {
        h.resource: h for h in current_leases(leases.database, "school:") if h.resource in wanted
    }
    runs = sorted({h.sentence() for h in holders.values()})
    sentence = (
        f"{len(left)} school folder(s) ({', '.join(sorted(left)[:10])}"
        + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        + ") were being ingested by another run"
        + (f" ({'; '.join(runs[:3])})" if runs else "")
        + ": left to it; their new files are that run's, or the next ingest's."
    )
    _warn(sentence)
    return {code: files for code, files in schools.items() if code not in left}, sentence


def wait_for_province_check(settings: Settings) -> str:
    """Take the province check (one run at a time recomputes the province's findings),
    waiting as the settings say; "" when taken, else the sentence saying it was not done."""
    leases = current()
    if leases is None:
        return ""
    holder = leases.wait_for(PROVINCE_CHECK)
    if holder is None:
        return ""
    sentence = busy_sentence(
        "The province check",
        holder,
        settings.leases.wait_seconds,
        "left it to that run (the next ingest checks the province again).",
    )
    _warn(sentence)
    return sentence


# What a flow returns when another run kept its resource (the shapes its callers read).


def night_not_run(arguments: dict[str, Any], sentence: str) -> dict[str, Any]:
    return {"night_id": None, "schools_changed": 0, "rows": {}, "transfers": 0, "note": sentence}


def evaluation_not_run(arguments: dict[str, Any], sentence: str) -> dict[str, Any]:
    return {"outcome": sentence, "rows": {}, "skipped": [], "note": sentence}


def exchange_not_run(arguments: dict[str, Any], sentence: str) -> dict[str, Any]:
    return {
        "partner": arguments["partner"],
        "acknowledgements": [],
        "overdue": [],
        "batches": [],
        "deliveries": [],
        "problems": [],
        "note": sentence,
    }


def exchange_what(resource: str) -> str:
    return f"The exchange with {resource.split(':', 1)[1].upper()}"
