"""Issue 15, attack 2: ``massar query`` read and wrote any file the service could
(``read_csv('/etc/passwd')``, ``COPY … TO '<home>/massar.toml'``), tried to download
extensions, read unpublished Delta files, and crashed (exit 139/134) after a ``LIMIT`` query.

Now each of those statements is refused with one sentence and exit 2, nothing is read or
written, and ``LIMIT`` queries on every table exit 0 in fresh processes. A real home: a
generated province ingested, consolidated and published as a night by the platform's own
functions, queried through the real ``main`` and the installed interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from massar.cli import main
from massar.home import init_home
from tasks.consolidate import (
    changed_schools,
    consolidate_enrollments,
    consolidate_school_reference,
    consolidate_table,
)
from tasks.ingest import discover_inbox, ingest_school
from warehouse.control import ControlDatabase
from warehouse.nights import finish_night, start_night
from warehouse.tables import TABLES

REPO = Path(__file__).resolve().parents[2]
# Fresh processes, each querying every table with LIMIT. The crash (at exit) hit 5 runs in 8:
# eight clean runs leave it a chance below 1 in 2,000; fifty took minutes of the suite.
RUNS = 8
PARALLEL = 2


@pytest.fixture(scope="module")
def home(province, tmp_path_factory) -> Path:
    """The session's generated province, ingested and published as one night."""
    settings = init_home(tmp_path_factory.mktemp("query-readonly") / "home")
    schools, _ = discover_inbox(province)
    for code, files in sorted(schools.items()):
        ingest_school(settings, code, files, province / code)
    database = ControlDatabase(settings.resolved_database_url)
    try:
        versions = {"schools": consolidate_school_reference(settings)}
        for name, spec in TABLES.items():
            if spec.dataset is None:
                continue
            changed = changed_schools(database, spec.dataset)
            if name == "enrollments":
                versions[name], _ = consolidate_enrollments(settings, changed)
            else:
                versions[name] = consolidate_table(settings, name, changed)
        published = {name: version for name, version in versions.items() if version >= 0}
        finish_night(database, start_night(database), published, {})
    finally:
        database.dispose()
    return settings.home


def query(capsys, home: Path, sql: str, *options: str) -> tuple[int, str, str]:
    code = main(["query", sql, "--home", str(home), *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused_sentence(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the query is refused: "), err
    assert "massar query" in lines[0]  # says what the command does instead
    return lines[0]


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("select * from read_csv('/etc/passwd')", "read_csv()"),
        ("select * from read_text('{home}/massar.toml')", "read_text()"),
        ("select * from read_blob('{home}/massar.db')", "read_blob()"),
        ("select * from read_parquet('{home}/warehouse/students/*/*.parquet')", "read_parquet()"),
        ("select * from '/etc/passwd'", "names a file"),
        ("select * from glob('{home}/keys/*')", "glob()"),
        ("select * from query('select 1')", "query()"),
        ("with x as (select * from read_csv('/etc/passwd')) select * from x", "read_csv()"),
        ("copy (select 'approvers = [1]') to '{home}/massar.toml'", "COPY"),
        ("export database '{home}/exported'", "EXPORT DATABASE"),
        ("attach '{home}/massar.db' as control", "ATTACH"),
        ("install httpfs", "INSTALL"),
        ("load httpfs", "LOAD"),
        ("set enable_external_access = true", "SET"),
        ("pragma version", "PRAGMA"),
        ("create table t as select 1", "CREATE"),
        ("select count(*) from students; select 1", "one statement"),
    ],
)
def test_what_is_not_a_read_of_the_published_tables_is_refused(capsys, home, sql, named):
    settings_file = (home / "massar.toml").read_bytes()
    before = sorted(p.relative_to(home) for p in home.rglob("*") if "logs" not in p.parts)
    code, out, err = query(capsys, home, sql.format(home=home), "--format", "csv")
    assert named in _refused_sentence(code, out, err)
    assert "root:" not in out and out == ""  # nothing was read
    # Nothing was written: the settings file is the same, no file appeared in the home.
    assert (home / "massar.toml").read_bytes() == settings_file
    assert sorted(p.relative_to(home) for p in home.rglob("*") if "logs" not in p.parts) == before


def test_the_locked_connection_refuses_files_even_when_the_parser_check_is_bypassed(
    capsys, home, monkeypatch
):
    """Defence in depth: without the check of the parsed statement, DuckDB itself (no external
    access, configuration locked) still refuses, and the person still reads a sentence."""
    import warehouse.query

    monkeypatch.setattr(warehouse.query, "_check_sources", lambda connection, sql: None)
    for sql in (
        "select * from read_csv('/etc/passwd')",
        f"select * from read_blob('{home}/massar.db')",
        f"select * from read_parquet('{home}/warehouse/students/*/*.parquet')",
    ):
        code, out, err = query(capsys, home, sql)
        line = _refused_sentence(code, out, err)
        assert "files, network or extensions" in line
    monkeypatch.setattr(warehouse.query, "check_read_only", lambda sql: None)
    code, out, err = query(capsys, home, "set enable_external_access = true")
    assert code == 1 and "locked" in err, err


def test_reads_still_work_and_see_the_published_night(capsys, home):
    code, out, err = query(
        capsys,
        home,
        "with pupils as (select school_code, student_code from students) "
        "select p.school_code, count(*) as n from pupils p join enrollments e "
        "using (student_code) group by all order by 1",
        "--format",
        "json",
    )
    assert code == 0, err
    counts = json.loads(out)
    assert counts and all(row["n"] > 0 for row in counts)
    code, out, err = query(capsys, home, "select * from range(3)", "--format", "json")
    assert code == 0 and json.loads(out) == [{"range": 0}, {"range": 1}, {"range": 2}]


def _every_table(capsys, home: Path) -> list[str]:
    code, out, err = query(capsys, home, "show tables", "--format", "json")
    assert code == 0, err
    return [row["table"] for row in json.loads(out)]


CHILD = """
import sys
from massar.cli import main
home, tables = sys.argv[1], sys.argv[2:]
codes = [main(["query", f"select * from {t} limit 6", "--home", home, "--format", "csv"])
         for t in tables]
sys.exit(max(codes))
"""


def test_limit_queries_on_every_table_exit_0_in_fresh_processes(capsys, home):
    """The crash came at the process's exit, after its rows were printed: each run is a fresh
    interpreter that queries every table with LIMIT (one that a dataset's reader threads
    outlived) and exits on its own."""
    tables = _every_table(capsys, home)
    assert {"students", "guardians", "marks", "submissions"} <= set(tables)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASSAR_")}

    def one(_: int) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [sys.executable, "-c", CHILD, str(home), *tables],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO,
                env=env,
            )
        except subprocess.TimeoutExpired as hung:
            return subprocess.CompletedProcess(hung.cmd, -9, "", "hung")

    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = list(pool.map(one, range(RUNS)))
    failed = [(r.returncode, r.stderr.strip()[-300:]) for r in runs if r.returncode != 0]
    assert failed == [], f"{len(failed)} of {RUNS} runs failed: {failed[:3]}"
    for run in runs:  # every table answered: a header line and up to six rows each
        assert run.stdout.count("\n") >= len(tables)
