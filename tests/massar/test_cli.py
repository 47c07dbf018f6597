"""The operator's command: every contract command is there, and every mistake is one
sentence with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from massar.cli import main

CONTRACT_COMMANDS = [
    "init",
    "demo",
    "generate",
    "ingest",
    "nightly",
    "evaluate",
    "exchange",
    "approve",
    "query",
    "schools",
    "status",
    "backup",
    "restore",
]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_console_script_lists_the_public_commands():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("massar")), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for command in CONTRACT_COMMANDS:
        assert command in result.stdout
    exchange = subprocess.run(
        [str(Path(sys.executable).with_name("massar")), "exchange", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "run" in exchange.stdout and "verify" in exchange.stdout


def test_init_then_status_and_query(capsys, tmp_path):
    home = tmp_path / "home"
    code, out, _ = run(capsys, "init", "--home", str(home))
    assert code == 0 and "Home ready" in out
    assert (home / "massar.db").is_file()
    code, out, _ = run(capsys, "init", "--home", str(home))  # idempotent
    assert code == 0
    code, out, _ = run(capsys, "status", "--home", str(home))
    assert code == 0 and "Submissions by state" in out and "No submission yet." in out
    code, out, _ = run(
        capsys,
        "query",
        "select count(*) as n from submissions",
        "--home",
        str(home),
        "--format",
        "json",
    )
    assert code == 0 and json.loads(out) == [{"n": 0}]
    code, out, _ = run(
        capsys, "query", "select 'تيزنيت' as province", "--home", str(home), "-f", "csv"
    )
    assert code == 0 and out.splitlines() == ['"province"', '"تيزنيت"']


@pytest.mark.parametrize(
    ("args", "code", "sentence"),
    [
        (["status", "--home", "{tmp}/missing"], 1, "does not exist; create it with 'massar init"),
        (["query", "selec nothing", "--home", "{home}"], 1, "The query failed"),
        (["query", "select * from no_such_table", "--home", "{home}"], 1, "The query failed"),
        (["generate", "{tmp}/p", "--year", "2023-2024"], 2, "is not of the form YYYY/YYYY+1"),
        (["generate", "{tmp}/p", "--schools", "0"], 2, "Invalid value"),
        (["ingest", "{tmp}/no-such-folder", "--home", "{home}"], 1, "does not exist"),
        (["exchange", "verify", "{tmp}/missing.xml"], 1, "does not exist"),
        (["exchange", "run", "cnsss", "--home", "{home}"], 2, "Invalid value"),
        (["approve", "--home", "{home}"], 2, "Missing argument 'batch'"),
        (["no-such-command"], 2, "No such command"),
    ],
)
def test_mistakes_are_one_clear_sentence(capsys, tmp_path, args, code, sentence):
    home = tmp_path / "home"
    main(["init", "--home", str(home)])
    capsys.readouterr()
    args = [a.replace("{tmp}", str(tmp_path)).replace("{home}", str(home)) for a in args]
    got, out, err = run(capsys, *args)
    assert got == code
    assert sentence in err
    assert "Traceback" not in out + err


def test_settings_error_reaches_the_operator_as_a_sentence(capsys, tmp_path):
    home = tmp_path / "home"
    main(["init", "--home", str(home)])
    (home / "massar.toml").write_text('timezone = "Mars/Olympus"\n', encoding="utf-8")
    capsys.readouterr()
    code, _, err = run(capsys, "status", "--home", str(home))
    assert code == 1
    assert "The setting 'timezone' is not acceptable" in err
    assert "Traceback" not in err


def test_approving_an_unknown_batch_is_one_sentence(capsys, tmp_path):
    home = tmp_path / "home"
    main(["init", "--home", str(home)])
    capsys.readouterr()
    code, _, err = run(capsys, "approve", "CNSS-2024-000001", "--by", "Fatima", "--home", str(home))
    assert code == 1
    # true to what 'massar status' shows: no batch waits (the batches that do are named:
    # tests/massar/test_status.py)
    assert err.strip() == (
        "Error: There is no batch CNSS-2024-000001, and no batch waits for approval."
    )
    assert "Traceback" not in err


def test_the_approve_help_gives_a_batch_id_of_the_real_form(capsys):
    """The form a prepared batch's id has (FUND-YYYY-NNNNNN, tasks/batch_preparation.py; a real
    one is checked in tests/massar/test_status.py)."""
    code, out, _ = run(capsys, "approve", "--help")
    assert code == 0
    found = re.search(r"e\.g\.\s+(\S+)", " ".join(out.split()))
    assert found is not None and found.group(1) == "CNSS-2023-000001"
