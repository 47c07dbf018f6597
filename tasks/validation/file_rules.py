"""File rules (F001-F012): a problem with a whole file. The readers raise them (connectors/,
``FileRejected`` for a file that cannot be read, ``ReadResult.findings`` for a query on a file
that is read all the same); the ingest turns them into findings (tasks/ingest.py
``_rejection``: file, school, detail, column, value). Declared here with where they are raised,
so that every rule of schemas/rules.csv has one declaration (tests/tasks/validation/).
"""

from __future__ import annotations

from tasks.validation.declared import RaisedElsewhere

READERS = "connectors/"


def _by_reader(rule_id: str, placeholders: tuple[str, ...], how: str) -> RaisedElsewhere:
    return RaisedElsewhere(rule_id=rule_id, placeholders=placeholders, where=(READERS,), how=how)


FILE_RULES: tuple[RaisedElsewhere, ...] = (
    RaisedElsewhere(
        rule_id="F001",
        placeholders=("file", "detail"),
        where=(READERS, "tasks/ingest.py"),
        how="rejected: the file cannot be read (and a reader's unexpected failure, by the ingest)",
    ),
    _by_reader("F002", ("file",), "rejected: an encrypted or password-protected workbook"),
    _by_reader("F003", ("file",), "rejected: the content matches no dataset's layout"),
    _by_reader("F004", ("file", "value", "school"), "rejected: another school's code inside"),
    _by_reader("F005", ("file",), "rejected: no bytes, no cell or no data row"),
    _by_reader("F006", ("file", "detail"), "rejected before parsing: a safety limit exceeded"),
    RaisedElsewhere(
        rule_id="F007",
        placeholders=("file",),
        where=(READERS, "tasks/ingest.py"),
        how="rejected: an unsafe name (the file's, or a folder's of the school's inbox)",
    ),
    _by_reader("F008", ("column", "file", "where"), "rejected: a required column is missing"),
    _by_reader("F009", ("file", "column", "detail"), "rejected: a Massar label not found"),
    _by_reader(
        "F010",
        ("file", "value", "cell", "name", "name_cell", "detail"),
        "a query of the NotesCC reader (ReadResult.findings): subject code and name disagree",
    ),
    _by_reader(
        "F011",
        ("file", "detail"),
        "a query of the NotesCC reader (ReadResult.findings): hidden markers and header differ",
    ),
    RaisedElsewhere(
        rule_id="F012",
        placeholders=("file", "before", "after", "removed", "share", "submission"),
        needs=("the school's applied files of the same data",),
        where=("tasks/resends.py",),
        how="a query: a resend removing much of what the school had is held",
    ),
)
