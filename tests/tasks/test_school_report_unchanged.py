"""A school's reports are not rewritten when nothing they are made of changed (issue 17, item
2): the same submissions, findings and coverage leave both files as they are, whatever the
hour; a new finding, or a lost file, makes both again."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from tasks.feedback import ReportFinding, ReportSubmission, write_school_report

SCHOOL = "33494V"
NOW = datetime(2024, 6, 24, 16, 12)
SUBMISSIONS = [
    ReportSubmission(1, "ListEleve_20231007.xls", "students", "accepted", 30, 30, 0),
    ReportSubmission(
        2, "export_notesCC_1APIC-1_0030.xlsx", "marks", "partially_accepted", 30, 29, 1
    ),
]
FINDING = ReportFinding(
    2,
    SUBMISSIONS[1].file_name,
    "NotesCC",
    21,
    "الفرض الأول",
    "21",
    "R002",
    "error",
    "النقطة خارج السلم",
    "Note hors barème",
)


def _stamps(paths):
    return [path.stat().st_mtime_ns for path in paths]


def test_the_same_inputs_leave_both_reports_untouched(tmp_path):
    paths = write_school_report(tmp_path, SCHOOL, NOW, SUBMISSIONS, [FINDING])
    for path in paths:  # an old date: a rewrite would show
        os.utime(path, ns=(10**18, 10**18))

    again = write_school_report(tmp_path, SCHOOL, NOW + timedelta(days=1), SUBMISSIONS, [FINDING])

    assert again == paths
    assert _stamps(paths) == [10**18, 10**18]
    assert "2024-06-24 16:12" in paths[1].read_text(encoding="utf-8")  # the date it was made


def test_a_new_finding_or_a_lost_file_makes_both_again(tmp_path):
    paths = write_school_report(tmp_path, SCHOOL, NOW, SUBMISSIONS, [])
    for path in paths:
        os.utime(path, ns=(10**18, 10**18))

    write_school_report(tmp_path, SCHOOL, NOW, SUBMISSIONS, [FINDING])

    assert all(stamp != 10**18 for stamp in _stamps(paths))
    assert "R002" in paths[1].read_text(encoding="utf-8")
    paths[0].unlink()  # an officer deleted the workbook
    write_school_report(tmp_path, SCHOOL, NOW, SUBMISSIONS, [FINDING])
    assert paths[0].is_file()


def test_every_field_of_a_file_or_a_finding_is_in_the_fingerprint():
    """A report is made again when anything it shows changes: each field of a submission or a
    finding, changed alone, changes the fingerprint."""
    from dataclasses import fields, replace

    from tasks.feedback import _report_fingerprint

    def changed(value):
        return (not value) if isinstance(value, bool) else f"{value}+" if value else 7

    first = _report_fingerprint(SCHOOL, SUBMISSIONS, [FINDING], None)
    assert _report_fingerprint(SCHOOL, SUBMISSIONS, [FINDING], None) == first
    for item, index in ((SUBMISSIONS[1], None), (FINDING, 0)):
        for field in fields(item):
            other = replace(item, **{field.name: changed(getattr(item, field.name))})
            submissions, findings = list(SUBMISSIONS), [FINDING]
            if index is None:
                submissions[1] = other
            else:
                findings[index] = other
            assert _report_fingerprint(SCHOOL, submissions, findings, None) != first, field.name
