"""SFTP transport (paramiko) with the server's host key pinned and key authentication only.

Downloads and uploads go to a temporary name first and are renamed once complete, so nobody
ever sees half a file under its final name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import paramiko


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


def _pinned_host_key(endpoint: Endpoint) -> tuple[str, paramiko.PKey]:
    """Parse the configured known_hosts line (``[host]:port type base64`` or ``host ...``)."""
    parts = endpoint.host_key.split()
    if len(parts) < 3:
        raise SftpError(
            f"No valid pinned host key is configured for {endpoint.host}; set its "
            "known_hosts line in the settings (host_key)."
        )
    entry = paramiko.hostkeys.HostKeyEntry.from_line(" ".join(parts[:3]))
    if entry is None or entry.key is None:
        raise SftpError(f"The pinned host key configured for {endpoint.host} cannot be read.")
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    return name, entry.key


@contextmanager
def open_sftp(endpoint: Endpoint) -> Iterator[paramiko.SFTPClient]:
    """An SFTP session to ``endpoint``; refuses any host key but the pinned one."""
    name, key = _pinned_host_key(endpoint)
    client = paramiko.SSHClient()
    client.get_host_keys().add(name, key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            key_filename=str(endpoint.private_key) if endpoint.private_key else None,
            look_for_keys=False,
            allow_agent=False,
            timeout=endpoint.timeout_seconds,
            banner_timeout=endpoint.timeout_seconds,
            auth_timeout=endpoint.timeout_seconds,
        )
    except paramiko.BadHostKeyException as error:
        client.close()
        raise SftpError(
            f"The server {endpoint.host}:{endpoint.port} presented a host key different from "
            "the pinned one; nothing was transferred. If the partner announced a new key, "
            "update host_key in the settings after checking its fingerprint with them."
        ) from error
    except paramiko.SSHException as error:
        client.close()
        if "not found in known_hosts" in str(error):
            raise SftpError(
                f"The server {endpoint.host}:{endpoint.port} is not the pinned "
                "host; nothing was transferred."
            ) from error
        raise SftpError(
            f"The SSH connection to {endpoint.host}:{endpoint.port} failed: {error}."
        ) from error
    except OSError as error:
        client.close()
        raise SftpError(
            f"The server {endpoint.host}:{endpoint.port} cannot be reached: "
            f"{error.strerror or error}."
        ) from error
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(endpoint.timeout_seconds)
        yield sftp
    finally:
        client.close()


def download_new_files(sftp: paramiko.SFTPClient, remote_folder: str, local_folder: Path) -> int:
    """Copy files of ``remote_folder`` that are missing locally (or differ in size) into
    ``local_folder``; returns how many were fetched. Hidden (temporary) names are skipped."""
    fetched = 0
    local_folder.mkdir(parents=True, exist_ok=True)
    for entry in sftp.listdir_attr(remote_folder):
        if entry.filename.startswith(".") or not stat.S_ISREG(entry.st_mode or 0):
            continue
        target = local_folder / entry.filename
        if target.exists() and target.stat().st_size == entry.st_size:
            continue
        temporary = local_folder / f".{entry.filename}.part"
        sftp.get(f"{remote_folder}/{entry.filename}", str(temporary))
        os.replace(temporary, target)
        fetched += 1
    return fetched


def fetch_school_inbox(endpoint: Endpoint, inbox: Path) -> int:
    """Fetch new files from ``<remote_inbox>/<school_code>/`` into ``inbox/<school_code>/``."""
    fetched = 0
    with open_sftp(endpoint) as sftp:
        for entry in sftp.listdir_attr(endpoint.remote_inbox):
            if entry.filename.startswith(".") or not stat.S_ISDIR(entry.st_mode or 0):
                continue
            fetched += download_new_files(
                sftp, f"{endpoint.remote_inbox}/{entry.filename}", inbox / entry.filename
            )
    return fetched
