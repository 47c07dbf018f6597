"""Who may approve a partner batch, and how a person proves to be one of them.

The approvers list is ``<home>/approvers.toml``, changed by an administrator only (``massar
approvers add``/``remove``); nothing in ``massar.toml`` or the environment overrides it::

    [[approver]]
    name = "Fatima Zahra Idrissi"             # as decisions record it
    os_account = "fzahra"                       # the account she runs 'massar approve' under
    totp_secret_file = "keys/approvers/fzahra.totp"   # her second factor, 0600

Each approver has a second factor: a TOTP secret (RFC 6238, 30-second steps, 6 digits), kept
0600 under ``<home>/keys/approvers/`` and enrolled once in the person's authenticator app.
A code is accepted one step early or late, and never twice: the last accepted step per
approver is kept in the control database (warehouse/approval_records.py ``consume_code_step``).

The list and the secrets are refused while anybody else than the home's owner (or root) could
change them: a file or folder writable by its group or by others, or owned by another account,
stops every decision with a sentence. This module reads files and computes codes; the rules
that combine them with a batch are tasks/approval_rules.py.
"""

from __future__ import annotations

import hmac
import os
import pwd
import re
import stat
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyotp

from ground.errors import OperatorError

APPROVERS_FILE = "approvers.toml"
SECRETS_FOLDER = Path("keys") / "approvers"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # a code of the step before or after the current one is accepted


class ApproversFileError(OperatorError):
    """The approvers list cannot be trusted or read; the message is one sentence."""


@dataclass(frozen=True)
class Approver:
    name: str
    os_account: str
    totp_secret_file: Path  # absolute


def same_name(left: str, right: str) -> bool:
    """Names compare without case and with single spaces."""
    return " ".join(left.split()).casefold() == " ".join(right.split()).casefold()


@dataclass(frozen=True)
class ApproverList:
    path: Path
    approvers: tuple[Approver, ...] = ()

    def by_name(self, name: str) -> Approver | None:
        return next((a for a in self.approvers if same_name(a.name, name)), None)

    def by_os_account(self, account: str) -> Approver | None:
        return next((a for a in self.approvers if a.os_account == account), None)


def current_os_account() -> str:
    """The account this process runs under (its effective uid's name in the password
    database): who typed the command, as the operating system authenticated it."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


# ---- who may have changed a file ------------------------------------------------------------


def permission_problem(
    path: Path, mode: int, owner: int, trusted_owners: set[int], secret: bool = False
) -> str | None:
    """Why a file or folder of the approvers cannot be trusted, or None: writable by its group
    or by others, owned by an account other than ``trusted_owners`` (root and the home's
    owner), and for a ``secret``, readable by anybody else than its owner."""
    what = "folder" if stat.S_ISDIR(mode) else "file"
    if owner not in trusted_owners:
        return (
            f"The approvers' {what} {path} belongs to another account (uid {owner}) than the "
            "home's owner, so no decision is taken; an administrator gives it back "
            f"(chown) to the home's owner."
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"The approvers' {what} {path} can be changed by other accounts (mode "
            f"{stat.S_IMODE(mode):04o}), so no decision is taken; an administrator runs "
            f"'chmod go-w {path}'."
        )
    if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"The approver's secret {path} can be read by other accounts (mode "
            f"{stat.S_IMODE(mode):04o}), so no decision is taken; an administrator runs "
            f"'chmod 600 {path}' and enrols the approver again (the secret may be known)."
        )
    return None


def _trusted_owners(home: Path) -> set[int]:
    return {0, home.stat().st_uid}


def _check(path: Path, trusted: set[int], secret: bool = False) -> None:
    info = path.stat()
    problem = permission_problem(path, info.st_mode, info.st_uid, trusted, secret)
    if problem:
        raise ApproversFileError(problem)


# ---- the list -------------------------------------------------------------------------------


def approvers_path(home: Path) -> Path:
    return home / APPROVERS_FILE


def load_approvers(home: Path) -> ApproverList:
    """The approvers list of the home, checked: the home, the list, the secrets' folder and
    each secret may be changed only by the home's owner or root. No file: an empty list (every
    decision is refused, naming the command that enrols an approver). Raises
    :class:`ApproversFileError` with one sentence otherwise."""
    home = home.resolve()
    path = approvers_path(home)
    trusted = _trusted_owners(home)
    _check(home, trusted)
    if not path.exists():
        return ApproverList(path)
    _check(path, trusted)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ApproversFileError(
            f"The approvers list {path} is not valid TOML ({error}); no decision is taken "
            "until an administrator fixes it."
        ) from error
    entries = document.get("approver", [])
    if not isinstance(entries, list):
        raise ApproversFileError(
            f"The approvers list {path} must hold [[approver]] tables; no decision is taken."
        )
    approvers: list[Approver] = []
    for number, entry in enumerate(entries, 1):
        fields = {"name", "os_account", "totp_secret_file"}
        if (
            not isinstance(entry, dict)
            or set(entry) != fields
            or not all(isinstance(entry[f], str) and entry[f].strip() for f in fields)
        ):
            raise ApproversFileError(
                f"Approver {number} of {path} must have exactly name, os_account and "
                "totp_secret_file; no decision is taken until an administrator fixes it."
            )
        secret = (home / entry["totp_secret_file"]).resolve()
        if not secret.is_relative_to(home / SECRETS_FOLDER):
            raise ApproversFileError(
                f"The secret of approver {entry['name']} in {path} is outside "
                f"{home / SECRETS_FOLDER}; no decision is taken."
            )
        approver = Approver(" ".join(entry["name"].split()), entry["os_account"].strip(), secret)
        for known in approvers:
            if same_name(known.name, approver.name) or known.os_account == approver.os_account:
                raise ApproversFileError(
                    f"{path} lists {approver.name} ({approver.os_account}) twice, or two "
                    "approvers under one account; no decision is taken."
                )
        approvers.append(approver)
    return ApproverList(path, tuple(approvers))


def read_secret(home: Path, approver: Approver) -> str:
    """The approver's TOTP secret, after checking that only its owner can read it."""
    home = home.resolve()
    trusted = _trusted_owners(home)
    folder = home / SECRETS_FOLDER
    if not approver.totp_secret_file.is_file():
        raise ApproversFileError(
            f"The secret of approver {approver.name} ({approver.totp_secret_file}) is "
            "missing; an administrator enrols the approver again."
        )
    _check(folder, trusted)
    _check(approver.totp_secret_file, trusted, secret=True)
    return approver.totp_secret_file.read_text(encoding="ascii").strip()


# ---- codes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeCheck:
    """``step``: the time step the code belongs to (None when refused); ``reason``: ``""``,
    ``malformed-code``, ``wrong-code`` or ``replayed-code``."""

    step: int | None
    reason: str = ""


def time_step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def code_for(secret: str, at: datetime) -> str:
    """The code an authenticator shows at ``at`` (for the demo and the tests)."""
    return code_at_step(secret, time_step(at))


def check_code(secret: str, code: str, at: datetime, last_step: int | None) -> CodeCheck:
    """Whether ``code`` is the approver's code at ``at`` (one step of drift either way) and a
    later step than ``last_step``, the last one accepted from this approver."""
    typed = re.sub(r"\s", "", code or "")
    if not re.fullmatch(rf"\d{{{DIGITS}}}", typed):
        return CodeCheck(None, "malformed-code")
    now = time_step(at)
    matched = [
        step
        for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1)
        if hmac.compare_digest(code_at_step(secret, step), typed)
    ]
    if not matched:
        return CodeCheck(None, "wrong-code")
    step = max(matched)
    if last_step is not None and step <= last_step:
        return CodeCheck(None, "replayed-code")
    return CodeCheck(step)


# ---- enrolment (administrators) -------------------------------------------------------------


def _slug(os_account: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", os_account)


def _toml_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_list(home: Path, approvers: list[Approver]) -> Path:
    path = approvers_path(home)
    lines = [
        "# Who may approve a partner batch. Changed by an administrator only, with",
        "# 'massar approvers add NAME --os-account ACCOUNT' and 'massar approvers remove NAME';",
        "# neither massar.toml nor the environment can add anybody.",
    ]
    for approver in approvers:
        relative = approver.totp_secret_file.relative_to(home)
        lines += [
            "",
            "[[approver]]",
            f"name = {_toml_text(approver.name)}",
            f"os_account = {_toml_text(approver.os_account)}",
            f"totp_secret_file = {_toml_text(relative.as_posix())}",
        ]
    temporary = path.with_name(f".{path.name}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    return path


@dataclass(frozen=True)
class Enrolment:
    approver: Approver
    secret: str
    uri: str  # otpauth:// for the person's authenticator app (shown once)


def enrol_approver(home: Path, name: str, os_account: str, issuer: str = "Massar") -> Enrolment:
    """Add an approver with a new TOTP secret (0600 under keys/approvers/); the secret and its
    otpauth URI are returned once, to give to the person. Refused when the name or the account
    is listed already (remove it first to give a new secret)."""
    home = home.resolve()
    name = " ".join(name.split())
    os_account = os_account.strip()
    if not name or not os_account:
        raise OperatorError("An approver needs a name and the OS account they log in with.")
    current = load_approvers(home)
    if current.by_name(name) or current.by_os_account(os_account):
        raise OperatorError(
            f"{name} or the account {os_account} is on the approvers list already; "
            f"'massar approvers remove {name!r}' first to give a new secret."
        )
    folder = home / SECRETS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    os.chmod(folder.parent, stat.S_IMODE(folder.parent.stat().st_mode) & ~0o022)
    secret = pyotp.random_base32()
    secret_file = folder / f"{_slug(os_account)}.totp"
    temporary = secret_file.with_name(f".{secret_file.name}.part")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, secret_file)
    approver = Approver(name, os_account, secret_file)
    _write_list(home, [*current.approvers, approver])
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=f"{name} ({os_account})", issuer_name=issuer
    )
    return Enrolment(approver, secret, uri)


def remove_approver(home: Path, name: str) -> Approver:
    """Take an approver off the list and delete their secret."""
    home = home.resolve()
    current = load_approvers(home)
    found = current.by_name(name)
    if found is None:
        listed = ", ".join(a.name for a in current.approvers) or "nobody"
        raise OperatorError(f"{name} is not on the approvers list (it lists {listed}).")
    _write_list(home, [a for a in current.approvers if a is not found])
    found.totp_secret_file.unlink(missing_ok=True)
    return found


def is_preparer(approver: Approver, prepared_by: str) -> bool:
    """Whether ``approver`` is who started the run that prepared a batch. ``prepared_by`` is
    ``os:<account>`` for a run started from a terminal, ``schedule:<deployment>`` or
    ``deployment:<deployment>`` for Prefect's runs (nobody's), or a person's name (runs
    started from Python, batches recorded before preparers were accounts)."""
    recorded = prepared_by.strip()
    if recorded.startswith("os:"):
        return recorded[3:] == approver.os_account
    if recorded.startswith(("schedule:", "deployment:")):
        return False
    return same_name(recorded, approver.name) or recorded == approver.os_account
