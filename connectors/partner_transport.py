"""Moving a partner fund's files: delivering a batch, fetching requests and acknowledgements.

Files are names and bytes here; what they contain (XML, CSV, signatures, manifest) is the
exchange profile's business. One interface, :class:`PartnerTransport`, has two implementations:

* :class:`SftpPartnerTransport`: the fund's SFTP server, host key pinned, key login only;
* :class:`LocalFolderTransport`: the embedded mode (empty ``host``), folders
  ``exchange/<partner>/<remote_inbox>/`` and ``exchange/<partner>/<remote_outbox>/`` of the home.

:func:`partner_transport` picks one from a partner's settings.

Delivery (:func:`deliver_batch`) never shows half a file under its final name: each file is
written as ``.<name>.part`` in the partner's inbox, read back and compared (size and sha256),
then renamed without ever replacing an existing file. What was delivered is kept by a
:class:`DeliveryLedger` (``warehouse.exchange_ledger.ExchangeLedger`` over the control database), so
running the same batch again sends nothing twice. Connection losses are retried with an
exponential backoff; a changed host key stops everything at once.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from connectors.outside_names import (
    OutsideName,
    bare_name_problem,
    full_match,
    name_tag,
    path_inside,
    shown_name,
)
from connectors.sftp import (
    AuthenticationRefused,
    Endpoint,
    FileTooLarge,
    HostKeyRefused,
    SftpError,
    SftpUnavailable,
    download_file,
    guarded,
    open_sftp,
    regular_files,
    remote_sha256,
    rename_without_overwrite,
    write_remote_file,
)

__all__ = [
    "AuthenticationRefused",
    "DeliveryConflict",
    "DeliveryError",
    "DeliveryFailed",
    "DeliveryLedger",
    "DeliveryRefused",
    "DeliveryReport",
    "HostKeyChanged",
    "HostKeyRefused",
    "LocalFolderTransport",
    "PartnerSession",
    "PartnerTransport",
    "ReceivedFile",
    "RefusedFile",
    "RetryPolicy",
    "SftpError",
    "SftpPartnerTransport",
    "TransportRefused",
    "TransportUnavailable",
    "deliver_batch",
    "fetch_acknowledgements",
    "fetch_outbox",
    "fetch_requests",
    "partner_transport",
    "partner_transport_for",
    "temporary_name",
]

# Progress of one file's upload: (file name, bytes written, file size).
FileProgress = Callable[[str, int, int], None]

_SHA256 = re.compile(r"[0-9a-f]{64}")


class DeliveryError(Exception):
    """A delivery that did not happen or stopped; the message is one sentence for the officer."""


class DeliveryRefused(DeliveryError):
    """The ledger does not allow this delivery (no approval, other files than approved...)."""


class DeliveryConflict(DeliveryError):
    """The partner already holds another file under a final name: nothing is overwritten."""


class DeliveryFailed(DeliveryError):
    """The connection kept failing after every retry; what was delivered stays recorded."""


class TransportUnavailable(SftpUnavailable):
    """The partner's side is unreachable or the transfer broke: a retry may succeed."""


class HostKeyChanged(HostKeyRefused, DeliveryError):
    """The partner's server is not the pinned one: nothing is sent and nothing is retried."""


class TransportRefused(SftpError, DeliveryError):
    """The partner's server refused our login or an operation on a live connection."""


def temporary_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}.part"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- the interface ------------------------------------------------------------------------


class PartnerSession(Protocol):
    """One open connection to the partner's side. Names are plain file names."""

    def final_sha256(self, name: str) -> str | None:
        """sha256 of the file under its final name in the partner's inbox (its bytes are read
        back), or None when there is none."""

    def write_temporary(self, name: str, data: bytes, progress: FileProgress | None) -> None:
        """Write ``data`` under :func:`temporary_name` in the inbox (replacing a stale one)."""

    def temporary_digest(self, name: str) -> tuple[int, str] | None:
        """(size, sha256) of the temporary file, read back from the partner's side."""

    def publish(self, name: str) -> bool:
        """Rename the temporary file to ``name``; False (and nothing renamed) when ``name``
        already exists. Never replaces a file."""

    def discard_temporary(self, name: str) -> None:
        """Remove the temporary file of ``name`` if there is one."""

    def outbox_files(self) -> list[tuple[str, int]]:
        """(name, size) of the files the partner left in its outbox, hidden names skipped."""

    def download(self, name: str, target: Path, max_bytes: int | None = None) -> tuple[int, str]:
        """Copy outbox file ``name`` to ``target`` (temporary name, then rename); returns
        (size, sha256) of the bytes received. Past ``max_bytes`` nothing is kept
        (:class:`~connectors.sftp.FileTooLarge`)."""

    def inbox_path(self, name: str) -> str:
        """Where ``name`` lands on the partner's side (for the ledger and messages)."""


class PartnerTransport(Protocol):
    """How to reach one partner; :meth:`session` opens a connection."""

    partner: str
    received_folder: Path  # where fetched requests and acknowledgements are kept locally

    def session(self) -> AbstractContextManager[PartnerSession]: ...

    def describe(self) -> str:
        """Where the files go, for messages (``sftp://user@host:port/inbox`` or a folder)."""


# ---- SFTP ---------------------------------------------------------------------------------


class _SftpSession:
    def __init__(self, sftp: Any, endpoint: Endpoint) -> None:
        self._sftp, self._endpoint = sftp, endpoint
        self._where = f"{endpoint.host}:{endpoint.port}"

    def inbox_path(self, name: str) -> str:
        return f"{self._endpoint.remote_inbox.rstrip('/')}/{name}"

    def _temporary(self, name: str) -> str:
        return self.inbox_path(temporary_name(name))

    def final_sha256(self, name: str) -> str | None:
        with guarded(self._sftp, self._where, f"check {self.inbox_path(name)}"):
            found = remote_sha256(self._sftp, self.inbox_path(name))
        return None if found is None else found[1]

    def write_temporary(self, name: str, data: bytes, progress: FileProgress | None) -> None:
        path = self._temporary(name)

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(name, done, total)

        with guarded(self._sftp, self._where, f"upload {path}"):
            write_remote_file(self._sftp, path, data, report)

    def temporary_digest(self, name: str) -> tuple[int, str] | None:
        path = self._temporary(name)
        with guarded(self._sftp, self._where, f"read back {path}"):
            return remote_sha256(self._sftp, path)

    def publish(self, name: str) -> bool:
        with guarded(self._sftp, self._where, f"rename {self._temporary(name)}"):
            return rename_without_overwrite(
                self._sftp, self._temporary(name), self.inbox_path(name)
            )

    def discard_temporary(self, name: str) -> None:
        where = f"remove {self._temporary(name)}"
        with guarded(self._sftp, self._where, where), suppress(FileNotFoundError):
            self._sftp.remove(self._temporary(name))

    def outbox_files(self) -> list[tuple[str, int]]:
        folder = self._endpoint.remote_outbox
        with guarded(self._sftp, self._where, f"list {folder}"):
            return regular_files(self._sftp, folder)

    def download(self, name: str, target: Path, max_bytes: int | None = None) -> tuple[int, str]:
        path = f"{self._endpoint.remote_outbox.rstrip('/')}/{name}"
        with guarded(self._sftp, self._where, f"download {path}"):
            return download_file(self._sftp, path, target, max_bytes)


class SftpPartnerTransport:
    """A partner fund's SFTP server: we upload into ``remote_inbox`` and fetch its requests
    and acknowledgements from ``remote_outbox``."""

    def __init__(self, partner: str, endpoint: Endpoint, received_folder: Path) -> None:
        self.partner, self.endpoint, self.received_folder = partner, endpoint, received_folder

    def describe(self) -> str:
        e = self.endpoint
        return f"sftp://{e.username}@{e.host}:{e.port}/{e.remote_inbox.lstrip('/')}"

    @contextmanager
    def session(self) -> Iterator[PartnerSession]:
        # Refusals become DeliveryErrors too, so one except clause catches what stops a batch.
        try:
            with open_sftp(self.endpoint, f"partners.{self.partner}.host_key") as sftp:
                yield _SftpSession(sftp, self.endpoint)
        except (SftpUnavailable, DeliveryError):
            raise
        except HostKeyRefused as error:
            raise HostKeyChanged(str(error)) from error
        except SftpError as error:
            raise TransportRefused(str(error)) from error


# ---- local folders (embedded mode) ----------------------------------------------------------


class _FolderSession:
    def __init__(self, inbox: Path, outbox: Path) -> None:
        self._inbox, self._outbox = inbox, outbox

    def inbox_path(self, name: str) -> str:
        return str(self._inbox / name)

    def final_sha256(self, name: str) -> str | None:
        path = self._inbox / name
        return _file_digest(path)[1] if path.is_file() else None

    def write_temporary(self, name: str, data: bytes, progress: FileProgress | None) -> None:
        self._inbox.mkdir(parents=True, exist_ok=True)
        path = self._inbox / temporary_name(name)
        with open(path, "wb") as file:
            view = memoryview(data)
            step = 1024 * 1024
            for start in range(0, len(data), step):
                file.write(view[start : start + step])
                if progress is not None:
                    progress(name, min(start + step, len(data)), len(data))
            file.flush()
            os.fsync(file.fileno())

    def temporary_digest(self, name: str) -> tuple[int, str] | None:
        path = self._inbox / temporary_name(name)
        return _file_digest(path) if path.is_file() else None

    def publish(self, name: str) -> bool:
        temporary, final = self._inbox / temporary_name(name), self._inbox / name
        try:
            os.link(temporary, final)  # fails if final exists: nothing is ever replaced
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            if final.exists():
                return False
            os.rename(temporary, final)
            return True
        temporary.unlink()
        return True

    def discard_temporary(self, name: str) -> None:
        (self._inbox / temporary_name(name)).unlink(missing_ok=True)

    def outbox_files(self) -> list[tuple[str, int]]:
        if not self._outbox.is_dir():
            return []
        return sorted(
            (entry.name, entry.stat().st_size)
            for entry in os.scandir(self._outbox)
            if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False)
        )

    def download(self, name: str, target: Path, max_bytes: int | None = None) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(temporary_name(target.name))
        with open(path_inside(self._outbox, name), "rb") as source:
            data = source.read() if max_bytes is None else source.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise FileTooLarge(f"the file is larger than the {max_bytes} bytes allowed")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return len(data), _sha256(data)


def _file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class LocalFolderTransport:
    """The embedded mode: the partner's inbox and outbox are folders of the home."""

    def __init__(self, partner: str, inbox: Path, outbox: Path, received_folder: Path) -> None:
        self.partner, self.inbox, self.outbox = partner, inbox, outbox
        self.received_folder = received_folder

    def describe(self) -> str:
        return f"folder {self.inbox}"

    @contextmanager
    def session(self) -> Iterator[PartnerSession]:
        yield _FolderSession(self.inbox, self.outbox)


def partner_transport(partner: str, endpoint: Endpoint, local_root: Path) -> PartnerTransport:
    """The transport for one partner's settings (``PartnerSettings``).

    ``local_root`` is the partner's folder of the home (``settings.exchange / partner``): with
    an empty ``host`` (embedded mode) the inbox and outbox are its sub-folders named by
    ``remote_inbox`` and ``remote_outbox``; in both modes fetched files are kept in
    ``local_root / "received"``.
    """
    received = local_root / "received"
    if not endpoint.host:
        return LocalFolderTransport(
            partner,
            local_root / endpoint.remote_inbox.strip("/"),
            local_root / endpoint.remote_outbox.strip("/"),
            received,
        )
    return SftpPartnerTransport(partner, endpoint, received)


def partner_transport_for(settings: Any, partner: str) -> PartnerTransport:
    """:func:`partner_transport` from the installation's ``Settings`` and a partner's key."""
    return partner_transport(partner, settings.partners[partner], settings.exchange / partner)


# ---- delivery -----------------------------------------------------------------------------


class DeliveryLedger(Protocol):
    """What delivery needs from the control database
    (``warehouse.exchange_ledger.ExchangeLedger``)."""

    def refusal(
        self, batch_id: str, partner: str, approver: str, file_hashes: Mapping[str, str]
    ) -> str | None:
        """Why this batch may not be delivered with these files (a sentence), or None."""

    def delivered_files(self, batch_id: str) -> dict[str, str]:
        """File name → sha256 of the files of the batch already delivered."""

    def count_attempt(
        self, batch_id: str, partner: str, file_name: str, sha256: str, size: int, remote: str
    ) -> int:
        """Record one more upload attempt of a file (pending); returns its attempts so far."""

    def record_delivered(
        self,
        batch_id: str,
        partner: str,
        file_name: str,
        sha256: str,
        size: int,
        remote: str,
        signature_sha256: str,
        approver: str,
    ) -> int:
        """Mark the file delivered and append its message-log entry, in one transaction;
        returns the entry's sequence number."""

    def finish_batch(self, batch_id: str) -> None:
        """Every file of the batch is delivered: the batch becomes ``delivered``."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on connection losses: up to ``attempts`` tries in a row without delivering a
    file, waiting ``base_delay × 2^(n-1)`` seconds (at most ``max_delay``) before try n+1."""

    attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 120.0

    def delay(self, failures: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (failures - 1))


@dataclass
class DeliveryReport:
    """What :func:`deliver_batch` did. ``message`` is the sentence to show the officer."""

    partner: str
    batch_id: str
    destination: str
    sent: list[str] = field(default_factory=list)  # uploaded in this run
    found_at_partner: list[str] = field(default_factory=list)  # same bytes already there
    already_delivered: list[str] = field(default_factory=list)  # ledger said delivered
    attempts: dict[str, int] = field(default_factory=dict)  # per file, in the ledger
    connection_failures: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    log_sequences: list[int] = field(default_factory=list)

    @property
    def nothing_sent(self) -> bool:
        return not self.sent and not self.found_at_partner

    @property
    def message(self) -> str:
        if self.nothing_sent:
            return (
                f"Batch {self.batch_id} was already delivered to {self.partner} "
                f"({len(self.already_delivered)} file(s) in the ledger); nothing was sent again."
            )
        parts = [f"{len(self.sent)} file(s) sent ({self.bytes_sent / 1e6:.1f} MB)"]
        if self.found_at_partner:
            parts.append(f"{len(self.found_at_partner)} already there with the same content")
        if self.already_delivered:
            parts.append(f"{len(self.already_delivered)} delivered earlier")
        if self.connection_failures:
            parts.append(f"{self.connection_failures} connection failure(s) retried")
        return (
            f"Batch {self.batch_id} is delivered to {self.partner} at {self.destination}: "
            + ", ".join(parts)
            + "."
        )


def _check_names(files: Mapping[str, bytes]) -> None:
    if not files:
        raise ValueError("a batch delivers at least one file")
    for name in files:
        if (
            not name
            or name.startswith(".")
            or "/" in name
            or "\\" in name
            or name in ("..", ".")
            or len(name) > 300
        ):
            raise ValueError(f"{name!r} is not a plain file name a batch can deliver")


def _signature_hashes(
    files: Mapping[str, bytes], signatures: Mapping[str, str] | None
) -> dict[str, str]:
    """File name → sha256 of the signature covering it: given ones, else that of a detached
    ``<name>.p7s`` sent in the same batch, else empty."""
    given = dict(signatures or {})
    for name, value in given.items():
        if name not in files:
            raise ValueError(f"signature given for {name!r}, which is not a file of the batch")
        if not _SHA256.fullmatch(value):
            raise ValueError(f"the signature sha256 of {name!r} is not 64 lowercase hex digits")
    result = {}
    for name in files:
        if name in given:
            result[name] = given[name]
        elif f"{name}.p7s" in files:
            result[name] = _sha256(files[f"{name}.p7s"])
        else:
            result[name] = ""
    return result


_RETRYABLE = (SftpUnavailable, TimeoutError, ConnectionError)


def deliver_batch(
    transport: PartnerTransport,
    ledger: DeliveryLedger,
    *,
    batch_id: str,
    files: Mapping[str, bytes],
    approver: str,
    signatures: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    progress: FileProgress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Deliver one approved batch's files to the partner, each exactly once.

    ``files``: file name → bytes, delivered in this order (put the manifest last: its arrival
    tells the partner the batch is complete). ``approver``: who approved the batch; the ledger
    refuses the delivery unless that approval is on record and the files are the approved ones.
    ``signatures``: file name → sha256 of the signature covering it, for the message log; when
    missing, a detached ``<name>.p7s`` of the batch is used.

    For each file not yet delivered according to the ledger: write ``.<name>.part`` in the
    partner's inbox, read it back and compare size and sha256, rename it to ``<name>`` (never
    replacing an existing file), then mark it delivered and append its message-log entry in
    one transaction. A final file already holding the same bytes counts as delivered; one
    with other bytes stops the batch (:class:`DeliveryConflict`).

    Connection losses are retried (``retry``, default :class:`RetryPolicy`), each upload
    counted in the ledger. Every error that stops a batch is a :class:`DeliveryError` whose
    message is a sentence: :class:`HostKeyChanged` (also an ``SftpError``/``HostKeyRefused``;
    never retried), :class:`TransportRefused` (login or operation refused),
    :class:`DeliveryRefused`, :class:`DeliveryConflict`, :class:`DeliveryFailed`.
    A batch already delivered opens no connection and sends nothing; the report says so.
    """
    retry = retry or RetryPolicy()
    _check_names(files)
    started = time.perf_counter()
    partner = transport.partner
    hashes = {name: _sha256(data) for name, data in files.items()}
    signature_hashes = _signature_hashes(files, signatures)
    report = DeliveryReport(partner, batch_id, transport.describe())

    reason = ledger.refusal(batch_id, partner, approver, hashes)
    if reason:
        raise DeliveryRefused(reason)
    delivered = ledger.delivered_files(batch_id)
    for name, sha in delivered.items():
        if name in hashes and hashes[name] != sha:
            raise DeliveryRefused(
                f"File {name} of batch {batch_id} was already delivered to {partner} with "
                f"sha256 {sha[:12]}…, and a delivered file never changes; prepare a new batch "
                "instead."
            )
    report.already_delivered = [name for name in files if name in delivered]
    remaining = [name for name in files if name not in delivered]

    failures = 0
    while remaining:
        try:
            with transport.session() as session:
                while remaining:
                    name = remaining[0]
                    _deliver_file(
                        session,
                        ledger,
                        report,
                        batch_id,
                        partner,
                        name,
                        files[name],
                        hashes[name],
                        signature_hashes[name],
                        approver,
                        progress,
                    )
                    remaining.pop(0)
                    failures = 0
        except _RETRYABLE as error:
            failures += 1
            report.connection_failures += 1
            if failures >= retry.attempts:
                done = len(files) - len(remaining)
                raise DeliveryFailed(
                    f"Batch {batch_id} could not be delivered to {partner} at "
                    f"{transport.describe()} after {failures} tries in a row ({error}); "
                    f"{done} of {len(files)} file(s) are delivered and recorded, run the "
                    "exchange again later to send the rest."
                ) from error
            sleep(retry.delay(failures))
    ledger.finish_batch(batch_id)
    report.seconds = time.perf_counter() - started
    return report


def _deliver_file(
    session: PartnerSession,
    ledger: DeliveryLedger,
    report: DeliveryReport,
    batch_id: str,
    partner: str,
    name: str,
    data: bytes,
    sha256: str,
    signature_sha256: str,
    approver: str,
    progress: FileProgress | None,
) -> None:
    remote = session.inbox_path(name)
    report.attempts[name] = ledger.count_attempt(batch_id, partner, name, sha256, len(data), remote)
    existing = session.final_sha256(name)
    if existing is None:
        session.write_temporary(name, data, progress)
        written = session.temporary_digest(name)
        if written != (len(data), sha256):
            session.discard_temporary(name)
            size = "nothing" if written is None else f"{written[0]} bytes"
            raise TransportUnavailable(
                f"the copy of {name} read back from {remote} ({size}) differs from the "
                f"{len(data)} bytes sent"
            )
        if session.publish(name):
            report.sent.append(name)
            report.bytes_sent += len(data)
        else:  # the final name appeared meanwhile: same bytes or a conflict
            session.discard_temporary(name)
            existing = session.final_sha256(name)
    if existing is not None:
        if existing != sha256:
            raise DeliveryConflict(
                f"The partner {partner} already holds a file {remote} with other content "
                f"(sha256 {existing[:12]}… instead of {sha256[:12]}…), so it was not "
                f"overwritten and batch {batch_id} stopped; ask the partner where that file "
                "comes from before delivering again."
            )
        report.found_at_partner.append(name)
    report.log_sequences.append(
        ledger.record_delivered(
            batch_id, partner, name, sha256, len(data), remote, signature_sha256, approver
        )
    )


# ---- fetching from the partner's outbox -----------------------------------------------------


class ReceivedFile(NamedTuple):
    """A file fetched from the partner's outbox; unpacks as ``(name, data)``."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return _sha256(self.data)


class RefusedFile(NamedTuple):
    """A file of the partner's outbox that was not fetched, and why (one sentence).

    ``local_name`` is the name it may be recorded under locally: its own name when that is a
    bare name, else :func:`~connectors.outside_names.name_tag` of it."""

    name: str
    local_name: str
    size: int
    reason: str


def fetch_outbox(
    transport: PartnerTransport,
    *,
    pattern: str | re.Pattern[str] = "*",
    known: Collection[str] = (),
    destination: Path | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int | None = None,
    refused: Callable[[RefusedFile], None] | None = None,
) -> list[ReceivedFile]:
    """Fetch the partner's outbox files whose name matches ``pattern`` entirely (a compiled
    regular expression, or a case-sensitive glob) and is not in ``known`` (the names already
    recorded), sorted by name.

    Names come from the partner's server and become local paths only when they are bare file
    names (:mod:`connectors.outside_names`): a name with a folder part, ``..``, a NUL or a
    control character is never matched, never fetched, and given to ``refused`` with a
    sentence, as is a file larger than ``max_bytes`` (from the listing, before anything is
    copied; a file that grows past it while being copied is dropped the same way).

    Each is downloaded to a temporary name in ``destination`` (default: the transport's
    ``received_folder``) and renamed once complete. A local copy of the same name with other
    bytes is kept: the new one is stored as ``<stem>.<sha256[:12]><suffix>``. Nothing is
    removed from the partner's outbox. Connection losses are retried as in delivery.
    """
    retry = retry or RetryPolicy()
    destination = destination or transport.received_folder
    known_names = set(known)
    failures = 0
    while True:
        try:
            with transport.session() as session:
                received = []
                for name, size in session.outbox_files():
                    problem = bare_name_problem(name)
                    if problem:
                        if refused is not None and name_tag(name) not in known_names:
                            refused(_unsafe(transport, name, size, problem))
                        continue
                    if name in known_names or not full_match(pattern, name):
                        continue
                    if max_bytes is not None and size > max_bytes:
                        if refused is not None:
                            refused(_too_large(transport, name, size, max_bytes))
                        continue
                    try:
                        received.append(_receive(session, name, destination, max_bytes))
                    except (FileTooLarge, OutsideName) as error:
                        if refused is not None:
                            refused(RefusedFile(name, name, size, _not_fetched(name, error)))
                return received
        except _RETRYABLE as error:
            failures += 1
            if failures >= retry.attempts:
                raise DeliveryFailed(
                    f"The outbox of {transport.partner} at {transport.describe()} could not "
                    f"be read after {failures} tries ({error}); run the fetch again later."
                ) from error
            sleep(retry.delay(failures))


def _unsafe(transport: PartnerTransport, name: str, size: int, problem: str) -> RefusedFile:
    return RefusedFile(
        name,
        name_tag(name),
        size,
        f"The outbox of {transport.partner} lists a file named {shown_name(name)}, which is not "
        f"a plain file name ({problem}); it was not fetched. Ask the fund to remove it and "
        "send the file again under the name its profile gives.",
    )


def _too_large(transport: PartnerTransport, name: str, size: int, max_bytes: int) -> RefusedFile:
    return RefusedFile(
        name,
        name,
        size,
        f"{name} in the outbox of {transport.partner} has {size / 1e6:.1f} MB, more than the "
        f"{max_bytes / 1e6:.1f} MB allowed for such a file, so it was not fetched. Ask the fund "
        "why it is so large; raise the limit in the partner's settings only if it is right.",
    )


def _not_fetched(name: str, error: Exception) -> str:
    return f"{name} was not fetched: {str(error).rstrip('.')}."


def _receive(
    session: PartnerSession, name: str, destination: Path, max_bytes: int | None = None
) -> ReceivedFile:
    target = path_inside(destination, name)
    previous = _file_digest(target)[1] if target.is_file() else None
    if previous is None:
        session.download(name, target, max_bytes)
        return ReceivedFile(name, target.read_bytes())
    staging = destination / f".{name}.incoming"
    try:
        _size, sha = session.download(name, staging, max_bytes)
        data = staging.read_bytes()
        if sha == previous:
            staging.unlink()
        else:
            path = Path(name)
            os.replace(staging, destination / f"{path.stem}.{sha[:12]}{path.suffix}")
    finally:
        staging.unlink(missing_ok=True)
    return ReceivedFile(name, data)


def fetch_acknowledgements(
    transport: PartnerTransport,
    *,
    pattern: str | re.Pattern[str] = "*",
    known: Collection[str] = (),
    destination: Path | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int | None = None,
    refused: Callable[[RefusedFile], None] | None = None,
) -> list[ReceivedFile]:
    """The partner's acknowledgement files not yet ``known``, as ``(name, bytes)``.

    ``pattern`` is the profile's acknowledgement file name pattern (the fund's outbox also
    holds its requests); ``known`` usually
    ``warehouse.acknowledgement_records.acknowledged_files(db, partner)``. See
    :func:`fetch_outbox`."""
    return fetch_outbox(
        transport,
        pattern=pattern,
        known=known,
        destination=destination,
        retry=retry,
        sleep=sleep,
        max_bytes=max_bytes,
        refused=refused,
    )


def fetch_requests(
    transport: PartnerTransport,
    *,
    pattern: str | re.Pattern[str] = "*",
    known: Collection[str] = (),
    destination: Path | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_bytes: int | None = None,
    refused: Callable[[RefusedFile], None] | None = None,
) -> list[ReceivedFile]:
    """The fund's request lists from its outbox not yet ``known``, as ``(name, bytes)``.

    ``pattern`` is the profile's request file name pattern; ``known`` usually the request
    file names of the partner's existing batches. See :func:`fetch_outbox`."""
    return fetch_outbox(
        transport,
        pattern=pattern,
        known=known,
        destination=destination,
        retry=retry,
        sleep=sleep,
        max_bytes=max_bytes,
        refused=refused,
    )
