"""Issue 15, attack 3: file names from SFTP servers became local paths. A fund's server (or the
schools' inbox server) an attacker controls lists ``CNSS_SCOL_/../../../x.csv``,
``CNSS_ACK_/../../../x.xml``, an absolute path, ``sub/../../../../x``, a NUL; it claims sizes
no request or acknowledgement has. Served by a hostile SFTP server on 127.0.0.1 (real SSH and
SFTP protocols, pinned host key, key login), nothing lands outside the folder it belongs in,
nothing over the size allowed is even opened, the good files are fetched, and each refused
name is set aside with a sentence.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.sftp import fetch_school_inbox
from ground.settings import PartnerSettings, SftpEndpoint
from massar.home import init_home
from tasks.acknowledgements import reconcile_acknowledgements
from tasks.exchange_requests import fetch_new_requests
from tests.harness.hostile_sftp import HostileSftpServer

GOOD_REQUEST = "CNSS_SCOL_2023-2024_0001.csv"
HEADER = (
    "REF_CNSS;NUM_IMMATRICULATION;CIN_ASSURE;NOM_ASSURE;PRENOM_ASSURE;NOM_ENFANT;"
    "PRENOM_ENFANT;DATE_NAISSANCE;SEXE;CODE_MASSAR;TYPE_PRESTATION\r\n"
)
# A made-up child (no real pupil data): the file reads as a CNSS request.
REQUEST = (HEADER + "R1;111;AB1;TEST;PARENT;TEST;ENFANT;01/01/2012;M;;AF\r\n").encode()


def _landing(folder: Path, name: str) -> Path:
    """Where ``folder / name`` lands once the file system resolves it."""
    return Path(os.path.normpath(folder / name))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def _settings(home: Path, server: HostileSftpServer, **changes):
    settings = init_home(home)
    partner = PartnerSettings(**server.endpoint(**changes))
    return settings.model_copy(update={"partners": {**settings.partners, "cnss": partner}})


def test_names_from_a_fund_listing_never_become_paths_outside_received(home, tmp_path):
    outside = tmp_path / "outside"
    hostile = {
        "CNSS_SCOL_/../../../x.csv": b"planted",
        "CNSS_SCOL_2023-2024_0002.csv/../../../../y.csv": b"planted",
        "CNSS_ACK_/../../../x.xml": b"<planted/>",
        f"{outside}/CNSS_SCOL_2023-2024_0003.csv": b"planted",
        "sub/../../../../z": b"planted",
        "CNSS_SCOL_2023-2024_0004.csv\x00": b"planted",
        "CNSS_SCOL_2023-2024_0005.csv\\..\\..\\w.csv": b"planted",
        "CNSS_SCOL_2023-2024_\x1b[2J0006.csv": b"planted",
    }
    files = {"outbox": {GOOD_REQUEST: REQUEST, **hostile}}
    with HostileSftpServer(files, tmp_path / "keys") as server:
        settings = _settings(home, server)
        received = settings.exchange / "cnss" / "received"
        fetched = fetch_new_requests(settings, "cnss")
        reconciled = reconcile_acknowledgements(settings, "cnss")
        again = fetch_new_requests(settings, "cnss")  # a second run: nothing set aside again
        opened = list(server.opened)

    assert fetched == [received / GOOD_REQUEST]
    assert (received / GOOD_REQUEST).read_bytes() == REQUEST
    assert again == fetched  # not answered yet: fetched again, and nothing else
    assert opened == [f"outbox/{GOOD_REQUEST}"] * 2  # a hostile name is never even opened
    for name in hostile:
        assert not _landing(received, name).exists(), name
    assert not outside.exists()
    planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() in (b"planted",)]
    assert planted == []
    assert sorted(p.name for p in received.iterdir()) == [GOOD_REQUEST]
    # Each hostile name is set aside once, under a name of its own, with a sentence.
    rejected = settings.exchange / "cnss" / "rejected"
    notes = sorted(rejected.iterdir())
    assert len(notes) == len(hostile)
    assert all(n.name.startswith("unsafe-name-") and n.suffix == ".txt" for n in notes)
    for note in notes:
        sentence = note.read_text(encoding="utf-8").splitlines()[0]
        assert "is not a plain file name" in sentence and sentence.endswith(".")
    assert reconciled["acknowledgements"] == []


def test_a_fund_file_larger_than_allowed_is_never_fetched(home, tmp_path):
    """The listing's size decides, before anything is fetched: a 60 MB request and a 94 MB
    acknowledgement (over the 50 MB and 5 MB defaults) are never opened; a file that claims
    1 kB and then sends 6 MB is cut off and nothing of it is kept."""
    big_request = "CNSS_SCOL_2023-2024_0002.csv"
    big_ack = "CNSS_ACK_SCOL_2023-2024_000001.xml"
    growing_ack = "CNSS_ACK_SCOL_2023-2024_000002.xml"
    files = {
        "outbox": {
            GOOD_REQUEST: REQUEST,
            big_request: REQUEST,
            big_ack: b"<a/>",
            growing_ack: b"<a>" + b" " * 6_000_000 + b"</a>",
        }
    }
    sizes = {big_request: 60_000_000, big_ack: 94_000_000, growing_ack: 1_000}
    with HostileSftpServer(files, tmp_path / "keys", sizes=sizes) as server:
        settings = _settings(home, server)
        fetched = fetch_new_requests(settings, "cnss")
        reconciled = reconcile_acknowledgements(settings, "cnss")
        opened = list(server.opened)

    received = settings.exchange / "cnss" / "received"
    rejected = settings.exchange / "cnss" / "rejected"
    assert fetched == [received / GOOD_REQUEST]
    assert f"outbox/{big_request}" not in opened and f"outbox/{big_ack}" not in opened
    assert sorted(p.name for p in received.iterdir()) == [GOOD_REQUEST]
    assert sorted(p.name for p in rejected.iterdir()) == sorted(
        f"{name}.txt" for name in (big_request, big_ack, growing_ack)
    )
    big = (rejected / f"{big_request}.txt").read_text(encoding="utf-8").splitlines()[0]
    assert "60.0 MB, more than the 50.0 MB allowed" in big
    assert len(reconciled["problems"]) == 2  # both acknowledgements, one sentence each
    assert reconciled["acknowledgements"] == []


def test_names_from_the_schools_sftp_inbox_stay_inside_the_inbox(tmp_path):
    inbox = tmp_path / "home" / "inbox"
    files = {
        "inbox": {"12345A": b"", "x/../../outside": b"", "../../up": b"", "98765B": b""},
        "inbox/12345A": {
            "ListEleve_12345A.xlsx": b"PK good",
            "../../../../evil.csv": b"planted",  # a dot name: skipped as hidden
            "sub/../../../../evil.csv": b"planted",
            "a/../../../b.csv": b"planted",
            "huge.xlsx": b"PK",
        },
        "inbox/x/../../outside": {"x.csv": b"planted"},
        "inbox/../../up": {"x.csv": b"planted"},
        "inbox/98765B": {"notes.csv": b"ok"},
    }
    sizes = {"huge.xlsx": 150 * 1024 * 1024}  # over what the ingest accepts (100 MB)
    with HostileSftpServer(files, tmp_path / "keys", sizes=sizes) as server:
        values = server.endpoint()
        for key in ("delivery_attempts", "delivery_backoff_seconds"):
            values.pop(key)
        skipped: list[str] = []
        fetched = fetch_school_inbox(SftpEndpoint(**values), inbox, skip=skipped.append)
        opened = list(server.opened)

    assert fetched == 2
    assert (inbox / "12345A" / "ListEleve_12345A.xlsx").read_bytes() == b"PK good"
    assert (inbox / "98765B" / "notes.csv").read_bytes() == b"ok"
    planted = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"planted"]
    assert planted == []
    assert sorted(opened) == ["inbox/12345A/ListEleve_12345A.xlsx", "inbox/98765B/notes.csv"]
    assert len(skipped) == 4 and all(s.endswith(".") and "\n" not in s for s in skipped)
    assert any("huge.xlsx" in s and "bytes" in s for s in skipped)
