"""SFTP transport (paramiko) with the server's host key pinned and key authentication only.

Downloads and uploads go to a temporary name first and are renamed once complete, so nobody
ever sees half a file under its final name.

Errors are :class:`SftpError` sentences an operator can act on, in three kinds that callers
treat differently:

* :class:`HostKeyRefused`: the server is not the pinned one; never retried.
* :class:`AuthenticationRefused`: the server does not accept our key; never retried.
* :class:`SftpUnavailable`: the server cannot be reached or the connection was lost in the
  middle of a transfer; trying again later may succeed.

Any other :class:`SftpError` is the server refusing one operation on a live connection (no
permission, disk full, ...).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import paramiko

from connectors.outside_names import OutsideName, bare_name_problem, path_inside, shown_name
from connectors.reading import limits

log = logging.getLogger(__name__)

# Bytes written per SFTP write call (paramiko splits them into 32 KiB requests, pipelined).
WRITE_CHUNK = 256 * 1024
Progress = Callable[[int, int], None]  # (bytes done, total)


class Endpoint(Protocol):
    host: str
    port: int
    username: str
    private_key: Path | None
    host_key: str
    remote_inbox: str
    remote_outbox: str
    timeout_seconds: float


class SftpError(Exception):
    """A transfer problem an operator can act on; the message is one sentence."""


class HostKeyRefused(SftpError):
    """The server presented another host key than the pinned one: never retry."""


class AuthenticationRefused(SftpError):
    """The server refused our key: retrying cannot help."""


class SftpUnavailable(SftpError):
    """The server could not be reached or the connection was lost: a retry may succeed."""


class FileTooLarge(SftpError):
    """A file grew past the size allowed while it was being copied; nothing is kept."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key, as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _pinned_host_key(endpoint: Endpoint, setting: str) -> tuple[str, paramiko.PKey]:
    """Parse the configured known_hosts line (``[host]:port type base64`` or ``host ...``)."""
    parts = endpoint.host_key.split()
    if len(parts) == 2:  # "type base64" without a host name: pinned for this endpoint
        parts = ["*", *parts]
    if len(parts) < 3:
        raise HostKeyRefused(
            f"No valid pinned host key is configured for {endpoint.host}; set its "
            f"known_hosts line in the settings ({setting})."
        )
    entry = paramiko.hostkeys.HostKeyEntry.from_line(" ".join(parts[:3]))
    if entry is None or entry.key is None:
        raise HostKeyRefused(
            f"The pinned host key configured for {endpoint.host} ({setting}) cannot be read."
        )
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    return name, entry.key


@contextmanager
def open_sftp(endpoint: Endpoint, setting: str = "host_key") -> Iterator[paramiko.SFTPClient]:
    """An SFTP session to ``endpoint``; refuses any host key but the pinned one.

    ``setting`` names the pinned key's setting in messages (e.g. ``partners.cnss.host_key``).
    """
    where = f"{endpoint.host}:{endpoint.port}"
    name, key = _pinned_host_key(endpoint, setting)
    # Reach the server first, so a server that is down reads as such whatever else is wrong.
    try:
        sock = socket.create_connection(
            (endpoint.host, endpoint.port), timeout=endpoint.timeout_seconds
        )
    except OSError as error:
        raise SftpUnavailable(
            f"The server {where} cannot be reached: {error.strerror or error}."
        ) from error
    try:
        private_key = (
            paramiko.PKey.from_path(endpoint.private_key) if endpoint.private_key else None
        )
    except (OSError, ValueError, paramiko.SSHException) as error:
        sock.close()
        raise SftpError(
            f"The private key {endpoint.private_key} for {where} cannot be read ({error}); "
            "check private_key in the settings."
        ) from error
    client = paramiko.SSHClient()
    client.get_host_keys().add(name, key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            pkey=private_key,
            look_for_keys=False,
            allow_agent=False,
            sock=sock,
            timeout=endpoint.timeout_seconds,
            banner_timeout=endpoint.timeout_seconds,
            auth_timeout=endpoint.timeout_seconds,
        )
    except paramiko.BadHostKeyException as error:
        client.close()
        sock.close()
        raise HostKeyRefused(
            f"The server {where} presented a host key ({error.key.get_name()} "
            f"{fingerprint(error.key)}) different from the pinned one, so nothing was "
            "transferred and no retry will be made; if the partner announced a new key, check "
            f"this fingerprint with them and then update {setting} in the settings."
        ) from error
    except paramiko.AuthenticationException as error:
        client.close()
        sock.close()
        raise AuthenticationRefused(
            f"The server {where} refused the login of {endpoint.username!r} with the "
            "configured private key; check that the partner registered our public key."
        ) from error
    except paramiko.SSHException as error:
        client.close()
        sock.close()
        if "not found in known_hosts" in str(error):
            raise HostKeyRefused(
                f"The server {where} offered no host key of the pinned type, so it is not "
                f"the pinned host and nothing was transferred; check {setting} in the settings."
            ) from error
        raise SftpUnavailable(f"The SSH connection to {where} failed: {error}.") from error
    except OSError as error:
        client.close()
        sock.close()
        raise SftpUnavailable(
            f"The server {where} cannot be reached: {error.strerror or error}."
        ) from error
    try:
        try:
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(endpoint.timeout_seconds)  # type: ignore[union-attr]
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise SftpUnavailable(
                f"The SFTP session on {where} could not be opened: {error}."
            ) from error
        yield sftp
    finally:
        client.close()


def connection_alive(sftp: paramiko.SFTPClient) -> bool:
    """True while the SSH connection under ``sftp`` is up."""
    channel = sftp.get_channel()
    if channel is None or channel.closed:
        return False
    transport = channel.get_transport()
    return transport is not None and transport.is_active()


@contextmanager
def guarded(sftp: paramiko.SFTPClient, where: str, action: str) -> Iterator[None]:
    """Turn paramiko's errors during ``action`` into sentences: a dead connection becomes
    :class:`SftpUnavailable` (retry may help), a refusal on a live one :class:`SftpError`."""
    try:
        yield
    except SftpError:
        raise
    except (OSError, EOFError, paramiko.SSHException) as error:
        if not connection_alive(sftp) or isinstance(error, TimeoutError):
            raise SftpUnavailable(
                f"The connection to {where} was lost while trying to {action}: {error}."
            ) from error
        raise SftpError(f"The server {where} refused to {action}: {error}.") from error


class _Digest:
    """A write-only file object that hashes and counts what goes through it; past ``limit``
    bytes it raises :class:`FileTooLarge`."""

    def __init__(
        self,
        progress: Progress | None,
        total: int,
        sink: object | None = None,
        limit: int | None = None,
    ):
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._progress, self._total, self._sink = progress, total, sink
        self._limit = limit

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise FileTooLarge(f"the file is larger than the {self._limit} bytes allowed")
        if self._sink is not None:
            self._sink.write(data)  # type: ignore[attr-defined]
        if self._progress is not None:
            self._progress(self.size, self._total)
        return len(data)


def remote_size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    """Size of the remote file at ``path``, or None when there is none."""
    try:
        return sftp.stat(path).st_size
    except FileNotFoundError:
        return None
    except OSError as error:
        if getattr(error, "errno", None) == 2:  # paramiko maps "no such file" to ENOENT
            return None
        raise


def remote_sha256(sftp: paramiko.SFTPClient, path: str) -> tuple[int, str] | None:
    """(size, sha256) of the remote file at ``path``, computed by reading its bytes back over
    SFTP (OpenSSH offers no server-side hash); None when there is no such file."""
    size = remote_size(sftp, path)
    if size is None:
        return None
    digest = _Digest(None, size)
    with sftp.open(path, "rb") as remote:
        remote.prefetch(size)
        while chunk := remote.read(WRITE_CHUNK):
            digest.write(chunk)
    return digest.size, digest.sha256.hexdigest()


def write_remote_file(
    sftp: paramiko.SFTPClient, path: str, data: bytes, progress: Progress | None = None
) -> None:
    """Write ``data`` to ``path`` (created or truncated), pipelined; ``progress(done, total)``
    is called after each chunk. The caller writes to a temporary name (see module doc)."""
    view = memoryview(data)
    with sftp.open(path, "wb") as remote:
        remote.set_pipelined(True)
        for start in range(0, len(data), WRITE_CHUNK):
            remote.write(bytes(view[start : start + WRITE_CHUNK]))
            if progress is not None:
                progress(min(start + WRITE_CHUNK, len(data)), len(data))
    if not data and progress is not None:
        progress(0, 0)


def rename_without_overwrite(sftp: paramiko.SFTPClient, old: str, new: str) -> bool:
    """Rename ``old`` to ``new`` unless ``new`` exists; True when renamed.

    SFTP's plain RENAME (not posix-rename) is specified to fail when the target exists, and
    OpenSSH implements it with link() + unlink(): an existing file is never replaced, and the
    final name appears atomically with complete content."""
    try:
        sftp.rename(old, new)
        return True
    except OSError:
        if remote_size(sftp, new) is not None:
            return False
        raise


def regular_files(sftp: paramiko.SFTPClient, folder: str) -> list[tuple[str, int]]:
    """(name, size) of the regular files of a remote folder, hidden (temporary) names skipped,
    sorted by name."""
    return sorted(
        (entry.filename, entry.st_size or 0)
        for entry in sftp.listdir_attr(folder)
        if not entry.filename.startswith(".") and stat.S_ISREG(entry.st_mode or 0)
    )


def download_file(
    sftp: paramiko.SFTPClient, remote_path: str, target: Path, max_bytes: int | None = None
) -> tuple[int, str]:
    """Copy ``remote_path`` to ``target`` through ``.<name>.part`` beside it, renamed once
    complete; returns (size, sha256) of the bytes received. Past ``max_bytes`` the copy stops
    and nothing is kept (:class:`FileTooLarge`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    try:
        with open(temporary, "wb") as local:
            digest = _Digest(None, 0, sink=local, limit=max_bytes)
            sftp.getfo(remote_path, digest)
            local.flush()
            os.fsync(local.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return digest.size, digest.sha256.hexdigest()


def download_new_files(
    sftp: paramiko.SFTPClient,
    remote_folder: str,
    local_folder: Path,
    max_bytes: int = limits.MAX_FILE_BYTES,
    skip: Callable[[str], None] = log.warning,
) -> int:
    """Copy files of ``remote_folder`` that are missing locally (or differ in size) into
    ``local_folder``; returns how many were fetched. Hidden (temporary) names are skipped;
    a name that is not a bare file name, a target outside ``local_folder`` and a file larger
    than ``max_bytes`` (from the listing, before anything is copied) are skipped with a
    sentence given to ``skip``."""
    fetched = 0
    local_folder.mkdir(parents=True, exist_ok=True)
    for name, size in regular_files(sftp, remote_folder):
        where = f"The file {shown_name(name)} of {remote_folder}"
        try:
            target = path_inside(local_folder, name)
        except OutsideName as error:
            skip(f"{where} is not fetched: {error}")
            continue
        if size > max_bytes:
            skip(
                f"{where} is not fetched: its {size} bytes are more than the {max_bytes} "
                "a file may have."
            )
            continue
        if target.exists() and target.stat().st_size == size:
            continue
        try:
            download_file(sftp, f"{remote_folder}/{name}", target, max_bytes)
        except FileTooLarge as error:
            skip(f"{where} is not fetched: {error}.")
            continue
        # Keep the time the school uploaded it: which of two lists arrived first must not
        # depend on the order this fetch got to them (tasks/consolidate.py).
        uploaded = sftp.stat(f"{remote_folder}/{name}").st_mtime
        if uploaded:
            os.utime(target, (uploaded, uploaded))
        fetched += 1
    return fetched


def fetch_school_inbox(
    endpoint: Endpoint,
    inbox: Path,
    max_bytes: int = limits.MAX_FILE_BYTES,
    skip: Callable[[str], None] = log.warning,
) -> int:
    """Fetch new files from ``<remote_inbox>/<school_code>/`` into ``inbox/<school_code>/``.
    Folder and file names must be bare names that stay inside the inbox, files at most
    ``max_bytes`` (what the ingest accepts); anything else is skipped with a sentence given
    to ``skip``."""
    fetched = 0
    with open_sftp(endpoint, "inbox_sftp.host_key") as sftp:
        for entry in sftp.listdir_attr(endpoint.remote_inbox):
            if entry.filename.startswith(".") or not stat.S_ISDIR(entry.st_mode or 0):
                continue
            problem = bare_name_problem(entry.filename)
            if problem:
                skip(
                    f"The folder {shown_name(entry.filename)} of {endpoint.remote_inbox} is not "
                    f"fetched: it is not a plain folder name ({problem})."
                )
                continue
            try:
                local = path_inside(inbox, entry.filename)
            except OutsideName as error:
                skip(f"The folder {endpoint.remote_inbox}/{entry.filename} is not fetched: {error}")
                continue
            fetched += download_new_files(
                sftp, f"{endpoint.remote_inbox}/{entry.filename}", local, max_bytes, skip
            )
    return fetched
