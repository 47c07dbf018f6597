"""The SftpServer harness against a real OpenSSH sshd, driven with paramiko."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from .sshd import SSHD_PATH, SftpServer, SshdError, sshd_available

pytestmark = pytest.mark.skipif(
    not sshd_available(),
    reason=f"{SSHD_PATH} (Debian package openssh-server) is not installed: "
    "run scripts/system-packages.sh to enable the SFTP tests.",
)

SFTP_ERRORS = (EOFError, OSError, paramiko.SSHException)


@pytest.fixture
def server() -> Iterator[SftpServer]:
    with SftpServer() as srv:
        yield srv


def _pinned_client(known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _connect(client: paramiko.SSHClient, server: SftpServer, **kwargs: object) -> None:
    options: dict[str, object] = {
        "port": server.port,
        "username": server.username,
        "allow_agent": False,
        "look_for_keys": False,
        "timeout": 5,
        "banner_timeout": 5,
        "auth_timeout": 5,
    }
    options.update(kwargs)
    client.connect(server.host, **options)  # type: ignore[arg-type]


def test_connects_with_pinned_host_key_from_known_hosts(server: SftpServer, tmp_path: Path) -> None:
    assert server.known_hosts_line.startswith(f"[127.0.0.1]:{server.port} ssh-ed25519 AAAA")
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    client = _pinned_client(known_hosts)
    try:
        _connect(client, server, key_filename=str(server.client_key_path))
        transport = client.get_transport()
        assert transport is not None
        assert transport.get_remote_server_key() == server.host_key
        assert transport.getpeername()[0] == "127.0.0.1"
    finally:
        client.close()


def test_unknown_host_is_rejected_without_pinned_key(server: SftpServer) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
            _connect(client, server, pkey=server.client_key)
    finally:
        client.close()


def test_upload_to_inbox_is_listed_read_back_and_on_disk(server: SftpServer) -> None:
    payload = "id_eleve;nom\n1;أحمد\n".encode()
    with server.connect() as client, client.open_sftp() as sftp:
        sftp.putfo(io.BytesIO(payload), "inbox/eleves.csv")
        assert sftp.listdir(server.remote_inbox) == ["eleves.csv"]
        with sftp.open(f"{server.remote_inbox}/eleves.csv", "rb") as remote:
            assert remote.read() == payload
        if server.chrooted:
            # The partner sees only its own tree.
            assert sorted(sftp.listdir("/")) == ["inbox", "outbox"]
            assert sftp.normalize(".") == "/"
    assert (server.inbox / "eleves.csv").read_bytes() == payload


def test_reads_a_file_placed_in_outbox(server: SftpServer) -> None:
    payload = b"<?xml version='1.0'?><accuse statut='OK'/>"
    (server.outbox / "accuse.xml").write_bytes(payload)
    with server.connect() as client, client.open_sftp() as sftp:
        assert sftp.listdir("outbox") == ["accuse.xml"]
        buffer = io.BytesIO()
        sftp.getfo(f"{server.remote_outbox}/accuse.xml", buffer)
    assert buffer.getvalue() == payload


def test_rotated_host_key_is_refused_with_the_old_pinned_key(
    server: SftpServer, tmp_path: Path
) -> None:
    old_key = server.host_key
    old_known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    port, pid = server.port, server.pid

    new_key = server.rotate_host_key()

    assert new_key != old_key
    assert server.port == port
    assert server.pid not in (None, pid)
    client = _pinned_client(old_known_hosts)
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            _connect(client, server, pkey=server.client_key)
    finally:
        client.close()
    with pytest.raises(paramiko.BadHostKeyException):
        server.connect(host_key=old_key)
    # Pinning the new key works.
    with server.connect() as client, client.open_sftp() as sftp:
        assert "inbox" in sftp.listdir(".")


def test_password_login_is_refused(server: SftpServer) -> None:
    client = paramiko.SSHClient()
    client.get_host_keys().add(server.known_hosts_name, "ssh-ed25519", server.host_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.AuthenticationException):
            _connect(client, server, password="motdepasse")
    finally:
        client.close()
    # The server offers public-key authentication only.
    transport = paramiko.Transport((server.host, server.port))
    try:
        transport.start_client(timeout=5)
        with pytest.raises(paramiko.BadAuthenticationType) as excinfo:
            transport.auth_none(server.username)
        assert excinfo.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_unauthorised_client_key_is_refused(server: SftpServer) -> None:
    stranger = paramiko.Ed25519Key.from_private_key(io.StringIO(_fresh_ed25519_private_key_pem()))
    with pytest.raises(paramiko.AuthenticationException):
        _connect_with_key(server, stranger)


def _fresh_ed25519_private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def _connect_with_key(server: SftpServer, key: paramiko.PKey) -> None:
    client = paramiko.SSHClient()
    client.get_host_keys().add(server.known_hosts_name, "ssh-ed25519", server.host_key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        _connect(client, server, pkey=key)
    finally:
        client.close()


def test_kill_connections_breaks_open_session_but_listener_stays(server: SftpServer) -> None:
    listener = server.pid
    client = server.connect()
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(5)
        assert "inbox" in sftp.listdir(".")
        assert server.connection_pids()

        killed = server.kill_connections()

        assert killed >= 1
        assert server.connection_pids() == []
        with pytest.raises(SFTP_ERRORS):
            sftp.putfo(io.BytesIO(b"x"), "inbox/after-cut.txt")
        assert not client.get_transport().is_active()  # type: ignore[union-attr]
    finally:
        client.close()
    assert server.pid == listener
    with server.connect() as again, again.open_sftp() as sftp:
        sftp.putfo(io.BytesIO(b"retry"), "inbox/retry.txt")
    assert (server.inbox / "retry.txt").read_bytes() == b"retry"
    assert not (server.inbox / "after-cut.txt").exists()


def test_start_failure_reports_sshd_stderr() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        srv = SftpServer(port=port, startup_timeout=5)
        try:
            with pytest.raises(SshdError, match="Address already in use"):
                srv.start()
        finally:
            srv.stop()


def test_stop_kills_everything_and_removes_the_working_directory() -> None:
    srv = SftpServer().start()
    client = srv.connect()
    try:
        pids = [srv.pid, *srv.connection_pids()]
        workdir, port = srv.workdir, srv.port
        srv.stop()
        assert not srv.running
        assert not workdir.exists()
        for pid in pids:
            assert pid is not None
            assert not _alive(pid)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with pytest.raises(SshdError):
            srv.start()
    finally:
        client.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="ChrootDirectory needs root")
def test_chroot_directory_is_root_owned_and_not_writable_by_others(server: SftpServer) -> None:
    assert server.chrooted
    assert server.username == "root"
    for component in (server.root, *server.root.parents):
        st = component.stat()
        assert st.st_uid == 0
        assert not st.st_mode & 0o022, component
