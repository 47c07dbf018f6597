"""Approvers for the tests: enrolled in a home as an administrator would, and an authenticator
app that gives each approver's code as the app would show it.

A code is accepted once per approver (its 30-second step), one step early or late: the
authenticator gives the current step, else the next one not used yet. When that is more than
one step ahead, a person would wait up to 30 s for the clock to reach it; the tests move the
platform's code clock (``tasks.approval_rules.code_clock``, set when this module is imported)
on by one whole step instead. The code is still checked for real (pyotp and hmac on the
approver's secret, the used steps in the control database): a replayed or a wrong code is
refused as before.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import tasks.approval_rules
from ground.approvers import (
    STEP_SECONDS,
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
# (test, steps) of every code the clock was moved on for: the session's summary prints them
# (tests/conftest.py), so that a test asking one approver for many codes shows.
waits: list[tuple[str, float]] = []
_ahead = timedelta(0)  # how far the code clock is ahead of the machine's, in whole steps
_lock = threading.Lock()  # approvers' codes are asked from the tests' decider threads too


def code_clock() -> datetime:
    """The time the platform checks codes at during the tests: the machine's, plus the steps
    the tests' approvers did not wait for."""
    return datetime.now(UTC) + _ahead


tasks.approval_rules.code_clock = code_clock


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


def code(home: Path, name: str) -> str:
    """A code of ``name`` the platform has not taken yet, as their app shows it."""
    global _ahead
    home = Path(home).resolve()
    listed = load_approvers(home).by_name(name)
    assert listed is not None, f"{name} is not enrolled in {home}"
    secret = read_secret(home, listed)
    key = (str(home), listed.name)
    with _lock:
        now = time_step(code_clock())
        step = max(now, _used.get(key, now - 1) + 1)
        if step > now + 1:  # the app's next code: the clock moves on to it, nobody waits
            behind = step - (now + 1)
            _ahead += timedelta(seconds=behind * STEP_SECONDS)
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            waits.append((test, float(behind)))
        _used[key] = step
        return code_at_step(secret, step)
