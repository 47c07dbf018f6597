"""Approvers for the tests: enrolled in a home as an administrator would, and an authenticator
app that gives each approver's code as the app would show it.

A code is accepted once per approver (its 30-second step), one step early or late: the
authenticator gives the current step, else the next one not used yet, and when that is more
than one step ahead it waits (with a deadline) until the clock reaches it, as a person would
wait for the next code."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from ground.approvers import (
    code_at_step,
    current_os_account,
    enrol_approver,
    load_approvers,
    read_secret,
    time_step,
)

APPROVER = "Fatima Zahra Idrissi"  # enrolled under the account running the tests
PREPARER = "Rachid Amrani"  # an approver too, under another account
PREPARER_ACCOUNT = "rachid"
SECOND_APPROVER = "Youssef Bennani"
SECOND_ACCOUNT = "ybennani"

_used: dict[tuple[str, str], int] = {}
# (test, seconds) of every code that waited for the clock's next step: the session's summary
# prints them (tests/conftest.py), so that a test paying 30 s a code shows.
waits: list[tuple[str, float]] = []


def enrol(home: Path, name: str, os_account: str) -> str:
    """Enrol ``name`` in the home (once) and return their TOTP secret."""
    listed = load_approvers(home).by_name(name)
    if listed is None:
        return enrol_approver(home, name, os_account).secret
    return read_secret(home, listed)


def enrol_test_approvers(home: Path) -> None:
    """The tests' approvers: the officer at this terminal, the preparer, a second officer."""
    enrol(home, APPROVER, current_os_account())
    enrol(home, PREPARER, PREPARER_ACCOUNT)
    enrol(home, SECOND_APPROVER, SECOND_ACCOUNT)


def code(home: Path, name: str, timeout: float = 70.0) -> str:
    """A code of ``name`` the platform has not taken yet, as their app shows it."""
    home = Path(home).resolve()
    listed = load_approvers(home).by_name(name)
    assert listed is not None, f"{name} is not enrolled in {home}"
    secret = read_secret(home, listed)
    key = (str(home), listed.name)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        now = time_step(datetime.now(UTC))
        step = max(now, _used.get(key, now - 1) + 1)
        if step <= now + 1:
            _used[key] = step
            if time.monotonic() - started > 1:
                test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
                waits.append((test, time.monotonic() - started))
            return code_at_step(secret, step)
        if time.monotonic() > deadline:
            raise AssertionError(f"no new code for {name} within {timeout:g} s")
        time.sleep(0.5)  # the next code comes with the clock's next 30-second step
