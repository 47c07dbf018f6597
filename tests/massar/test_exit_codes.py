"""Exit codes that scripts and schedulers can trust, command by command: 0 done, 1 the work
failed (one sentence on stderr, never a traceback: that goes to the home's error log), 2 bad
usage. Real homes made with ``massar init``; commands run through the real ``main`` (flows on
the session's Prefect test server) and, where the terminal itself is the point, as the
installed console script in a subprocess."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from massar.cli import main

MASSAR = str(Path(sys.executable).with_name("massar"))


@pytest.fixture
def home(tmp_path, capsys) -> Path:
    path = tmp_path / "home"
    assert main(["init", "--home", str(path)]) == 0
    capsys.readouterr()
    return path


@pytest.fixture
def on_test_server(prefect_server, monkeypatch) -> str:
    """Flows of in-process commands report to the session's Prefect server."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    return prefect_server


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def one_sentence(err: str) -> str:
    """The ``Error:`` line of stderr (log lines of a flow run may come before it)."""
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, err
    return errors[0]


def console(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MASSAR, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


# ---- bad usage: 2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--year", "2023-2024", "--home", "{home}"],
        ["evaluate", "--year", "2023/2025", "--home", "{home}"],
        ["evaluate", "--semester", "3", "--home", "{home}"],
        ["generate", "{tmp}/p", "--year", "2023-2024"],
        ["generate", "{tmp}/p", "--schools", "0"],
        ["demo", "--schools", "2", "--home", "{home}"],
        ["exchange", "run", "cnsss", "--home", "{home}"],
        ["approve", "--home", "{home}"],
        ["query", "select 1", "--limit", "-1", "--home", "{home}"],
        ["status", "--no-such-option"],
        ["no-such-command"],
        ["schools", "import"],
        ["confirm", "not-a-number", "--home", "{home}"],
    ],
)
def test_bad_usage_exits_2_with_the_usage_line(capsys, tmp_path, home, args):
    args = [a.replace("{tmp}", str(tmp_path)).replace("{home}", str(home)) for a in args]
    code, out, err = run(capsys, *args)
    assert code == 2, err
    assert "Error:" in err and out == ""
    assert not (tmp_path / "p").exists()


# ---- the work failed: 1 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["init", "--home", "{tmp}/a-file"], "{tmp}/a-file"),
        (["status", "--home", "{tmp}/missing"], "does not exist; create it with 'massar init"),
        (["generate", "{tmp}/a-file"], "exists and is not a folder"),
        (["ingest", "{tmp}/no-such-folder", "--home", "{home}"], "does not exist"),
        (["evaluate", "--home", "{home}"], "run 'massar nightly' before 'massar evaluate'"),
        (["approve", "CNSS-2023-000001", "--by", "F", "--home", "{home}"], "There is no batch"),
        (["confirm", "4242", "--home", "{home}"], "There is no submission 4242"),
        (["query", "selec 1", "--home", "{home}"], "The query failed"),
        (["exchange", "verify", "{tmp}/a-file"], "does not pass the checks"),
        (["exchange", "verify", "{tmp}/missing.xml"], "does not exist"),
        (["restore", "{tmp}/missing.tar", "--home", "{tmp}/new"], "does not exist"),
        (["backup", "--home", "{home}", "--to", "{home}"], "choose a folder outside it"),
    ],
)
def test_failed_work_exits_1_with_one_sentence(capsys, tmp_path, home, args, sentence):
    (tmp_path / "a-file").write_text("not a folder, not an exchange file\n")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{home}", str(home)) for a in args]
    code, _, err = run(capsys, *args)
    assert code == 1, err
    line = one_sentence(err)
    assert sentence.replace("{tmp}", str(tmp_path)) in line, line


def test_an_unexpected_error_exits_1_and_its_traceback_goes_to_the_homes_error_log(capsys, home):
    (home / "massar.db").write_bytes(b"this is not a SQLite database\n" * 10)
    code, _, err = run(capsys, "status", "--home", home)
    assert code == 1
    log = home / "logs" / "massar-errors.log"
    assert f"the details are in {log}" in err and err.strip().count("\n") == 0
    assert "Traceback (most recent call last)" in log.read_text("utf-8")


def _unreadable_by_the_platform(home: Path, province: Path, names: tuple[str, ...]) -> None:
    """A school's files in the inbox, the first of which the platform itself will fail to
    read: its own archive copy is a folder (as a damaged archive would be)."""
    school = next(p for p in sorted(province.iterdir()) if p.is_dir() and p.name[:5].isdigit())
    inbox = home / "inbox" / school.name
    inbox.mkdir(parents=True)
    for name in names:
        shutil.copy(school / name, inbox / name)
    sha256 = hashlib.sha256((inbox / names[0]).read_bytes()).hexdigest()
    (home / "archive" / sha256[:2] / sha256).mkdir(parents=True)


def test_ingest_exits_1_when_the_platform_cannot_read_a_file(tmp_path, province, on_test_server):
    """A file the platform itself fails to read is the platform's failure: exit 1 with one
    sentence, what was done on stdout, the school's other file ingested, no traceback."""
    home = tmp_path / "home"
    assert console("init", "--home", home).returncode == 0
    _unreadable_by_the_platform(home, province, ("absences.csv", "discipline.csv"))
    env = {"PREFECT_API_URL": on_test_server}
    result = console("ingest", "--home", home, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "2 new file(s)" in result.stdout and "1 accepted" in result.stdout
    line = one_sentence(result.stderr)
    assert "1 file(s) could not be read by the platform itself" in line
    log = home / "logs" / "massar-errors.log"
    assert str(log) in line and "IsADirectoryError" in log.read_text("utf-8")
    # Nothing new on a second run: done, 0.
    again = console("ingest", "--home", home, env=env)
    assert again.returncode == 0 and "0 new file(s)" in again.stdout


def test_nightly_exits_1_when_a_file_is_not_readable_by_the_platform(
    tmp_path, province, on_test_server
):
    home = tmp_path / "home"
    assert console("init", "--home", home).returncode == 0
    _unreadable_by_the_platform(home, province, ("discipline.csv",))
    result = console("nightly", "--home", home, env={"PREFECT_API_URL": on_test_server})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "Night 1" in result.stdout  # the night was published all the same
    assert "could not be read by the platform itself" in one_sentence(result.stderr)


def test_exchange_with_a_request_and_no_signing_identity_fails_in_one_sentence(
    tmp_path, province, on_test_server
):
    """The case of the issue, as the console script: exit 1, the sentence once, no
    traceback on the terminal (it is in the home's error log), no 'No new request'."""
    home = tmp_path / "home"
    assert console("init", "--home", home).returncode == 0
    outbox = home / "exchange" / "cmr" / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    request = province / "partners" / "cmr" / "CMR_SCOL_2023-2024_0001.csv"
    shutil.copy(request, outbox / request.name)
    result = console(
        "exchange", "run", "cmr", "--home", home, env={"PREFECT_API_URL": on_test_server}
    )
    assert result.returncode == 1, result.stderr
    terminal = result.stdout + result.stderr
    assert "Traceback" not in terminal
    assert "No new request" not in terminal
    line = one_sentence(result.stderr)
    assert line == (
        "Error: No signing identity is configured; set signing_key and signing_certificate "
        "(PEM files) in massar.toml before producing partner files."
    )
    log = (home / "logs" / "massar-errors.log").read_text("utf-8")
    assert "Traceback (most recent call last)" in log and "SigningError" in log


# ---- done: 0 ------------------------------------------------------------------------------------


def test_commands_that_did_their_work_exit_0(capsys, tmp_path, home, on_test_server):
    assert run(capsys, "init", "--home", home)[0] == 0  # again: safe
    assert run(capsys, "status", "--home", home)[0] == 0
    assert run(capsys, "query", "select 1 as n", "--home", home)[0] == 0
    code, out, _ = run(capsys, "ingest", "--home", home)
    assert code == 0 and "0 new file(s)" in out
    code, out, _ = run(capsys, "exchange", "run", "cmr", "--home", home)
    assert code == 0 and "No new request from CMR." in out
    evidence = tmp_path / "evidence.json"
    assert run(capsys, "exchange", "evidence", "--to", evidence, "--home", home)[0] == 0
    assert run(capsys, "backup", "--home", home, "--to", tmp_path / "backups")[0] == 0
    archive = next((tmp_path / "backups").iterdir())
    code, _, err = run(capsys, "restore", archive, "--home", tmp_path / "restored")
    assert code == 0, err
    code, _, err = run(capsys, "housekeeping", "--home", home)
    assert code == 0, err
    code, out, _ = run(capsys, "generate", tmp_path / "p", "--schools", "1")
    assert code == 0 and "Generated 1 schools" in out
