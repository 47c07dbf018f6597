"""A hostile SFTP server on 127.0.0.1 (paramiko's server side), for the tests of names from
outside: OpenSSH never lists a name holding a ``/``, a server an attacker controls does.

``HostileSftpServer(files)`` serves ``files`` (remote folder → {name: bytes}; a name that is
also a folder of ``files`` is listed as a folder) over the real SSH and SFTP protocols, with a
pinned host key and key login like a fund's server. It lists each name as given
(``CNSS_SCOL_/../../../x.csv``, an absolute path, a NUL), reports a size of its choosing
(``sizes``: name → ``st_size`` in the listing, to claim 94 MB without holding them) and serves
the bytes for the path ``<folder>/<name>``. ``opened`` lists every path the client opened, so
a test can tell that a file was never fetched.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import paramiko


class _Handle(paramiko.SFTPHandle):
    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]

    def stat(self) -> paramiko.SFTPAttributes:
        attributes = paramiko.SFTPAttributes()
        attributes.st_size = len(self._data)
        attributes.st_mode = stat.S_IFREG | 0o644
        return attributes


class _Hostile(paramiko.SFTPServerInterface):
    def __init__(self, server: Any, *args: Any, owner: HostileSftpServer, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self._owner = owner

    def _find(self, path: str) -> tuple[str, bytes] | None:
        for folder, files in self._owner.files.items():
            for name, data in files.items():
                if path in (f"{folder}/{name}", name):
                    return name, data
        return None

    def list_folder(self, path: str) -> Any:
        files = self._owner.files.get(path.strip("/"))
        if files is None:
            return paramiko.SFTP_NO_SUCH_FILE
        listing = []
        for name, data in files.items():
            attributes = paramiko.SFTPAttributes()
            attributes.filename = name
            attributes.st_size = self._owner.sizes.get(name, len(data))
            folder = f"{path.strip('/')}/{name}" in self._owner.files
            attributes.st_mode = (stat.S_IFDIR | 0o755) if folder else (stat.S_IFREG | 0o644)
            attributes.st_mtime = 1_700_000_000
            listing.append(attributes)
        return listing

    def stat(self, path: str) -> Any:
        found = self._find(path)
        if found is None:
            if path.strip("/") in self._owner.files:
                attributes = paramiko.SFTPAttributes()
                attributes.st_mode = stat.S_IFDIR | 0o755
                return attributes
            return paramiko.SFTP_NO_SUCH_FILE
        name, data = found
        attributes = paramiko.SFTPAttributes()
        attributes.st_size = self._owner.sizes.get(name, len(data))
        attributes.st_mode = stat.S_IFREG | 0o644
        attributes.st_mtime = 1_700_000_000
        return attributes

    lstat = stat

    def open(self, path: str, flags: int, attr: Any) -> Any:
        self._owner.opened.append(path)
        found = self._find(path)
        if found is None:
            return paramiko.SFTP_NO_SUCH_FILE
        return _Handle(found[1])


class _Login(paramiko.ServerInterface):
    def __init__(self, client_key: paramiko.PKey) -> None:
        self._client_key = client_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.asbytes() == self._client_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class HostileSftpServer:
    """See the module's docstring. Use as a context manager; ``endpoint(**changes)`` gives the
    values of a ``PartnerSettings`` or ``SftpEndpoint`` reaching it."""

    def __init__(
        self,
        files: dict[str, dict[str, bytes]],
        key_folder: Path,
        sizes: dict[str, int] | None = None,
    ) -> None:
        self.files, self.sizes = files, dict(sizes or {})
        self.opened: list[str] = []
        self._host_key = paramiko.RSAKey.generate(2048)
        self._client_key = paramiko.RSAKey.generate(2048)
        key_folder.mkdir(parents=True, exist_ok=True)
        self.client_key_path = key_folder / "hostile_client_key"
        self._client_key.write_private_key_file(str(self.client_key_path))
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} ssh-rsa {self._host_key.get_base64()}"

    def endpoint(self, **changes: Any) -> dict[str, Any]:
        values = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": "fund",
            "private_key": self.client_key_path,
            "host_key": self.known_hosts_line,
            "remote_inbox": "inbox",
            "remote_outbox": "outbox",
            "timeout_seconds": 10,
            "delivery_attempts": 1,
            "delivery_backoff_seconds": 0.01,
        }
        values.update(changes)
        return values

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed
                return
            if self._stopping.is_set():  # the wake-up connection of __exit__
                connection.close()
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(self._host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Hostile, owner=self)
            self._transports.append(transport)
            transport.start_server(server=_Login(self._client_key))

    def __enter__(self) -> HostileSftpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing the socket does not wake a thread blocked in accept() on Linux (the join
        # waited its full 10 s): a last connection does.
        self._stopping.set()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        self._thread.join(10)
        self._socket.close()
        for transport in self._transports:
            transport.close()
