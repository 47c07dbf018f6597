"""SFTP transport against a real OpenSSH sshd on loopback: pinned host key, key login."""

from __future__ import annotations

import os

import pytest

from connectors.sftp import SftpError, fetch_school_inbox, open_sftp
from ground.settings import SftpEndpoint


def endpoint_for(server, **changes) -> SftpEndpoint:
    values = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "private_key": server.client_key_path,
        "host_key": server.known_hosts_line,
        "remote_inbox": server.remote_inbox,
        "remote_outbox": server.remote_outbox,
        "timeout_seconds": 10,
    }
    values.update(changes)
    return SftpEndpoint(**values)


def test_school_files_are_fetched_into_the_local_inbox(sftp_server, tmp_path):
    school = sftp_server.inbox / "27783Y"
    school.mkdir()
    (school / "guardians.csv").write_bytes("رمز المؤسسة\n27783Y\n".encode())
    (school / ".upload.part").write_bytes(b"half")  # an upload in progress is left alone
    uploaded = 1_705_309_200  # 2024-01-15 09:00 UTC: when the school uploaded it
    os.utime(school / "guardians.csv", (uploaded, uploaded))
    inbox = tmp_path / "inbox"
    assert fetch_school_inbox(endpoint_for(sftp_server), inbox) == 1
    assert (inbox / "27783Y" / "guardians.csv").read_bytes() == (
        school / "guardians.csv"
    ).read_bytes()
    # its arrival in the inbox is the upload's, not this fetch's
    assert (inbox / "27783Y" / "guardians.csv").stat().st_mtime == uploaded
    assert not (inbox / "27783Y" / ".upload.part").exists()
    assert fetch_school_inbox(endpoint_for(sftp_server), inbox) == 0  # nothing new


def test_a_changed_host_key_is_refused_with_a_sentence(sftp_server, tmp_path):
    pinned = sftp_server.known_hosts_line
    sftp_server.rotate_host_key()
    with pytest.raises(SftpError, match="different from the pinned one"):
        fetch_school_inbox(endpoint_for(sftp_server, host_key=pinned), tmp_path / "inbox")
    assert not (tmp_path / "inbox").exists()


def test_missing_pinned_key_and_unreachable_server_are_sentences(sftp_server, tmp_path):
    with (
        pytest.raises(SftpError, match="No valid pinned host key"),
        open_sftp(endpoint_for(sftp_server, host_key="")),
    ):
        pass
    gone = endpoint_for(sftp_server, timeout_seconds=2)
    sftp_server.stop()
    with pytest.raises(SftpError, match="cannot be reached"), open_sftp(gone):
        pass
