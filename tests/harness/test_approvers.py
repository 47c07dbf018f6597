"""The tests' authenticator: an approver asked for many codes gets each at once, and the
platform still checks every one for real (the step's HMAC on the secret, never twice)."""

from __future__ import annotations

import tasks.approval_rules
from ground.approvers import check_code, code_at_step, load_approvers, read_secret, time_step
from tests.harness import approvers
from tests.harness.approvers import APPROVER, code, enrol_test_approvers


def test_many_codes_in_a_row_are_each_accepted_once_on_the_platforms_clock(tmp_path):
    from massar.home import init_home

    home = init_home(tmp_path / "home").home
    enrol_test_approvers(home)
    listed = load_approvers(home).by_name(APPROVER)
    assert listed is not None
    secret = read_secret(home, listed)
    # verify_decider checks codes at this clock when no moment is given.
    assert tasks.approval_rules.code_clock is approvers.code_clock
    last_step = None
    steps = []
    for _ in range(4):  # more than the clock's current and next step give
        typed = code(home, APPROVER)
        at = tasks.approval_rules.code_clock()
        checked = check_code(secret, typed, at, last_step)
        assert checked.step is not None, checked.reason
        assert check_code(secret, typed, at, checked.step).reason == "replayed-code"
        last_step = checked.step
        steps.append(checked.step)
    assert steps == sorted(set(steps))
    # Two steps ahead of the platform's clock, or another code: refused.
    now = time_step(tasks.approval_rules.code_clock())
    at = tasks.approval_rules.code_clock()
    assert check_code(secret, code_at_step(secret, now + 2), at, None).reason == "wrong-code"
    wrong = f"{(int(code_at_step(secret, now)) + 1) % 1_000_000:06d}"
    assert check_code(secret, wrong, at, None).reason == "wrong-code"
