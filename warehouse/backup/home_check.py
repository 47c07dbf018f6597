"""How a home is checked for consistency: its control database, last night's tables, the
archive of originals, the staged rows of every active submission and the message log's chain.

A backup runs the check on its staged copy and a restore on the restored home; both report
what it finds rather than stopping (a damaged home may be the only copy left).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from warehouse.backup.layout import shown_url
from warehouse.control import ControlDatabase, Submission, database_revision, head_revision

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HomePlaces(Protocol):
    """What a home must provide to be backed up or checked: ``ground.settings.Settings``
    provides it."""

    @property
    def home(self) -> Path: ...
    @property
    def resolved_database_url(self) -> str: ...
    @property
    def archive(self) -> Path: ...
    @property
    def staging(self) -> Path: ...
    @property
    def warehouse(self) -> Path: ...


@dataclass(frozen=True)
class HomeFolder:
    """A home known by its folder and its database URL (a staged or restored home)."""

    home: Path
    resolved_database_url: str

    @property
    def archive(self) -> Path:
        return self.home / "archive"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse"


def check_home(
    settings: HomePlaces,
    *,
    expected_rows: Mapping[str, int] | None = None,
    digests: dict[str, str] | None = None,
    rows_read: bool = True,
) -> list[str]:
    """Check that a home holds together; returns problems as sentences (empty: consistent).

    * the control database opens and is at this platform's newest migration;
    * every table of the last completed night reads at the night's version (and holds
      ``expected_rows`` when given, as a backup's manifest records them);
    * every archive file is named by its content's sha256 (``archive/<aa>/<sha256>``);
    * every submission's original is in the archive, and the staged rows of every active
      submission are all there (the next night rebuilds a school from them);
    * the message log's hash chain is intact.

    ``digests``: archive path (``archive/aa/…``) → sha256 already known (read instead of
    hashing again; filled with what this check hashes). ``rows_read=False`` skips reading
    the night's tables (the caller just did)."""
    url = settings.resolved_database_url
    try:
        revision = database_revision(url)
    except SQLAlchemyError as error:
        return [
            f"The control database {shown_url(url)} cannot be opened ({type(error).__name__}: "
            f"{str(error).splitlines()[0]})."
        ]
    head = head_revision()
    if revision != head:
        return [
            f"The control database {shown_url(url)} is at migration {revision}, not this "
            f"platform's newest ({head}); open the home once with 'massar status' to migrate it."
        ]
    problems: list[str] = []
    if rows_read:
        night_id, versions = published_night(url)
        rows, unreadable = night_rows(settings.warehouse, night_id, versions)
        problems += unreadable
        for table, expected in (expected_rows or {}).items():
            if table in rows and rows[table] != expected:
                problems.append(
                    f"Table {table} of night {night_id} holds {rows[table]} rows at version "
                    f"{versions.get(table)} where the backup recorded {expected}."
                )
    archived = _check_archive(settings.archive, digests if digests is not None else {})
    problems += archived[1]
    problems += _check_submissions(url, settings, archived[0])
    problems += _check_message_log(url)
    return problems


def published_night(url: str) -> tuple[int | None, dict[str, int]]:
    """The last completed night of the control database at ``url`` and its table versions."""
    from warehouse.nights import last_completed_night

    database = ControlDatabase(url)
    try:
        night = last_completed_night(database)
    finally:
        database.dispose()
    if night is None:
        return None, {}
    return night.night_id, {name: int(v) for name, v in sorted(night.versions.items())}


def night_rows(
    warehouse: Path, night_id: int | None, versions: Mapping[str, int]
) -> tuple[dict[str, int], list[str]]:
    """Rows of every table of the night at its version, and the tables that cannot be read."""
    from warehouse.delta import TableMissing, read_table

    rows: dict[str, int] = {}
    problems = []
    for table, version in versions.items():
        try:
            rows[table] = read_table(warehouse, table, version).count_rows()
        except (TableMissing, OSError, ValueError) as error:
            problems.append(
                f"Table {table} of night {night_id} cannot be read at its version {version}: "
                f"{error}"
            )
    return rows, problems


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_archive(archive: Path, digests: dict[str, str]) -> tuple[set[str], list[str]]:
    """The sha256 of every well-named archive file, and the files not named by their hash."""
    present: set[str] = set()
    problems: list[str] = []
    if not archive.is_dir():
        return present, problems
    for path in sorted(p for p in archive.rglob("*") if p.is_file()):
        relative = path.relative_to(archive.parent).as_posix()
        name = path.name
        if name.startswith(".") and name.endswith(".tmp"):
            continue  # a copy into the archive cut short: never recorded
        if not _SHA256.match(name) or path.parent != archive / name[:2]:
            problems.append(
                f"The archive file {relative} is not stored as archive/<aa>/<sha256>; it does "
                "not belong in the archive."
            )
            continue
        digest = digests.get(relative) or sha256_file(path)
        digests[relative] = digest
        if digest != name:
            problems.append(
                f"The archive file {relative} does not hold the bytes its name says (its "
                f"sha256 is {digest[:12]}…): the original was changed or damaged."
            )
            continue
        present.add(name)
    return present, problems


def _check_submissions(url: str, settings: HomePlaces, archived: set[str]) -> list[str]:
    import pyarrow.parquet as pq

    from warehouse.submissions import ACTIVE_STATES

    database = ControlDatabase(url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    Submission.submission_id,
                    Submission.school_code,
                    Submission.file_name,
                    Submission.sha256,
                    Submission.state,
                    Submission.dataset,
                    Submission.rows_accepted,
                ).order_by(Submission.submission_id)
            ).all()
    finally:
        database.dispose()
    problems = []
    expected: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for sid, school, file_name, sha, state, dataset, accepted in rows:
        if sha not in archived:
            problems.append(
                f"Submission {sid} (school {school}, file {file_name}) has no original in the "
                f"archive (archive/{sha[:2]}/{sha})."
            )
        if state in ACTIVE_STATES and accepted:
            expected[(school, dataset)][sid] = accepted
    for (school, dataset), wanted in sorted(expected.items()):
        found: dict[int, int] = {}
        for path in sorted((settings.staging / school / dataset).glob("*.parquet")):
            try:
                ids = pq.read_table(path, columns=["submission_id"]).column(0).to_pylist()
            except (OSError, ValueError, KeyError) as error:
                problems.append(
                    f"The staged file staging/{school}/{dataset}/{path.name} cannot be read "
                    f"({type(error).__name__})."
                )
                continue
            for sid in ids:
                if sid in wanted:
                    found[sid] = found.get(sid, 0) + 1
        short = sorted(sid for sid, n in wanted.items() if found.get(sid, 0) != n)
        if short:
            problems.append(
                f"The staging of school {school} lacks accepted {dataset} rows of submissions "
                f"{', '.join(map(str, short))}; the next night could not consolidate that school."
            )
    return problems


def _check_message_log(url: str) -> list[str]:
    try:
        from warehouse.message_log_evidence import verify_message_log
    except ImportError:
        return []
    database = ControlDatabase(url)
    try:
        return list(verify_message_log(database).problems)
    finally:
        database.dispose()
