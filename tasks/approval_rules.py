"""Who may decide on a partner batch: the approval rules, as plain functions.

A decision (approve or reject a batch, or decide one of its REVIEW children) is taken only from
a person the platform verified:

* in the terminal, the OS account running ``massar approve``/``massar review`` must be an
  approver's account (ground/approvers.py); a name typed with ``--by`` is only checked against
  it, never believed;
* in Prefect's form (the UI login is shared, so it proves nobody), the approver's name must be
  on the list;
* in both, the approver's current TOTP code (one step of drift either way), never one accepted
  before, and no more than :data:`WRONG_CODE_LIMIT` wrong codes under that name within
  :data:`WRONG_CODE_WINDOW`;
* and the person is not who started the run that prepared the batch.

:func:`identify` and :func:`check_not_preparer` take everything they look at as arguments (no
database, no Prefect): the unit tests call them directly. :func:`verify_decider` ties them to
a home's approvers list and the control database, consumes the code and records every refusal
in the hash-chained message log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ground.approvers import (
    Approver,
    ApproverList,
    ApproversFileError,
    check_code,
    is_preparer,
    load_approvers,
    read_secret,
    same_name,
)
from ground.errors import OperatorError
from warehouse.approval_records import (
    consume_code_step,
    last_code_step,
    record_refused_attempt,
    wrong_codes_since,
)
from warehouse.control import ControlDatabase, ExchangeBatch

WRONG_CODE_LIMIT = 5
WRONG_CODE_WINDOW = timedelta(minutes=15)
TERMINAL_METHOD = "os-account+totp"  # the OS account, then the approver's code
FORM_METHOD = "name+totp"  # the name typed in Prefect's form, then the approver's code


def machine_clock() -> datetime:
    """The machine's time in UTC."""
    return datetime.now(UTC)


# What a code is checked against when no ``now`` is given: the machine's clock. The tests'
# authenticator (tests/harness/approvers.py) sets a clock moved on by whole 30-second steps,
# as an approver waiting for the next code would, instead of waiting for them.
code_clock: Callable[[], datetime] = machine_clock


class DecisionRefused(OperatorError):
    """A decision that may not be recorded (not a verified approver, the preparer, already
    decided...). ``reason``: a short code for the message log (``""`` when the refusal is not
    about who asked)."""

    def __init__(self, sentence: str, reason: str = "", approver: str = "") -> None:
        super().__init__(sentence)
        self.reason = reason
        self.approver = approver  # the listed approver the claim named, when known


@dataclass(frozen=True)
class Claim:
    """What a person presents with a decision. ``os_account``: the account of the terminal's
    process (``ground.approvers.current_os_account()``), empty for a form; ``name``: the name
    typed (``--by`` or the form's field); ``code``: the TOTP code typed."""

    channel: str  # cli | prefect-ui | demo
    code: str = ""
    name: str = ""
    os_account: str = ""

    @property
    def label(self) -> str:
        """Who asked, as the message log shows a refused attempt."""
        if self.os_account:
            return f"os:{self.os_account}" + (f" as {self.name}" if self.name else "")
        return self.name


@dataclass(frozen=True)
class VerifiedIdentity:
    name: str  # as the approvers list spells it
    os_account: str  # the terminal's account; "" for a form
    method: str  # TERMINAL_METHOD | FORM_METHOD
    step: int  # the TOTP step accepted


def _what(act: str) -> str:
    return "decision" if act == "approval" else "review decision"


def identify(
    approvers: ApproverList,
    claim: Claim,
    *,
    batch_id: str,
    at: datetime,
    secret_of: Callable[[Approver], str],
    last_step: Callable[[str], int | None],
    wrong_codes: Callable[[str], int],
    act: str = "approval",
) -> tuple[Approver, int, str]:
    """The approver a claim proves to be, the TOTP step of its code and the method: the
    terminal's OS account (a ``--by`` name must be that approver's) or the form's name, then
    the code. :class:`DecisionRefused` with its reason otherwise."""
    what, nothing = _what(act), "nothing was recorded"
    if not approvers.approvers:
        raise DecisionRefused(
            f"Nobody is on the approvers list ({approvers.path}), so the {what} on batch "
            f"{batch_id} was not recorded; an administrator enrols each approver with "
            "'massar approvers add NAME --os-account ACCOUNT' (massar.toml's approvers and the "
            "environment are not read).",
            "no-approvers",
        )
    if claim.os_account:
        approver = approvers.by_os_account(claim.os_account)
        method = TERMINAL_METHOD
        if approver is None:
            raise DecisionRefused(
                f"The account {claim.os_account} you are logged in with is not an approver's "
                f"account ({approvers.path}), so the {what} on batch {batch_id} was not "
                "recorded; an approver decides under their own account.",
                "unlisted-account",
            )
        if claim.name.strip() and not same_name(claim.name, approver.name):
            raise DecisionRefused(
                f"You are logged in as {claim.os_account}, which is {approver.name}'s account, "
                f"not {claim.name.strip()}'s, so the {what} on batch {batch_id} was not "
                f"recorded; {nothing}. Decide under your own account.",
                "name-mismatch",
            )
    else:
        method = FORM_METHOD
        if not claim.name.strip():
            raise DecisionRefused(
                f"The form gives no approver's name, so the {what} on batch {batch_id} was not "
                "recorded; type your name as listed and your current code.",
                "no-name",
            )
        found = approvers.by_name(claim.name)
        if found is None:
            raise DecisionRefused(
                f"{claim.name.strip()} is not on the approvers list of this installation, so "
                f"the {what} on batch {batch_id} was not recorded; the approvers are enrolled "
                "by an administrator ('massar approvers add').",
                "unlisted-name",
            )
        approver = found
    if not claim.code.strip():
        raise DecisionRefused(
            f"A {what} needs {approver.name}'s current code from their authenticator app; "
            f"none was given, so nothing was recorded on batch {batch_id}.",
            "no-code",
            approver.name,
        )
    if wrong_codes(approver.name) >= WRONG_CODE_LIMIT:
        minutes = int(WRONG_CODE_WINDOW.total_seconds() // 60)
        raise DecisionRefused(
            f"{WRONG_CODE_LIMIT} wrong codes were given under {approver.name}'s name within "
            f"{minutes} minutes, so no code is taken for them now; {nothing} on batch "
            f"{batch_id}. Try again later, and tell the administrator if it was not you.",
            "too-many-wrong-codes",
            approver.name,
        )
    checked = check_code(secret_of(approver), claim.code, at, last_step(approver.name))
    if checked.step is None:
        sentences = {
            "malformed-code": f"The code given for {approver.name} is not 6 digits",
            "wrong-code": f"The code given for {approver.name} is not their current code",
            "replayed-code": f"The code given for {approver.name} was used already",
        }
        raise DecisionRefused(
            f"{sentences[checked.reason]}, so the {what} on batch {batch_id} was not recorded; "
            "give the code the authenticator app shows now (a new one comes every 30 s).",
            checked.reason,
            approver.name,
        )
    return approver, checked.step, method


def check_not_preparer(
    approver: Approver, prepared_by: str, batch_id: str, act: str = "approval"
) -> None:
    """:class:`DecisionRefused` when the approver started the run that prepared the batch."""
    if is_preparer(approver, prepared_by):
        verb = "approve it" if act == "approval" else "decide its REVIEW children"
        raise DecisionRefused(
            f"{approver.name} prepared batch {batch_id} (the run was started by "
            f"{prepared_by}) and cannot {verb}; another approver must decide.",
            "preparer",
            approver.name,
        )


def verify_decider(
    home: Path,
    database: ControlDatabase,
    batch: ExchangeBatch,
    claim: Claim,
    act: str = "approval",
    now: datetime | None = None,
) -> VerifiedIdentity:
    """Who decides on ``batch``, verified: the home's approvers list (checked by
    ``load_approvers``), :func:`identify`, the code's step taken for good, and
    :func:`check_not_preparer`. Every refusal is recorded (``refused_attempts`` and the
    message log) before :class:`DecisionRefused` is raised."""
    at = now or code_clock()
    home_path = Path(home)
    try:
        try:
            approvers = load_approvers(home_path)
        except ApproversFileError as error:
            raise DecisionRefused(str(error), "approvers-file-unsafe") from error
        approver, step, method = identify(
            approvers,
            claim,
            batch_id=batch.batch_id,
            at=at,
            secret_of=lambda person: read_secret(home_path, person),
            last_step=lambda name: last_code_step(database, name),
            wrong_codes=lambda name: wrong_codes_since(database, name, at - WRONG_CODE_WINDOW),
            act=act,
        )
        if not consume_code_step(database, approver.name, step):
            raise DecisionRefused(
                f"The code given for {approver.name} was used already, so the {_what(act)} on "
                f"batch {batch.batch_id} was not recorded; give the code the app shows now.",
                "replayed-code",
                approver.name,
            )
        check_not_preparer(approver, batch.prepared_by, batch.batch_id, act)
    except DecisionRefused as refused:
        record_refused_attempt(
            database,
            batch_id=batch.batch_id,
            partner=batch.partner,
            act=act,
            channel=claim.channel,
            claimed=refused.approver or claim.label,
            os_account=claim.os_account,
            reason=refused.reason or "refused",
            sentence=str(refused),
            manifest=batch.manifest_sha256,
        )
        raise
    return VerifiedIdentity(approver.name, claim.os_account, method, step)
