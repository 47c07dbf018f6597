"""``massar``: the operator's command.

Every command on an installation takes ``--home DIR`` (or ``MASSAR_HOME``); ``generate``,
``inspect`` and ``exchange verify`` need none. Exit codes: 0 done, 1 the work failed, 2 bad
usage. A failure is one sentence on the terminal; a traceback (an unexpected
error's, a failed task's) goes to the home's ``logs/massar-errors.log``, never to the terminal.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from ground.errors import OperatorError, WorkFailed
from ground.funds import FUND_KEYS

app = typer.Typer(
    name="massar",
    help="Massar data platform of a provincial directorate: ingest, validate, consolidate, "
    "evaluate, and answer the partner funds CNSS and CMR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
exchange_app = typer.Typer(
    help="Exchanges with the partner funds CNSS and CMR.", no_args_is_help=True
)
app.add_typer(exchange_app, name="exchange")
approvers_app = typer.Typer(
    help="Who may approve partner batches (administrators: the home's owner or root).",
    no_args_is_help=True,
)
app.add_typer(approvers_app, name="approvers")
schools_app = typer.Typer(help="The directorate's list of schools.", no_args_is_help=True)
app.add_typer(schools_app, name="schools")

# Prefect's logging reads its console handler's class from here (massar/logs.py).
CONSOLE_VARIABLE = "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"
# Piped output (scripts, logs) gets wide tables instead of truncated columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="The installation's home folder (default: MASSAR_HOME or ./massar-home).",
        show_default=False,
    ),
]


# The funds of the registry (ground/funds.py), as the command line's choices.
Partner = StrEnum("Partner", {key: key for key in FUND_KEYS})  # type: ignore[misc]


QUERY_TABLE_ROWS = 50  # rows a table-format query shows unless --limit says otherwise
SHOWN_FINDINGS = 20  # findings of a schools import printed (all are in its CSV report)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


# ---------------------------------------------------------------------------------------------
# Home and demo


@app.command()
def init(home: HomeOption = None) -> None:
    """Create a home: folders, a commented settings file and the control database."""
    from massar.home import init_home

    settings = init_home(home)
    out.print(
        f"Home ready at {settings.home} (settings: {settings.home / 'massar.toml'}, "
        f"control database: {settings.resolved_database_url})."
    )


@app.command()
def generate(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the province into.")],
    schools: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=5000,
            help="Number of schools (default: a Tiznit-like province of about 250).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same province.")
    ] = 2024,
    year: Annotated[str, typer.Option(help="School year, YYYY/YYYY.")] = "2023/2024",
    defects: Annotated[
        bool, typer.Option("--defects", help="Inject known defects and write ground_truth.csv.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes to use (default: all cores).")
    ] = None,
) -> None:
    """Write a synthetic province in the real Massar layouts, plus partner request files."""
    _check_year(year)
    _check_writable_folder(outdir)
    from massar.synthetic import generate_province

    summary = generate_province(
        outdir, schools=schools, seed=seed, year=year, defects=defects, workers=workers
    )
    out.print(
        f"Generated {summary.schools} schools, {summary.pupils} pupils, {summary.files} files "
        f"in {summary.seconds:.1f} s into {outdir}."
    )


@app.command()
def demo(
    home: HomeOption = None,
    schools: Annotated[
        int, typer.Option(min=3, max=5000, help="Schools in the demo province.")
    ] = 12,
    seed: Annotated[int, typer.Option(help="Random seed of the demo province.")] = 2024,
) -> None:
    """Build a synthetic province in the home and run the whole chain that exists so far."""
    from massar.demo import run_demo

    summary = run_demo(home, schools=schools, seed=seed, console=out)
    out.print(summary)


# ---------------------------------------------------------------------------------------------
# Flows


@app.command()
def ingest(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="A folder of school folders or one school's folder (default: the home's inbox)."
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Ingest and validate the school submissions waiting in the inbox."""
    settings = _open(home)
    if path is not None:
        _check_readable(path)
        if not path.is_dir():
            raise OperatorError(
                f"{path} is not a folder; give the inbox (a folder of school "
                "folders) or one school's folder."
            )
    from massar.runner import run_ingest

    out.print(run_ingest(settings, path))


@app.command()
def inspect(
    file: Annotated[
        Path,
        typer.Argument(help="The file a school sent (or its archived copy).", metavar="FILE"),
    ],
    school: Annotated[
        str | None,
        typer.Option(
            help="The school that sent it (default: the school folder it lies in, "
            "e.g. inbox/27783Y/).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="The file's name as the school sent it (default: FILE's name)."),
    ] = None,
    rows: Annotated[int, typer.Option(min=0, help="Staged rows to show.")] = 8,
) -> None:
    """Show how the platform reads one file: layout, metadata and the cell each came from,
    header rows, slot columns, the first rows as staged, the findings. Registers nothing."""
    from tasks.inspect_file import inspect_file, school_code_for

    _check_readable(file)
    if file.is_dir():
        raise typer.BadParameter(f"{file} is a folder; give one file.", param_hint="FILE")
    code = school_code_for(file, school)
    if code is None:
        raise typer.BadParameter(
            f"{file} does not lie in a school's folder; say which school sent it "
            "(e.g. --school 27783Y).",
            param_hint="--school",
        )
    from massar.inspect_view import print_inspection

    print_inspection(inspect_file(file, school_code=code, file_name=name, rows=rows), out)


@app.command()
def nightly(home: HomeOption = None) -> None:
    """Run the nightly chain: ingest, consolidate into the warehouse, evaluate."""
    settings = _open(home)
    from massar.runner import run_nightly

    out.print(run_nightly(settings))


@app.command()
def evaluate(
    home: HomeOption = None,
    year: Annotated[str | None, typer.Option(help="School year, YYYY/YYYY.")] = None,
    semester: Annotated[int | None, typer.Option(min=1, max=2, help="Semester 1 or 2.")] = None,
) -> None:
    """Compute averages, decisions, ranks, exam results and statistics."""
    if year is not None:
        _check_year(year)
    settings = _open(home)
    from massar.runner import run_evaluate

    out.print(run_evaluate(settings, year, semester))


@exchange_app.command("run")
def exchange_run(
    partner: Annotated[Partner, typer.Argument(help="The partner fund.")],
    home: HomeOption = None,
) -> None:
    """Answer the fund's request: match, build, sign, wait for approval, deliver. The batches
    are prepared by the account you are logged in with, whose approver cannot approve them."""
    settings = _open(home)
    from massar.runner import run_exchange

    out.print(run_exchange(settings, partner.value, f"os:{_os_account()}"), markup=False)


@exchange_app.command("verify")
def exchange_verify(
    file: Annotated[Path, typer.Argument(help="A produced XML, CSV or manifest file.")],
) -> None:
    """Check a produced file's schema or layout and signature, as a partner would."""
    _check_readable(file)
    from connectors.verify import verify_file

    report = verify_file(file)
    if not report.ok:
        for problem in report.problems:
            err.print(problem, markup=False, highlight=False)
        raise OperatorError(
            f"{file.name} does not pass the checks of its exchange profile "
            f"({len(report.problems)} problem{'s' if len(report.problems) > 1 else ''} above)."
        )
    out.print(f"{file.name}: {report.kind} of profile {report.profile} holds.", markup=False)
    for check in report.checked:
        # emoji=False: a fingerprint's ":AB:" must not become an emoji.
        out.print(f"  checked: {check}", markup=False, highlight=False, soft_wrap=True, emoji=False)
    if report.signer is not None:
        out.print(
            "  Compare the signer's SHA-256 fingerprint with the certificate the directorate "
            "gave you.",
            markup=False,
            soft_wrap=True,
        )


@exchange_app.command("evidence")
def exchange_evidence(
    to: Annotated[Path, typer.Option("--to", help="The JSON file to write.")],
    partner: Annotated[Partner | None, typer.Option(help="Only this fund's files.")] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
    home: HomeOption = None,
) -> None:
    """Export the hash-chained message log of what was sent, as evidence for an auditor."""
    settings = _open(home)
    from warehouse.control import ControlDatabase
    from warehouse.message_log_evidence import export_evidence, verify_message_log

    database = ControlDatabase(settings.resolved_database_url)
    try:
        check = verify_message_log(database)
        path = export_evidence(database, to, partner.value if partner else None, batch)
    finally:
        database.dispose()
    out.print(
        f"Evidence written to {path}: {check.entries} message-log entries, chain "
        + ("intact" if check.intact else "BROKEN: " + " ".join(check.problems))
        + f", head {check.head_hash}.",
        markup=False,
    )
    if not check.intact:
        raise OperatorError("The message log's chain is broken; the evidence file says where.")


@app.command()
def approve(
    batch: Annotated[
        str,
        typer.Argument(help="The batch id, e.g. CNSS-2023-000001 ('massar status' lists them)."),
    ],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    code: Annotated[
        str,
        typer.Option(
            "--code", help="Your authenticator app's current code (asked at a terminal if absent)."
        ),
    ] = "",
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Only a check: your name as the approvers list has it. Who you are comes from "
            "the account you are logged in with.",
        ),
    ] = "",
    comment: Annotated[str, typer.Option(help="A comment kept with the decision.")] = "",
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Record without asking (the question is asked at a terminal only)."
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Show a partner batch waiting for a decision, then approve (or reject) it as the approver
    of the account you are logged in with, proven by your current code."""
    settings = _open(home)
    from massar.runner import approval_preview, approve_batch
    from tasks.approval_rules import Claim

    summary, shown = approval_preview(settings, batch)
    out.print(shown, markup=False, soft_wrap=True)
    waiting = summary["state"] == "waiting_approval"
    ask = waiting and not yes and sys.stdin.isatty()
    verb = "Reject" if reject else "Approve"
    if ask and not typer.confirm(f"{verb} batch {batch} as shown?", default=False):
        out.print("Nothing was recorded.", markup=False)
        return
    code = code or _ask_code(waiting)
    claim = Claim("cli", code=code, name=by, os_account=_os_account())
    out.print(approve_batch(settings, batch, claim, not reject, comment), markup=False)


def _os_account() -> str:
    from ground.approvers import current_os_account

    return current_os_account()


def _ask_code(needed: bool) -> str:
    """The approver's code, asked at a terminal; empty elsewhere (the rules then refuse, in
    the message log, naming what is missing)."""
    if needed and sys.stdin.isatty():
        return str(typer.prompt("Your code (authenticator app)", default="", show_default=False))
    return ""


@approvers_app.command("add")
def approvers_add(
    name: Annotated[str, typer.Argument(help="The approver's name, as decisions record it.")],
    os_account: Annotated[
        str, typer.Option("--os-account", help="The account they run 'massar approve' under.")
    ],
    home: HomeOption = None,
) -> None:
    """Enrol an approver: a new TOTP secret, shown once, for their authenticator app."""
    from ground.approvers import enrol_approver

    settings = _open(home)
    enrolled = enrol_approver(settings.home, name, os_account, f"Massar {settings.province}")
    out.print(
        f"{enrolled.approver.name} (account {enrolled.approver.os_account}) may approve partner "
        f"batches. Give them, once and in person, this secret for their authenticator app "
        f"(it is not shown again; its copy is {enrolled.approver.totp_secret_file}, 0600):\n"
        f"  secret: {enrolled.secret}\n  {enrolled.uri}",
        markup=False,
        soft_wrap=True,
    )


@approvers_app.command("remove")
def approvers_remove(
    name: Annotated[str, typer.Argument(help="The approver's name, as listed.")],
    home: HomeOption = None,
) -> None:
    """Take an approver off the list (their secret is deleted)."""
    from ground.approvers import remove_approver

    settings = _open(home)
    removed = remove_approver(settings.home, name)
    out.print(f"{removed.name} may no longer approve partner batches.", markup=False)


@approvers_app.command("list")
def approvers_list(home: HomeOption = None) -> None:
    """The approvers and their accounts (never their secrets)."""
    from ground.approvers import load_approvers

    settings = _open(home)
    listed = load_approvers(settings.home)
    if not listed.approvers:
        out.print(
            f"Nobody may approve partner batches yet ({listed.path}); enrol an approver with "
            "'massar approvers add NAME --os-account ACCOUNT'.",
            markup=False,
        )
    for approver in listed.approvers:
        out.print(f"{approver.name} (account {approver.os_account})", markup=False)


@app.command()
def review(
    batch: Annotated[str, typer.Argument(help="The batch id, e.g. CNSS-2024-000001.")],
    child: Annotated[
        str | None,
        typer.Option("--child", help="A child's fund reference: show it, or decide it."),
    ] = None,
    candidate: Annotated[
        str | None,
        typer.Option(
            "--candidate", help="This candidate is the child (its Massar code or its number)."
        ),
    ] = None,
    not_found: Annotated[
        bool, typer.Option("--not-found", help="No pupil of the province is the child.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the child REVIEW.")] = False,
    code: Annotated[
        str, typer.Option("--code", help="Your authenticator app's current code, to decide.")
    ] = "",
    by: Annotated[
        str,
        typer.Option(
            "--by", help="Only a check: your name as the approvers list has it (see approve)."
        ),
    ] = "",
    comment: Annotated[str, typer.Option(help="A comment kept with the decision.")] = "",
    undecided: Annotated[
        bool, typer.Option("--undecided", help="List only the children not decided yet.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """List a batch's REVIEW children with their candidates, or decide one before approval."""
    chosen = [
        flag
        for flag, given in (
            ("--candidate", candidate is not None),
            ("--not-found", not_found),
            ("--keep", keep),
        )
        if given
    ]
    if len(chosen) > 1:
        raise typer.BadParameter(
            f"{' and '.join(chosen)} cannot go together: give one decision.", param_hint="--child"
        )
    if chosen and child is None:
        raise typer.BadParameter(f"{chosen[0]} needs the child it decides.", param_hint="--child")
    settings = _open(home)
    from tasks.exchange_review import (
        KEEP,
        NOT_FOUND_CHOICE,
        ChildChoice,
        decide_children,
        decision_text,
        review_listing,
    )

    if not chosen:
        out.print(review_listing(settings, batch, child, undecided), markup=False, soft_wrap=True)
        return
    assert child is not None
    from tasks.approval_rules import Claim

    choice = candidate if candidate is not None else (NOT_FOUND_CHOICE if not_found else KEEP)
    claim = Claim("cli", code=code or _ask_code(True), name=by, os_account=_os_account())
    outcome = decide_children(settings, batch, [ChildChoice(child, choice)], claim, comment)
    out.print(decision_text(outcome), markup=False, soft_wrap=True)


@app.command()
def confirm(
    submission: Annotated[
        int, typer.Argument(help="The id of a held resend, as 'massar status' lists it.")
    ],
    by: Annotated[
        str, typer.Option("--by", help="Your name, kept with the confirmation (default: you).")
    ] = "",
    home: HomeOption = None,
) -> None:
    """Apply a resend held because it would remove much of what its school had."""
    from tasks.resends import confirm_resend

    settings = _open(home)
    try:
        done = confirm_resend(settings, submission, by)
    except LookupError:
        raise OperatorError(
            f"There is no submission {submission}; 'massar status' lists the held resends."
        ) from None
    except ValueError as error:
        why = {"confirmed": "it was confirmed already"}.get(
            str(error), "it is not held (never held, or replaced since by a newer file)"
        )
        raise OperatorError(
            f"Submission {submission} cannot be confirmed: {why}; 'massar status' lists the "
            "held resends."
        ) from None
    lines = (
        f"its {done.lines_after} line(s) replace the {done.lines_before} the school had"
        if done.lines_before is not None
        else "it replaces what the school had"
    )
    out.print(
        f"Submission {done.submission_id} ({done.dataset} file {done.file_name} of school "
        f"{done.school_code}) confirmed by {done.confirmed_by}: {lines} at the next night "
        "('massar nightly'). The school's report is updated.",
        markup=False,
        soft_wrap=True,
    )


@schools_app.command("import")
def schools_import(
    file: Annotated[
        Path, typer.Argument(help="The list of schools, CSV or XLSX (README: first steps).")
    ],
    home: HomeOption = None,
) -> None:
    """Import the directorate's list of schools: checked row by row, the good rows recorded
    and published in the warehouse's schools table; the same file again changes nothing."""
    settings = _open(home)
    _check_readable(file)
    if file.is_dir():
        raise OperatorError(f"{file} is a folder; give the list of schools, a CSV or XLSX file.")
    from tasks.schools import import_school_list

    try:
        outcome = import_school_list(settings, file)
    except OSError as error:
        raise OperatorError(f"{file} cannot be read ({error.strerror}).") from error
    lines = []
    if outcome.already_imported:
        lines.append(
            f"{file.name} was imported already (submission {outcome.submission_id}): "
            f"{outcome.imported} school(s) imported, {outcome.refused} row(s) refused then; "
            "nothing changes."
        )
    else:
        lines.append(
            f"{file.name} (submission {outcome.submission_id}): {outcome.rows_read} row(s) read, "
            f"{outcome.imported} school(s) imported, {outcome.refused} row(s) refused."
        )
    for finding in outcome.findings[:SHOWN_FINDINGS]:
        where = (
            f"row {finding['sheet_row']}, column « {finding['column_name']} »"
            if finding["sheet_row"]
            else "the file"
        )
        lines.append(f"  {where} [{finding['rule_id']}]: {finding['message_fr']}")
        lines.append(f"      {finding['message_ar']}")
    if len(outcome.findings) > SHOWN_FINDINGS:
        lines.append(f"  … {len(outcome.findings) - SHOWN_FINDINGS} more finding(s).")
    if outcome.report is not None:
        lines.append(f"Every finding, in French and Arabic: {outcome.report}.")
    if outcome.night_id is not None:
        lines.append(
            f"The schools table (version {outcome.schools_version}) is published with night "
            f"{outcome.night_id}: statistics and 'massar query' use it now."
        )
    if outcome.imported == 0:
        raise WorkFailed(
            f"No school of {file.name} could be imported: correct the file (findings above) "
            "and import it again.",
            "\n".join(lines),
        )
    out.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Looking


class RefusedQuery(TyperException):
    """A statement ``massar query`` refuses (it does more than read): bad usage, exit 2."""

    exit_code = 2


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over the warehouse tables, e.g. "
            '"select state, count(*) from submissions group by state"; "show tables" and '
            '"describe TABLE" list what can be queried.',
        ),
    ],
    home: HomeOption = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Rows to give (0: all). Default: {QUERY_TABLE_ROWS} for the table format, "
            "every row for csv and json.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run one SELECT (DuckDB) over the published warehouse tables and the control tables; it
    shows pupils' data. Anything but a read (files, COPY, ATTACH, INSTALL, SET …) is refused
    (exit 2)."""
    from warehouse.control import ControlDatabase
    from warehouse.query import QueryError, QueryRefused, query_rows

    settings = _open(home)
    if limit is None:
        limit = QUERY_TABLE_ROWS if format is OutputFormat.table else 0
    database = ControlDatabase(settings.resolved_database_url)
    try:
        result = query_rows(
            sql, warehouse=settings.warehouse, database=database, limit=limit or None
        )
    except QueryRefused as error:  # not a read of the published tables: bad usage, exit 2
        raise RefusedQuery(f"the query is refused: {error}") from error
    except QueryError as error:
        raise OperatorError(f"The query failed: {error}") from error
    finally:
        database.dispose()
    _print_table(result.table, format)
    shown, total = result.table.num_rows, result.total_rows
    note = f"{total:,} row{'s' if total != 1 else ''}."
    if result.limited:
        note = f"{shown:,} of {total:,} rows shown; --limit N shows N rows, --limit 0 all of them."
    if format is OutputFormat.table:
        out.print(note, markup=False, highlight=False)
    elif result.limited:  # csv and json keep stdout for the data
        err.print(note, markup=False, highlight=False)


@app.command()
def coverage(
    home: HomeOption = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="One campaign of campaigns.toml (its id).")
    ] = None,
    format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.table,
    school: Annotated[
        str | None, typer.Option("--school", help="List what this school still owes (its code).")
    ] = None,
) -> None:
    """Who has sent what: per school, what it owes for each campaign (owed, received,
    accepted, rejected, missing, days to the deadline); --school CODE lists its missing items."""
    import re

    import pyarrow as pa

    from tasks.coverage import (
        ITEM_COLUMNS,
        SCHOOL_COLUMNS,
        campaign_lines,
        compute_coverage,
        item_rows,
        school_rows,
    )

    if school is not None and not re.fullmatch(r"\d{5}[A-Z]", school):  # bad usage: exit 2
        raise typer.BadParameter(
            f"{school!r} is not a school code (five digits and a letter, e.g. 59819H).",
            param_hint="'--school'",
        )
    coverages = compute_coverage(_open(home), campaign, [school] if school else None)
    rows = item_rows(coverages) if school else school_rows(coverages)
    columns = ITEM_COLUMNS if school else SCHOOL_COLUMNS
    _print_table(pa.table({c: [row[c] for row in rows] for c in columns}), format)
    notes = campaign_lines(coverages) + [n for c in coverages for n in c.notes]
    for line in notes:  # csv and json keep stdout for the data
        (out if format is OutputFormat.table else err).print(line, markup=False, highlight=False)


@app.command()
def status(home: HomeOption = None) -> None:
    """The officer's home page: what to do next, the runs of every flow, the last night,
    batches by state, submissions, schools with rejected files, the intake."""
    from massar.status import installation_status

    settings = _open(home)
    for table in installation_status(settings):
        out.print(table)


@app.command()
def housekeeping(home: HomeOption = None) -> None:
    """Delete old Prefect runs, rotate logs, measure the archive and the free disk (daily)."""
    settings = _open(home)
    from massar.runner import prefect_api

    with prefect_api(settings):
        from flows.housekeeping import housekeeping as housekeeping_flow
        from tasks.alerts import AlertDeliveryError
        from tasks.housekeeping import describe_housekeeping

        try:
            result = housekeeping_flow(settings.without_secrets())
        except AlertDeliveryError as error:
            raise OperatorError(
                f"Housekeeping is done, but the low-disk alert was not e-mailed: {error}"
            ) from error
    out.print(describe_housekeeping(result), markup=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Backup and restore (docs/backup.md)


@app.command()
def backup(
    home: HomeOption = None,
    to: Annotated[
        Path, typer.Option("--to", help="Folder outside the home to write the backup into.")
    ] = Path("."),
    include_keys: Annotated[
        bool,
        typer.Option("--include-keys", help="Also keep keys/ (then guard it like the keys)."),
    ] = False,
    include_inbox: Annotated[
        bool, typer.Option("--include-inbox", help="Also keep files not ingested yet.")
    ] = False,
) -> None:
    """Write one archive of the home: control database, warehouse, archive, exchange, reports."""
    settings = _open(home)
    from warehouse.backup import BackupError, backup_home

    try:
        report = backup_home(settings, to, include_keys=include_keys, include_inbox=include_inbox)
    except BackupError as error:
        raise OperatorError(str(error)) from error
    out.print(
        f"Backup written: {report.path} ({report.size_bytes / 1e6:.1f} MB, sha256 "
        f"{report.sha256}).",
        markup=False,
        soft_wrap=True,
    )
    for section, (files, size) in report.sections.items():
        out.print(f"  {section}: {files} files, {size / 1e6:.1f} MB", markup=False)
    night = "no completed night yet" if report.night_id is None else f"night {report.night_id}"
    out.print(
        f"  warehouse as of {night} ({len(report.versions)} tables); left out: "
        f"{', '.join(f'{name}/' for name in report.left_out) or 'nothing'}.",
        markup=False,
        soft_wrap=True,
    )
    if report.problems:
        for problem in report.problems:
            err.print(problem, markup=False, highlight=False)
        raise OperatorError(
            f"The backup is written but the home it copies fails {len(report.problems)} "
            "consistency check(s) (above); look into them before relying on this backup."
        )


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="A backup written by 'massar backup'.")],
    home: HomeOption = None,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url",
            help="An empty database for the control records (default: SQLite in the new home).",
        ),
    ] = "",
) -> None:
    """Restore a backup into a new, empty home (--home), then check that it holds together."""
    _check_readable(archive)
    from ground.settings import resolve_home
    from warehouse.backup import BackupError, restore_home

    try:
        report = restore_home(archive, resolve_home(home), database_url=database_url)
    except BackupError as error:
        raise OperatorError(str(error)) from error
    out.print(
        f"Restored {archive.name} (province {report.province}, taken {report.created_at}) into "
        f"{report.home}: {report.files} files, control database {report.database_url}.",
        markup=False,
        soft_wrap=True,
    )
    if report.problems:
        for problem in report.problems:
            err.print(problem, markup=False, highlight=False)
        raise OperatorError(
            f"The restored home {report.home} fails {len(report.problems)} consistency "
            "check(s) (above)."
        )
    night = "no completed night" if report.night_id is None else f"night {report.night_id}"
    out.print(
        f"Consistency check passed: {night} reads at its table versions, every archived "
        "original matches its sha256, the message log's chain is intact.",
        markup=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------------------------------------
# Helpers of this module


def _open(home: Path | None):  # type: ignore[no-untyped-def]
    from massar.home import open_home

    return open_home(home)


def _check_year(year: str) -> None:
    import re

    match = re.fullmatch(r"(\d{4})/(\d{4})", year)
    if not match or int(match[2]) != int(match[1]) + 1:  # bad usage: exit 2
        raise typer.BadParameter(
            f"the school year {year!r} is not of the form YYYY/YYYY+1, e.g. 2023/2024.",
            param_hint="'--year'",
        )


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise OperatorError(f"{path} does not exist.")
    try:
        if path.is_dir():
            next(iter(path.iterdir()), None)
        else:
            with path.open("rb") as handle:
                handle.read(1)
    except OSError as error:
        raise OperatorError(f"{path} cannot be read ({error.strerror}).") from error


def _check_writable_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise OperatorError(f"{path} exists and is not a folder; choose an empty or new folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".massar-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OperatorError(f"{path} is not a writable folder ({error.strerror}).") from error


def _print_table(result, format: OutputFormat) -> None:  # type: ignore[no-untyped-def]
    if format is OutputFormat.csv:
        import io

        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(_flat_for_csv(result), sink)
        sys.stdout.write(sink.getvalue().decode("utf-8"))
    elif format is OutputFormat.json:
        import json

        sys.stdout.write(json.dumps(result.to_pylist(), ensure_ascii=False, default=str) + "\n")
    else:
        table, width = _rich_table(result)
        # Wider than the terminal rather than cutting a code: the terminal wraps the line.
        Console(width=max(out.width, width)).print(table, crop=False)


def _flat_for_csv(result):  # type: ignore[no-untyped-def]
    """The table with its list and struct columns (exam_results' missing_components and
    missing_papers) as text a CSV cell can hold — a list's items joined by "; ", anything else
    nested as JSON — which Arrow's CSV writer refuses otherwise."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(result.schema):
        column = result.column(index)
        listed = pa.types.is_list(field.type) or pa.types.is_large_list(field.type)
        if listed and pa.types.is_string(field.type.value_type):
            result = result.set_column(index, field.name, pc.binary_join(column, "; "))
        elif pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
            result = result.set_column(index, field.name, pa.array(text, pa.string()))
    return result


def _rich_table(result) -> tuple[Table, int]:  # type: ignore[no-untyped-def]
    """A Rich table that never cuts a value: words (codes, numbers, dates) keep their full
    width, only text with spaces wraps (at 40 characters); returns it with the width it
    needs."""
    from rich.cells import cell_len

    rows = [["" if v is None else str(v) for v in row.values()] for row in result.to_pylist()]
    table = Table()
    width = 1
    for index, name in enumerate(result.column_names):
        cells = [row[index] for row in rows]
        longest = max([cell_len(name), *(cell_len(c) for c in cells)])
        words = max([cell_len(w) for c in [name, *cells] for w in c.split()] or [0])
        if any(" " in c for c in cells) and longest > 40:
            table.add_column(name, overflow="fold", min_width=max(words, 1))
            width += max(words, 40) + 3
        else:
            table.add_column(name, no_wrap=True, min_width=longest)
            width += longest + 3
    for row in rows:
        table.add_row(*row)
    return table, width


def _home_argument(args: list[str]) -> str | None:
    """The ``--home`` of a command line, before the command parses it."""
    for index, arg in enumerate(args):
        if arg == "--home" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--home="):
            return arg.split("=", 1)[1]
    return None


def database_away(error: BaseException) -> str:
    """The sentence for a command whose control database could not be used (stopped,
    restarting, refusing connections), or "" for any other error."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(error, OperationalError):
        return ""
    reason = (str(error.orig or error).splitlines() or [""])[0].strip()
    return (
        f"Error: The control database could not be used ({reason}). If it was stopped or "
        "is restarting, start it again (docs/operations.md, 'A database restart'), then run "
        "the command again: what this run had not finished is done by the next one."
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code: 0 done, 1 the work failed
    (one sentence on stderr; a traceback goes to the home's logs/massar-errors.log, never to
    the terminal), 2 bad usage (a malformed command line), 130 interrupted."""
    from massar.logs import CONSOLE_CLASS, log_exception

    args = sys.argv[1:] if argv is None else list(argv)
    # For this command and the processes it starts: the home (where the error log is) and
    # Prefect's console without tracebacks. Put back afterwards (tests call main in-process).
    saved = {name: os.environ.get(name) for name in ("MASSAR_HOME", CONSOLE_VARIABLE)}
    home = _home_argument(args)
    if home:
        os.environ["MASSAR_HOME"] = str(Path(home).resolve())
    os.environ.setdefault(CONSOLE_VARIABLE, CONSOLE_CLASS)
    # What the command and its flows write (reports, backups, keys, logs) is the owner's
    # only, whatever the umask it was started with: folders 0700, files 0600.
    umask = os.umask(0o077)
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="massar", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except TyperException as error:  # bad argument or option: usage line and one sentence
        show = getattr(error, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"Error: {error.format_message()}", markup=False, highlight=False)
        return error.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("Interrupted.")
        return 130
    except WorkFailed as error:
        if error.done:
            out.print(error.done, markup=False, highlight=False, soft_wrap=True)
        err.print(f"Error: {error}", markup=False, highlight=False)
        return 1
    except OperatorError as error:
        err.print(f"Error: {error}", markup=False, highlight=False)
        return 1
    except Exception as error:
        log_file = log_exception(error)
        if database_away(error):  # stopped or restarting: a sentence, not a bug report
            err.print(database_away(error), markup=False, highlight=False)
            return 1
        first = (str(error).splitlines() or [""])[0]
        err.print(
            f"Unexpected error ({type(error).__name__}: {first}); the details are in "
            f"{log_file}. Please report it to the platform's maintainers.",
            markup=False,
            highlight=False,
        )
        return 1
    finally:
        os.umask(umask)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
