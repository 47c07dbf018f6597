"""The approval rules as plain functions, without Prefect and without a database: who a claim
proves to be (the terminal's OS account or the form's name, then the approver's code), the
code's drift and replay, the preparer, the approvers file and its permissions."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ground.approvers import (
    STEP_SECONDS,
    Approver,
    ApproverList,
    ApproversFileError,
    check_code,
    code_at_step,
    code_for,
    enrol_approver,
    is_preparer,
    load_approvers,
    permission_problem,
    remove_approver,
    time_step,
)
from tasks.approval_rules import (
    FORM_METHOD,
    TERMINAL_METHOD,
    WRONG_CODE_LIMIT,
    Claim,
    DecisionRefused,
    check_not_preparer,
    identify,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
OTHER_SECRET = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
AT = datetime(2026, 12, 20, 9, 30, 10, tzinfo=UTC)
FATIMA = Approver("Fatima Zahra Idrissi", "fzahra", Path("/home/keys/approvers/fzahra.totp"))
RACHID = Approver("Rachid Amrani", "rachid", Path("/home/keys/approvers/rachid.totp"))
LISTED = ApproverList(Path("/home/approvers.toml"), (FATIMA, RACHID))
SECRETS = {FATIMA.name: SECRET, RACHID.name: OTHER_SECRET}


def _identify(claim: Claim, *, last: int | None = None, wrong: int = 0, listed=LISTED, at=AT):
    return identify(
        listed,
        claim,
        batch_id="CNSS-2023-000001",
        at=at,
        secret_of=lambda person: SECRETS[person.name],
        last_step=lambda name: last,
        wrong_codes=lambda name: wrong,
    )


def _refusal(claim: Claim, **kwargs) -> DecisionRefused:
    with pytest.raises(DecisionRefused) as refused:
        _identify(claim, **kwargs)
    assert "\n" not in str(refused.value)
    return refused.value


# ---- the terminal -------------------------------------------------------------------------------


def test_the_terminal_identifies_the_approver_by_the_os_account_and_the_code():
    approver, step, method = _identify(Claim("cli", code=code_for(SECRET, AT), os_account="fzahra"))
    assert (approver, step, method) == (FATIMA, time_step(AT), TERMINAL_METHOD)


def test_a_name_typed_in_the_terminal_is_a_check_never_an_identity():
    # Rachid is logged in as himself and types Fatima's name with a valid code of Fatima's.
    refused = _refusal(
        Claim("cli", code=code_for(SECRET, AT), name="Fatima Zahra Idrissi", os_account="rachid")
    )
    assert refused.reason == "name-mismatch" and "Rachid Amrani's account" in str(refused)
    # Typed as listed (any case, any spacing), it is accepted.
    approver, _, _ = _identify(
        Claim("cli", code=code_for(SECRET, AT), name=" fatima  zahra idrissi", os_account="fzahra")
    )
    assert approver == FATIMA


def test_an_account_that_is_no_approver_is_refused_whatever_name_it_types():
    refused = _refusal(Claim("cli", code="123456", name="Fatima Zahra Idrissi", os_account="root"))
    assert refused.reason == "unlisted-account" and "root" in str(refused)


# ---- the form ----------------------------------------------------------------------------------


def test_the_form_identifies_the_approver_by_the_listed_name_and_the_code():
    approver, _, method = _identify(
        Claim("prefect-ui", code=code_for(OTHER_SECRET, AT), name="Rachid Amrani")
    )
    assert (approver, method) == (RACHID, FORM_METHOD)


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        (Claim("prefect-ui", code="123456", name=""), "no-name"),
        (Claim("prefect-ui", code="123456", name="Mallory"), "unlisted-name"),
        (Claim("prefect-ui", code="", name="Fatima Zahra Idrissi"), "no-code"),
        (Claim("prefect-ui", code="12a456", name="Fatima Zahra Idrissi"), "malformed-code"),
        (Claim("prefect-ui", code="12345", name="Fatima Zahra Idrissi"), "malformed-code"),
        # Rachid's code under Fatima's name: the code proves the person, not the name typed.
        (
            Claim("prefect-ui", code=code_for(OTHER_SECRET, AT), name="Fatima Zahra Idrissi"),
            "wrong-code",
        ),
    ],
)
def test_a_form_without_a_listed_name_and_that_persons_code_is_refused(claim, reason):
    assert _refusal(claim).reason == reason


def test_nobody_enrolled_refuses_every_decision_naming_the_enrolment_command():
    refused = _refusal(
        Claim("prefect-ui", code="123456", name="Mallory"),
        listed=ApproverList(Path("/home/approvers.toml")),
    )
    assert refused.reason == "no-approvers" and "massar approvers add" in str(refused)


def test_too_many_wrong_codes_under_a_name_stop_taking_codes_for_a_while():
    claim = Claim("prefect-ui", code=code_for(SECRET, AT), name="Fatima Zahra Idrissi")
    assert _identify(claim, wrong=WRONG_CODE_LIMIT - 1)[0] == FATIMA
    assert _refusal(claim, wrong=WRONG_CODE_LIMIT).reason == "too-many-wrong-codes"


# ---- the code: drift and replay ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_a_code_is_accepted_one_step_early_or_late_and_no_more(offset, accepted):
    step = time_step(AT) + offset
    checked = check_code(SECRET, code_at_step(SECRET, step), AT, last_step=None)
    assert (checked.step == step) is accepted
    assert checked.reason == ("" if accepted else "wrong-code")


def test_a_code_already_accepted_or_older_is_refused_as_replayed():
    code = code_for(SECRET, AT)
    now = time_step(AT)
    assert check_code(SECRET, code, AT, last_step=now - 1).step == now
    assert check_code(SECRET, code, AT, last_step=now).reason == "replayed-code"
    # Thirty seconds later the same code is still in the drift window, and still refused.
    later = AT + timedelta(seconds=STEP_SECONDS)
    assert check_code(SECRET, code, later, last_step=now).reason == "replayed-code"
    refused = _refusal(Claim("cli", code=code, os_account="fzahra"), last=now)
    assert refused.reason == "replayed-code" and "used already" in str(refused)


def test_the_codes_are_rfc_6238s():
    # RFC 6238's SHA-1 test vector: secret "12345678901234567890", T = 59 s → 94287082 (8
    # digits); its last six digits are the 6-digit code.
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert code_for(secret, datetime.fromtimestamp(59, UTC)) == "287082"


# ---- the preparer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prepared_by", "preparer"),
    [
        ("os:fzahra", True),  # Fatima's account started the run from a terminal
        ("os:root", False),
        ("Fatima Zahra Idrissi", True),  # a run started from Python under her name
        ("fatima zahra  idrissi", True),
        ("fzahra", True),
        ("schedule:cnss", False),  # Prefect's scheduler: nobody
        ("deployment:cnss", False),
        ("massar demo", False),
    ],
)
def test_who_prepared_a_batch(prepared_by, preparer):
    assert is_preparer(FATIMA, prepared_by) is preparer


def test_the_preparer_cannot_decide_on_their_batch():
    with pytest.raises(DecisionRefused, match="prepared batch B-1") as refused:
        check_not_preparer(FATIMA, "os:fzahra", "B-1")
    assert refused.value.reason == "preparer" and refused.value.approver == FATIMA.name
    check_not_preparer(FATIMA, "schedule:cnss", "B-1")  # a scheduled run: any approver


# ---- the approvers file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "owner", "secret", "problem"),
    [
        (0o100644, 0, False, None),
        (0o100600, 1000, True, None),  # the home's owner
        (0o100664, 0, False, "can be changed by other accounts"),
        (0o100646, 0, False, "can be changed by other accounts"),
        (0o040777, 0, False, "can be changed by other accounts"),
        (0o100644, 1234, False, "belongs to another account"),
        (0o100640, 0, True, "can be read by other accounts"),
    ],
)
def test_files_others_could_change_are_not_trusted(mode, owner, secret, problem):
    found = permission_problem(Path("/h/approvers.toml"), mode, owner, {0, 1000}, secret)
    assert (found is None) if problem is None else (problem in found)


def test_enrolment_writes_a_list_and_a_0600_secret_and_refuses_a_second_enrolment(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    enrolled = enrol_approver(home, "Fatima  Zahra Idrissi", "fzahra")
    assert enrolled.uri.startswith("otpauth://totp/") and enrolled.secret in enrolled.uri
    assert stat.S_IMODE(enrolled.approver.totp_secret_file.stat().st_mode) == 0o600
    listed = load_approvers(home)
    assert [(a.name, a.os_account) for a in listed.approvers] == [
        ("Fatima Zahra Idrissi", "fzahra")
    ]
    with pytest.raises(Exception, match="on the approvers list already"):
        enrol_approver(home, "Someone", "fzahra")
    removed = remove_approver(home, "fatima zahra idrissi")
    assert not removed.totp_secret_file.exists() and load_approvers(home).approvers == ()


def test_a_list_writable_by_others_stops_every_decision_with_a_sentence(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    enrol_approver(home, "Fatima Zahra Idrissi", "fzahra")
    os.chmod(home / "approvers.toml", 0o666)
    with pytest.raises(ApproversFileError, match="chmod go-w") as raised:
        load_approvers(home)
    assert "\n" not in str(raised.value)


def test_a_secret_outside_the_secrets_folder_is_refused(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "approvers.toml").write_text(
        '[[approver]]\nname = "M"\nos_account = "m"\ntotp_secret_file = "../../etc/shadow"\n'
    )
    with pytest.raises(ApproversFileError, match="outside"):
        load_approvers(home)
