"""Feedback a school can act on: an XLSX workbook (right-to-left) and a static HTML page.

The report names pupils' codes and values, so it is written only under ``reports/<school>/``
for the school concerned, never into logs or Prefect artifacts. Files with errors come first,
then files with queries only, then clean files. In the HTML page every file name, code, number
and cell value is isolated (``<bdi>``) from the Arabic text around it, so that it shows as
written.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from functools import cache
from itertools import count, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

from schemas.datasets import DATASETS
from tasks.bidi import isolated, isolated_message

STATE_LABELS = {
    "accepted": ("مقبول", "accepté"),
    "partially_accepted": ("مقبول جزئيا", "accepté en partie"),
    "rejected": ("مرفوض", "rejeté"),
    "received": ("توصل به", "reçu"),
    "superseded": ("معوض بنسخة أحدث", "remplacé"),
}
# A resend held until the directorate confirms it (tasks/resends.py): its rows are not applied.
HELD_LABEL = ("معلق في انتظار تأكيد المديرية", "en attente de confirmation de la direction")
SEVERITY_LABELS = {"error": ("خطأ", "erreur"), "query": ("استفسار", "question")}

SUMMARY_HEADERS = (
    ("الملف", "Fichier"),
    ("نوع المعطيات", "Données"),
    ("الحالة", "État"),
    ("الأسطر المقروءة", "Lignes lues"),
    ("الأسطر المقبولة", "Lignes acceptées"),
    ("الأسطر الموقوفة", "Lignes en quarantaine"),
    ("الأخطاء", "Erreurs"),
    ("الاستفسارات", "Questions"),
)
FINDING_HEADERS = (
    ("القاعدة", "Règle"),
    ("الخطورة", "Gravité"),
    ("الملف", "Fichier"),
    ("الورقة", "Feuille"),
    ("السطر", "Ligne"),
    ("العمود", "Colonne"),
    ("القيمة", "Valeur"),
    ("الرسالة", "Message (ar)"),
    ("Message", "Message (fr)"),
)


@dataclass(frozen=True)
class ReportSubmission:
    submission_id: int
    file_name: str
    dataset: str
    state: str
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    held: bool = False


@dataclass(frozen=True)
class ReportFinding:
    submission_id: int
    file_name: str
    sheet: str | None
    sheet_row: int | None
    column_name: str | None
    value: str | None
    rule_id: str
    severity: str
    message_ar: str
    message_fr: str


@dataclass(frozen=True)
class OwedLine:
    """One file (or class of the student list) the school still owes for a campaign."""

    dataset: str
    class_code: str
    subject_code: str
    subject_ar: str
    subject_fr: str
    semester: str
    state: str  # missing | rejected | received


@dataclass(frozen=True)
class OwedSection:
    """A campaign's ``coverage`` section of the report (tasks/coverage.py builds it)."""

    campaign_id: str
    title: str
    deadline: str  # YYYY-MM-DD, Africa/Casablanca
    days_left: int
    classes_known: bool
    lines: tuple[OwedLine, ...]


OWED_STATES = {
    "missing": ("لم يتوصل به", "non reçu"),
    "rejected": ("مرفوض، يجب إعادة إرساله", "rejeté, à renvoyer"),
    "received": ("توصل به، في انتظار المعالجة", "reçu, en cours de traitement"),
}
OWED_HEADERS = (
    ("الحملة", "Campagne"),
    ("الأجل", "Échéance"),
    ("نوع المعطيات", "Données"),
    ("القسم", "Classe"),
    ("المادة", "Matière"),
    ("الدورة", "Semestre"),
    ("الحالة", "État"),
)
NO_CLASSES = (
    "لم تتوصل المديرية بعد بلائحة الأقسام ولا بلائحة التلاميذ: لا يمكن تحديد ما يجب إرساله "
    "لكل قسم قبل التوصل بإحداهما.",
    "La direction n'a encore ni la liste des classes ni la liste des élèves : ce qui est dû "
    "par classe ne peut être établi avant d'en recevoir une.",
)


def _owed_rows(sections: list[OwedSection]) -> list[list[str]]:
    rows = []
    for section in sections:
        for line in section.lines:
            state_ar, state_fr = OWED_STATES.get(line.state, (line.state, line.state))
            subject = (
                f"{line.subject_code} {line.subject_ar} / {line.subject_fr}"
                if line.subject_code
                else ""
            )
            rows.append(
                [
                    section.campaign_id,
                    section.deadline,
                    _dataset_title(line.dataset),
                    line.class_code,
                    subject,
                    line.semester,
                    f"{state_ar} / {state_fr}",
                ]
            )
    return rows


# A file's place in the report: files with errors, then with queries only, then clean files.
_FILE_RANK = {"error": 0, "query": 1}
_CLEAN = 2


def report_order(
    submissions: list[ReportSubmission], findings: list[ReportFinding]
) -> tuple[list[ReportSubmission], list[ReportFinding]]:
    """The submissions and findings in report order: files with errors (a rejected file counts
    as one) first, then files with queries only, then clean files, each group in the order
    given; findings follow their file's place and keep their order within it."""
    rank: dict[int, int] = {}
    for finding in findings:
        here = _FILE_RANK.get(finding.severity, _FILE_RANK["query"])
        rank[finding.submission_id] = min(rank.get(finding.submission_id, _CLEAN), here)
    for submission in submissions:
        if submission.state == "rejected":
            rank[submission.submission_id] = _FILE_RANK["error"]
    ordered = sorted(submissions, key=lambda s: rank.get(s.submission_id, _CLEAN))
    place = {s.submission_id: index for index, s in enumerate(ordered)}
    return ordered, sorted(findings, key=lambda f: place.get(f.submission_id, len(place)))


@cache  # a handful of datasets, looked up for every file of every report
def _dataset_title(name: str) -> str:
    dataset = DATASETS.get(name)
    return f"{dataset.title_ar} / {dataset.title_fr}" if dataset else (name or "—")


@cache  # a handful of states, for every file of every report
def _state_label(state: str, held: bool) -> str:
    """A file's state in Arabic and French; a held resend says it is held."""
    state_ar, state_fr = STATE_LABELS.get(state, (state, state))
    if held:
        state_ar, state_fr = f"{state_ar} — {HELD_LABEL[0]}", f"{state_fr} — {HELD_LABEL[1]}"
    return f"{state_ar} / {state_fr}"


def _summary_rows(
    submissions: list[ReportSubmission], findings: list[ReportFinding]
) -> list[list[object]]:
    counts = Counter((f.submission_id, f.severity) for f in findings)
    return [
        [
            s.file_name,
            _dataset_title(s.dataset),
            _state_label(s.state, s.held),
            s.rows_read,
            s.rows_accepted,
            s.rows_quarantined,
            counts.get((s.submission_id, "error"), 0),
            counts.get((s.submission_id, "query"), 0),
        ]
        for s in submissions
    ]


def _finding_rows(findings: list[ReportFinding]) -> list[list[object]]:
    rows: list[list[object]] = []
    for f in findings:
        severity_ar, severity_fr = SEVERITY_LABELS.get(f.severity, (f.severity, f.severity))
        rows.append(
            [
                f.rule_id,
                f"{severity_ar} / {severity_fr}",
                f.file_name,
                f.sheet or "",
                "" if f.sheet_row is None else f.sheet_row,
                f.column_name or "",
                f.value or "",
                f.message_ar,
                f.message_fr,
            ]
        )
    return rows


class ReportSheet(Worksheet):
    """An xlsxwriter worksheet that takes a report's rows in one call and writes them out as
    the same XML, cells and shared strings as ``write`` and xlsxwriter's own sheet writer would,
    at a fraction of their CPU: xlsxwriter spends ~5 us a cell in its generic paths (argument
    conversion, type dispatch, dimension checks, a tuple per cell, attribute escaping), three
    quarters of a report's workbook for a school of ~230 files. Here a row of texts, whole
    numbers and empty cells is kept as its values, and written at the end through one template
    per pattern of cell kinds and formats (a report has a handful): one ``str.format`` a row."""

    def __init__(self) -> None:
        super().__init__()
        # row -> (kinds: "s" text, "n" number, "b" empty cell; formats; the texts' shared
        # string indices and the numbers, in column order)
        self.report_rows: dict[int, tuple[str, tuple[Format, ...], list[object]]] = {}

    def write_report_rows(
        self,
        first_row: int,
        rows: Iterable[Sequence[object]],
        formats: Iterable[tuple[Format, ...]],
    ) -> None:
        """Each row's values from column 0 on, with their formats (a tuple a row, one format a
        value), on rows nothing else is written to. A text or an ``int`` is kept as ``write``
        would store it (a text as its index in the shared strings, taken now so that they keep
        their order), an empty text as an empty cell with its format; a row holding anything
        else (a text too long for a cell, another type) is written by ``write``, cell by
        cell."""
        shared = self.str_table._get_shared_string_index
        short = self.xls_strmax // 2  # longer texts may need truncating: xlsxwriter's way
        last_row = first_row - 1
        width = 0
        for row, values, row_formats in zip(count(first_row), rows, formats):
            kinds = "".join(
                [
                    (("s" if len(value) <= short else "x") if value else "b")
                    if isinstance(value, str)
                    else ("n" if type(value) is int else "x")  # a bool too is an int
                    for value in values
                ]
            )
            if "x" in kinds:
                for column, (value, cell_format) in enumerate(
                    zip(values, row_formats, strict=True)
                ):
                    self._write(row, column, value, cell_format)
            else:
                cells = [
                    shared(value) if kind == "s" else value
                    for kind, value in zip(kinds, values, strict=True)
                    if kind != "b"
                ]
                self.report_rows[row] = (kinds, row_formats, cells)
            last_row, width = row, max(width, len(values))
        if width:
            self._check_dimensions(first_row, 0)
            self._check_dimensions(last_row, width - 1)

    def _write_rows(self) -> None:
        """The ``<row>`` and ``<c>`` elements, as xlsxwriter writes them: rows in order, the
        first and last columns used in each block of 16 rows as the rows' spans, the formats'
        style indices given in the order of their first cells."""
        if self.row_info or self.comments:
            raise NotImplementedError("a report's sheet has no row settings nor comments")
        table = {row: cells for row, cells in self.table.items() if cells}
        used: dict[int, tuple[int, int]] = {row: (min(c), max(c)) for row, c in table.items()}
        used.update((row, (0, len(kinds) - 1)) for row, (kinds, _, _) in self.report_rows.items())
        spans: dict[int, tuple[int, int]] = {}
        for row, (low, high) in used.items():
            first, last = spans.get(row // 16, (low, high))
            spans[row // 16] = (min(first, low), max(last, high))
        templates: dict[tuple[str, tuple[Format, ...]], str] = {}
        xml: list[str] = []
        for row in sorted(used):
            low, high = spans[row // 16]
            if row in table:
                xml.append(f'<row r="{row + 1}" spans="{low + 1}:{high + 1}">')
                self.fh.write("".join(xml))
                xml.clear()
                for column in sorted(table[row]):
                    self._write_cell(row, column, table[row][column])
                xml.append("</row>")
                continue
            kinds, row_formats, cells = self.report_rows[row]
            key = (kinds, row_formats)
            template = templates.get(key) or templates.setdefault(key, _row_template(*key))
            xml.append(template.format(row + 1, f"{low + 1}:{high + 1}", *cells))
        self.fh.write("".join(xml))


def _row_template(kinds: str, formats: tuple[Format, ...]) -> str:
    """The XML of a row of cells of these kinds and formats, as a ``str.format`` template:
    {0} the row's number, {1} its spans, then the texts' shared string indices and the
    numbers in column order (a number as xlsxwriter writes it, ``.16G``)."""
    cells, value = [], 2
    for column, (kind, cell_format) in enumerate(zip(kinds, formats, strict=True)):
        start = f'<c r="{xl_col_to_name(column)}{{0}}" s="{cell_format._get_xf_index()}"'
        if kind == "s":
            cells.append(f'{start} t="s"><v>{{{value}}}</v></c>')
        elif kind == "n":
            cells.append(f"{start}><v>{{{value}:.16G}}</v></c>")
        else:
            cells.append(f"{start}/>")
        value += kind != "b"
    return '<row r="{0}" spans="{1}">' + "".join(cells) + "</row>"


def write_xlsx_report(
    target: Path,
    school_code: str,
    generated_at: datetime,
    submissions: list[ReportSubmission],
    findings: list[ReportFinding],
    coverage: list[OwedSection] | None = None,
) -> Path:
    """The school's workbook: a summary sheet and a findings sheet, both right-to-left, files
    in report order (:func:`report_order`)."""
    submissions, findings = report_order(submissions, findings)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    workbook = xlsxwriter.Workbook(
        str(temporary),
        {
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            # Parts assembled in memory, not as temporary files (a report is small): 21 ->
            # 13 ms of CPU a school's report of ~240 files.
            "in_memory": True,
        },
    )
    bold = workbook.add_format(
        {"bold": True, "bg_color": "#DDEBF7", "text_wrap": True, "valign": "top", "border": 1}
    )
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    error = workbook.add_format({"font_color": "#9C0006", "bg_color": "#FFC7CE", "valign": "top"})
    query = workbook.add_format({"font_color": "#9C5700", "bg_color": "#FFEB9C", "valign": "top"})

    summary = workbook.add_worksheet("ملخص - Résumé", ReportSheet)
    summary.right_to_left()
    summary.write(
        0,
        0,
        f"تقرير مراقبة المعطيات / Rapport de contrôle — {school_code} — "
        f"{generated_at:%Y-%m-%d %H:%M}",
        workbook.add_format({"bold": True}),
    )
    for column, (ar, fr) in enumerate(SUMMARY_HEADERS):
        summary.write(2, column, f"{ar}\n{fr}", bold)
    summary.write_report_rows(
        3, _summary_rows(submissions, findings), repeat((wrap,) * len(SUMMARY_HEADERS))
    )
    summary.set_column(0, 0, 45)
    summary.set_column(1, 2, 28)
    summary.set_column(3, 7, 14)
    summary.freeze_panes(3, 0)

    sheet = workbook.add_worksheet("الملاحظات - Constats", ReportSheet)
    sheet.right_to_left()
    for column, (ar, fr) in enumerate(FINDING_HEADERS):
        sheet.write(0, column, f"{ar}\n{fr}", bold)
    # the rule and the severity coloured by the severity, the rest wrapped
    severity_formats = {
        "error": (error, error, *repeat(wrap, len(FINDING_HEADERS) - 2)),
        "query": (query, query, *repeat(wrap, len(FINDING_HEADERS) - 2)),
    }
    sheet.write_report_rows(
        1,
        _finding_rows(findings),
        (severity_formats["error" if f.severity == "error" else "query"] for f in findings),
    )
    sheet.set_column(0, 1, 12)
    sheet.set_column(2, 2, 40)
    sheet.set_column(3, 6, 14)
    sheet.set_column(7, 8, 70)
    sheet.freeze_panes(1, 0)
    if findings:
        sheet.autofilter(0, 0, len(findings), len(FINDING_HEADERS) - 1)
    if coverage:  # what the school still owes, per campaign (tasks/coverage.py)
        owed = workbook.add_worksheet("المستحقات - Couverture", ReportSheet)
        owed.right_to_left()
        for column, (ar, fr) in enumerate(OWED_HEADERS):
            owed.write(0, column, f"{ar}\n{fr}", bold)
        row = 1
        for section in coverage:
            if not section.classes_known:
                owed.write(row, 0, section.campaign_id, wrap)
                owed.write(row, 2, f"{NO_CLASSES[0]}\n{NO_CLASSES[1]}", wrap)
                row += 1
        owed.write_report_rows(row, _owed_rows(coverage), repeat((wrap,) * len(OWED_HEADERS)))
        owed.set_column(0, 1, 14)
        owed.set_column(2, 2, 40)
        owed.set_column(3, 3, 12)
        owed.set_column(4, 4, 40)
        owed.set_column(5, 6, 24)
        owed.freeze_panes(1, 0)
    workbook.close()
    temporary.replace(target)
    return target


def write_html_report(
    target: Path,
    school_code: str,
    generated_at: datetime,
    submissions: list[ReportSubmission],
    findings: list[ReportFinding],
    coverage: list[OwedSection] | None = None,
) -> Path:
    """A static page (no script, no external resource) with the same content as the workbook,
    files in report order (:func:`report_order`); file names, codes, numbers and values are
    isolated from the Arabic text (:func:`isolated`)."""
    submissions, findings = report_order(submissions, findings)
    e = html.escape

    def table(
        headers: tuple[tuple[str, str], ...],
        rows: list[list[str]],
        classes: list[str] | None = None,
    ) -> str:
        head = "".join(
            f"<th>{e(ar)}<br><span lang='fr' dir='ltr'>{e(fr)}</span></th>" for ar, fr in headers
        )
        body = []
        for index, row in enumerate(rows):
            css = f" class='{e(classes[index])}'" if classes else ""
            body.append(f"<tr{css}>{''.join(row)}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    # A file's dataset, state and counts recur from row to row: each one's cell is made once.
    labels: dict[object, str] = {}
    numbers: dict[object, str] = {}
    summary_rows = []
    for values in _summary_rows(submissions, findings):
        file_name, dataset, state, *counts = values
        summary_rows.append(
            [f"<td>{isolated(file_name, 'ltr')}</td>"]
            + [
                labels.get(label) or labels.setdefault(label, f"<td>{e(str(label))}</td>")
                for label in (dataset, state)
            ]
            + [
                numbers.get(count)
                or numbers.setdefault(count, f"<td>{isolated(count, 'ltr')}</td>")
                for count in counts
            ]
        )
    finding_rows = []
    for f, values in zip(findings, _finding_rows(findings), strict=True):
        known = [(f.file_name, "ltr"), (f.value or "", None)]
        finding_rows.append(
            [
                f"<td>{isolated(f.rule_id, 'ltr')}</td>",
                f"<td>{e(str(values[1]))}</td>",
                f"<td>{isolated(f.file_name, 'ltr')}</td>",
                f"<td>{isolated(f.sheet)}</td>",
                f"<td>{isolated(f.sheet_row, 'ltr')}</td>",
                f"<td>{isolated(f.column_name)}</td>",
                f"<td>{isolated(f.value)}</td>",
                f"<td>{isolated_message(f.message_ar, known, arabic=True)}</td>",
                "<td lang='fr' dir='ltr'>"
                f"{isolated_message(f.message_fr, known, arabic=False)}</td>",
            ]
        )
    owed_html = _owed_html(coverage or [], table)
    page = f"""<!DOCTYPE html>
<html lang="ar" dir="rtl">
<head>
<meta charset="utf-8">
<title>تقرير مراقبة المعطيات — {e(school_code)}</title>
<style>
body {{ font-family: 'Noto Naskh Arabic', 'DejaVu Sans', sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 2rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #bbb; padding: 0.3rem 0.5rem; vertical-align: top; }}
th {{ background: #ddebf7; }}
tr.error td:nth-child(-n+2) {{ background: #ffc7ce; }}
tr.query td:nth-child(-n+2) {{ background: #ffeb9c; }}
td:last-child {{ text-align: left; }}
</style>
</head>
<body>
<h1>تقرير مراقبة المعطيات — <span lang="fr">Rapport de contrôle des données</span></h1>
<p>المؤسسة / Établissement : <strong>{isolated(school_code, "ltr")}</strong> —
{isolated(f"{generated_at:%Y-%m-%d %H:%M}", "ltr")}</p>
<p>«خطأ» يعني أن السطر لم يقبل ويجب تصحيحه وإعادة إرسال الملف؛ «استفسار» يعني أن السطر قبل لكن
يجب التحقق منه. / <span lang="fr">« Erreur » : la ligne n'est pas acceptée, corrigez-la et
renvoyez le fichier ; « question » : la ligne est acceptée mais doit être vérifiée.</span></p>
<p>الملفات التي بها أخطاء أولا، ثم التي بها استفسارات فقط، ثم الملفات السليمة. /
<span lang="fr">Les fichiers avec des erreurs d'abord, puis ceux avec des questions seulement,
puis les fichiers sans constat.</span></p>
<h2>ملخص / <span lang="fr">Résumé</span></h2>
{table(SUMMARY_HEADERS, summary_rows)}
<h2>الملاحظات / <span lang="fr">Constats</span> ({isolated(len(findings), "ltr")})</h2>
{table(FINDING_HEADERS, finding_rows, [f.severity for f in findings])}
{owed_html}
</body>
</html>
"""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(target)
    return target


def _owed_html(sections: list[OwedSection], table: Any) -> str:
    """The report's ``coverage`` section: per campaign, what the school still owes."""
    if not sections:
        return ""
    e = html.escape
    parts = [
        "<h2 id='coverage'>ما تبقى إرساله / <span lang='fr'>Ce qu'il reste à envoyer</span></h2>"
    ]
    for section in sections:
        left = section.days_left
        when = (
            f"بقي {left} يوم / <span lang='fr'>{left} jour(s) avant l'échéance</span>"
            if left >= 0
            else f"انتهى الأجل منذ {-left} يوم / <span lang='fr'>échéance passée de {-left} "
            "jour(s)</span>"
        )
        parts.append(
            f"<p>{isolated(section.campaign_id, 'ltr')} — {e(section.title)} — "
            f"{isolated(section.deadline, 'ltr')} — {when} — "
            f"{isolated(len(section.lines), 'ltr')}</p>"
        )
        if not section.classes_known:
            parts.append(f"<p>{e(NO_CLASSES[0])} / <span lang='fr'>{e(NO_CLASSES[1])}</span></p>")
    rows = [
        [
            f"<td>{isolated(value, 'ltr' if index in (0, 1, 3, 5) else None)}</td>"
            for index, value in enumerate(values)
        ]
        for values in _owed_rows(sections)
    ]
    if rows:
        parts.append(table(OWED_HEADERS, rows))
    else:
        parts.append("<p>لا شيء / <span lang='fr'>Rien</span></p>")
    return "\n".join(parts)


def write_school_report(
    reports: Path,
    school_code: str,
    generated_at: datetime,
    submissions: list[ReportSubmission],
    findings: list[ReportFinding],
    coverage: list[OwedSection] | None = None,
) -> tuple[Path, Path]:
    """Both reports of a school, replacing the previous ones; ``coverage``: what the school
    still owes per campaign (a section of each, when given). Reports made from the same
    submissions, findings and coverage by the same code are left as they are (the fingerprint
    of what they were made from is kept beside them, ``.rapport_<school>.inputs``), so a night
    with nothing new for the school touches neither file; they keep the date they were made."""
    folder = reports / school_code
    xlsx, page = folder / f"rapport_{school_code}.xlsx", folder / f"rapport_{school_code}.html"
    kept = folder / f".rapport_{school_code}.inputs"
    fingerprint = _report_fingerprint(school_code, submissions, findings, coverage)
    made = xlsx.is_file() and page.is_file() and kept.is_file()
    if made and kept.read_text(encoding="utf-8").strip() == fingerprint:
        return xlsx, page
    written = (
        write_xlsx_report(xlsx, school_code, generated_at, submissions, findings, coverage),
        write_html_report(page, school_code, generated_at, submissions, findings, coverage),
    )
    kept.write_text(fingerprint + "\n", encoding="utf-8")  # after both reports are in place
    return written


def _fields_of(item: ReportSubmission | ReportFinding) -> tuple[Any, ...]:
    """`astuple` of a flat dataclass (its values are no dataclasses, lists or dicts)."""
    return _FIELD_GETTERS[type(item)](item)


# Every field at once, in one C call (a getattr a field costs 3x as much, ~0.1 ms a report).
_FIELD_GETTERS = {
    kind: attrgetter(*(f.name for f in fields(kind))) for kind in (ReportSubmission, ReportFinding)
}


def _report_fingerprint(
    school_code: str,
    submissions: list[ReportSubmission],
    findings: list[ReportFinding],
    coverage: list[OwedSection] | None,
) -> str:
    """The sha256 of what a school's reports are made from, and of the code that writes them."""
    hasher = hashlib.sha256()
    for path in (Path(__file__), Path(__file__).with_name("bidi.py")):
        hasher.update(path.read_bytes())
    made_of = [
        school_code,
        [_fields_of(s) for s in submissions],  # flat: astuple's deep copies cost more than the hash
        [_fields_of(f) for f in findings],
        None if coverage is None else [astuple(c) for c in coverage],
    ]
    hasher.update(json.dumps(made_of, default=str, ensure_ascii=False).encode("utf-8"))
    return hasher.hexdigest()
