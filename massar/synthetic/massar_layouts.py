"""Massar's own Excel layouts, cell for cell as genuine exports (DOMAIN.md §2).

The reference is the replicas of genuine exports in ``shared/samples/massar/`` (copied to
``tests/fixtures/massar_samples/``); tests/synthetic/test_genuine_layout_cells.py compares every
label, token, merge, hidden row/column, RTL flag and the protection with them.

- ListEleve (``ListEleve_YYYYMMDD.xls``, BIFF via xlwt; or ``.xlsx`` via xlsxwriter with the
  same cells): one sheet per class (``Sheet1``, ``Sheet2`` ...), *not* flagged right-to-left but
  laid out mirrored: a value stands at a lower column index than its label, the level's value
  one row above its label. No merges, default cell format, real date cells.
- NotesCC: rendered from XML templates straight into a zip (inline strings, the sheet deflated
  at level 1, the constant parts stored): about 1 ms a file. Sheet ``NotesCC`` right-to-left and
  protected, hidden technical rows 1, 2, 5, 8, 15 and columns B, H, J, L, N, P, the slot tokens
  of row 15 NOT aligned with the labels of row 16; sheet ``Data`` feeds the absence drop-down.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import xlsxwriter
import xlwt

FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_CREATED = datetime(2024, 1, 1)
JUSTIFIED = "مبرر"


def col_letter(index: int) -> str:
    """0-based column index to Excel letters."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def col_index(letters: str) -> int:
    """Excel letters to a 0-based column index."""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


_REF_RE = re.compile(r"^([A-Z]+)(\d+)$")


def cell_index(ref: str) -> tuple[int, int]:
    """``"AA15"`` → (14, 26): 0-based (row, column)."""
    m = _REF_RE.match(ref)
    if m is None:
        raise ValueError(f"not a cell reference: {ref!r}")
    return int(m.group(2)) - 1, col_index(m.group(1))


# --------------------------------------------------------------------------- ListEleve

LIST_TITLE_CELL = ("K3", "لائحة التلاميذ ")  # trailing space as in the genuine export
# metadata name -> (label cell, label text, value cell); the level's value is one row up.
LIST_META_CELLS: dict[str, tuple[str, str, str]] = {
    "school_year": ("E6", "السنة الدراسية", "C6"),
    "commune": ("O6", "الجماعة", "H6"),
    "academy": ("Z6", "الأكاديمية", "T6"),
    "school_name": ("O8", "المؤسسة", "H8"),
    "directorate": ("Z8", "المديرية الإقليمية", "U8"),
    "class_code": ("P11", "القسم", "I11"),
    "level_label": ("Z11", "المستوى", "T10"),
}
LIST_HEADER_ROW = 15  # 1-based Excel row
LIST_FIRST_ROW = 16
# The pupil columns in logical order (ListSheet.headers and rows follow it): (letter, label).
LIST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AA", "ر.ت"),
    ("X", "الرمز"),
    ("Q", "النسب "),  # trailing space as in the genuine export
    ("M", "الإسم"),
    ("L", "النوع"),
    ("F", "تاريخ الإزدياد"),
    ("C", "مكان الازدياد"),
)
LIST_HEADERS = tuple(label for _, label in LIST_COLUMNS)
_LIST_COLS = tuple(col_index(letter) for letter, _ in LIST_COLUMNS)


@dataclass
class ListSheet:
    meta: dict[str, str]  # by LIST_META_CELLS name
    headers: list[str]  # the LIST_COLUMNS labels (defects may add spaces)
    rows: list[list]  # [row number, code, family, first, sex, birth (date or text), birthplace]


@dataclass
class ListWorkbook:
    rel_path: str
    fmt: str  # xlsx | xls
    sheets: list[ListSheet] = field(default_factory=list)


def list_sheet_cells(sheet: ListSheet) -> list[tuple[int, int, object]]:
    """Every non-empty cell of one class sheet: (0-based row, 0-based column, value)."""
    cells: list[tuple[int, int, object]] = []
    r, c = cell_index(LIST_TITLE_CELL[0])
    cells.append((r, c, LIST_TITLE_CELL[1]))
    for name, (label_ref, label, value_ref) in LIST_META_CELLS.items():
        cells.append((*cell_index(label_ref), label))
        value = sheet.meta.get(name)
        if value:
            cells.append((*cell_index(value_ref), value))
    for c, text in zip(_LIST_COLS, sheet.headers, strict=True):
        cells.append((LIST_HEADER_ROW - 1, c, text))
    for k, values in enumerate(sheet.rows):
        r = LIST_FIRST_ROW - 1 + k
        for c, v in zip(_LIST_COLS, values, strict=True):
            if v is not None and v != "":
                cells.append((r, c, v))
    return cells


def write_list_xls(book: ListWorkbook, path: Path) -> None:
    wb = xlwt.Workbook(encoding="utf-8")
    dfmt = xlwt.easyxf(num_format_str="dd/mm/yyyy")
    for i, sheet in enumerate(book.sheets, start=1):
        ws = wb.add_sheet(f"Sheet{i}")
        for r, c, v in list_sheet_cells(sheet):
            if isinstance(v, date):
                ws.write(r, c, v, dfmt)
            else:
                ws.write(r, c, v)
    wb.save(str(path))


def write_list(book: ListWorkbook, path: Path) -> None:
    """Write a ListEleve workbook as .xls (BIFF) or .xlsx, the same cells in both."""
    if book.fmt == "xls":
        write_list_xls(book, path)
        return
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties({"created": FIXED_CREATED, "author": "Massar"})
    dfmt = wb.add_format({"num_format": "dd/mm/yyyy"})
    for i, sheet in enumerate(book.sheets, start=1):
        ws = wb.add_worksheet(f"Sheet{i}")
        for r, c, v in list_sheet_cells(sheet):
            if isinstance(v, date):
                ws.write_datetime(r, c, datetime(v.year, v.month, v.day), dfmt)
            elif isinstance(v, int | float):
                ws.write_number(r, c, v)
            else:
                ws.write_string(r, c, v)
    wb.close()


# --------------------------------------------------------------------------- NotesCC

NOTES_TITLE_CELL = ("F4", "نقط المراقبة المستمرة")
NOTES_HIDDEN_ROWS = (1, 2, 5, 8, 15)
NOTES_HIDDEN_COLS = ("B", "H", "J", "L", "N", "P")
NOTES_HEADER_ROWS = (16, 17)
NOTES_FIRST_ROW = 18
NOTES_LAST_COL = "Z"  # rows 1-2 run to Z, the sheet's dimension too
# metadata name -> (label cell, label text, value cell); spellings as in the genuine export.
NOTES_META_CELLS: dict[str, tuple[str, str, str]] = {
    "academy": ("C7", "أكاديمية :", "D7"),
    "directorate": ("G7", "م.الإقليمية : ", "I7"),
    "school_name": ("L7", "مؤسسة", "O7"),
    "level_label": ("C9", "المستوى  :  ", "D9"),
    "class_code": ("G9", "القسم  :", "I9"),
    "teacher": ("L9", "الاستاذ", "O9"),
    "session_label": ("C11", "الدورة  :", "D11"),
    "subject_name": ("L11", "المادة", "O11"),
    "school_year": ("C13", "السنة الدراسية :", "D13"),
}
NOTES_LONE_LABELS = (("G11", "نقط :"),)  # a label without a value
# Hidden row 15: the tokens stand one pair to the left of the labels they seem to name.
NOTES_TOKENS = (("G15", "#1#"), ("I15", "#2#"), ("K15", "#3#"), ("M15", "#4#"), ("O15", "#100#"))
# Row 16 fixed headers (each merged or not exactly as in the genuine export).
NOTES_FIXED_HEADERS = (
    ("B16", "ID"),
    ("C16", "رقم  التلميذ  "),
    ("D16", "إسم التلميذ  "),
    ("F16", " تاريخ الإزدياد"),
)
MARK_LABEL = "النقطة"
ABSENCE_LABEL = "التغيب"
REMARK_LABEL = "ملاحظات الأستاذ"
# Slot -> (label over its pair, column of the mark; the absence is the next column).
SLOT_COLUMNS: dict[str, tuple[str, str]] = {
    "test1": ("الفرض الأول", "G"),
    "test2": ("الفرض الثاني", "I"),
    "test3": ("الفرض الثالث", "K"),
    "activities": ("الأنشطة المندمجة", "M"),
}
SLOT_LABEL = {slot: label for slot, (label, _) in SLOT_COLUMNS.items()}
TEST_SLOTS = ("test1", "test2", "test3")  # three test pairs, even when fewer are used
REMARK_COL = "O"  # under ملاحظات الأستاذ (O:P), row 17 says "-" / التغيب
NOTES_HEAD_MERGES = (
    "D9:F9",
    "L9:N9",
    "D11:F11",
    "L11:N11",
    "I15:J15",
    "K15:L15",
    "O15:P15",
    "C16:C17",
    "F16:F17",
)
_PROTECTION = (
    '<sheetProtection selectLockedCells="0" selectUnlockedCells="0" sheet="1" objects="0" '
    'insertRows="1" insertHyperlinks="1" autoFilter="1" scenarios="0" formatColumns="1" '
    'deleteColumns="1" insertColumns="1" pivotTables="1" deleteRows="1" formatCells="1" '
    'formatRows="1" sort="1"/>'
)


def notes_column_name(slot_key: str, part: str) -> str:
    """Ground-truth column name of a NotesCC mark/absence cell: '<slot label> - النقطة'."""
    return f"{SLOT_LABEL[slot_key]} - {MARK_LABEL if part == 'mark' else ABSENCE_LABEL}"


def _next_col(letter: str) -> str:
    return col_letter(col_index(letter) + 1)


@dataclass
class NotesFile:
    rel_path: str
    school_code: str  # hidden C5
    guid: str  # E5
    session: int  # G5 (1 or 2)
    subject_code: str  # K5 as #code#
    level_internal: str  # O5
    meta: dict[str, str]  # by NOTES_META_CELLS name
    slots: list[str]  # slots the subject uses, in order (test1.., activities)
    # one row per pupil: [id, code, full name, birth text, m1, a1, m2, a2, ..., remark]
    rows: list[list] = field(default_factory=list)
    mark_scale: int = 20  # upper bound of the marks' data validation
    truncate: bool = False


_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def _s(ref: str, text: str) -> str:
    text = text.translate(_ESC)
    space = ' xml:space="preserve"' if text[:1] == " " or text[-1:] == " " else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _n(ref: str, number: float | int) -> str:
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return f'<c r="{ref}" t="n"><v>{number!r}</v></c>'


def _row(r: int, cells: list[str] | str) -> str:
    hidden = ' hidden="1"' if r in NOTES_HIDDEN_ROWS else ""
    return f'<row r="{r}"{hidden}>' + "".join(cells) + "</row>"


_LAST = col_index(NOTES_LAST_COL)
# Row 1: column letters A..O, then "O" repeated to Z; row 2: "sgs" everywhere but 10 in G2.
_ROW1 = _row(1, [_s(f"{col_letter(c)}1", col_letter(min(c, 14))) for c in range(_LAST + 1)])
_ROW2 = _row(
    2,
    [_n("G2", 10) if c == 6 else _s(f"{col_letter(c)}2", "sgs") for c in range(_LAST + 1)],
)
_ROW4 = _row(4, [_s(*NOTES_TITLE_CELL)])
_ROW8 = _row(8, [])
_ROW15 = _row(15, [_s(ref, token) for ref, token in NOTES_TOKENS])
_ROW16 = _row(
    16,
    [_s(ref, text) for ref, text in NOTES_FIXED_HEADERS]
    + [
        _s(f"{col}16", label)
        for label, mark in [*SLOT_COLUMNS.values(), (REMARK_LABEL, REMARK_COL)]
        for col in (mark, _next_col(mark))
    ],
)
_ROW17 = _row(
    17,
    [
        cell
        for mark in [m for _, m in SLOT_COLUMNS.values()]
        for cell in (_s(f"{mark}17", MARK_LABEL), _s(f"{_next_col(mark)}17", ABSENCE_LABEL))
    ]
    + [_s(f"{REMARK_COL}17", "-"), _s(f"{_next_col(REMARK_COL)}17", ABSENCE_LABEL)],
)
_META_ROWS = sorted({cell_index(label)[0] + 1 for label, _, _ in NOTES_META_CELLS.values()})
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr/></sheetPr>'
)
_SHEET_VIEW = (
    '<sheetViews><sheetView rightToLeft="1" workbookViewId="0">'
    '<selection activeCell="A1" sqref="A1"/></sheetView></sheetViews>'
    '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/>'
    "<cols>"
    + "".join(
        f'<col hidden="1" width="13" customWidth="1" min="{col_index(c) + 1}" '
        f'max="{col_index(c) + 1}"/>'
        for c in NOTES_HIDDEN_COLS
    )
    + "</cols>"
)
_PAGE = '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'


def _notes_head(nf: NotesFile) -> list[str]:
    """Rows 1 to 17: technical rows, metadata, tokens and the two header rows."""
    tech = [
        _s("C5", nf.school_code),
        _s("E5", nf.guid),
        _n("G5", nf.session),
        _n("I5", 0),
        _s("K5", f"#{nf.subject_code}#"),
        _n("M5", 16),
        _s("O5", nf.level_internal),
    ]
    by_row: dict[int, list[tuple[int, str]]] = {r: [] for r in _META_ROWS}
    for name, (label_ref, label, value_ref) in NOTES_META_CELLS.items():
        r, c = cell_index(label_ref)
        by_row[r + 1].append((c, _s(label_ref, label)))
        value = nf.meta.get(name)
        if value:
            r, c = cell_index(value_ref)
            by_row[r + 1].append((c, _s(value_ref, value)))
    for ref, label in NOTES_LONE_LABELS:
        r, c = cell_index(ref)
        by_row[r + 1].append((c, _s(ref, label)))
    meta_rows = [_row(r, [x for _, x in sorted(by_row[r])]) for r in _META_ROWS]
    head = [_ROW1, _ROW2, _ROW4, _row(5, tech), meta_rows[0], _ROW8, *meta_rows[1:]]
    return [*head, _ROW15, _ROW16, _ROW17]


def render_notes_sheet(nf: NotesFile) -> str:
    columns = []
    for slot in nf.slots:
        if slot not in SLOT_COLUMNS:
            raise ValueError(f"the genuine NotesCC layout has no column for the slot {slot!r}")
        mark = SLOT_COLUMNS[slot][1]
        columns.append((mark, _next_col(mark)))
    if columns != sorted(columns, key=lambda pair: col_index(pair[0])):
        raise ValueError(f"NotesCC slots must come in column order, got {nf.slots}")
    last_row = NOTES_FIRST_ROW + len(nf.rows) - 1 if nf.rows else NOTES_HEADER_ROWS[1]
    parts = [_SHEET_HEAD, f'<dimension ref="A1:{NOTES_LAST_COL}{last_row}"/>', _SHEET_VIEW]
    parts.append("<sheetData>")
    parts += _notes_head(nf)
    merges = list(NOTES_HEAD_MERGES)
    n_slots = len(nf.slots)
    for k, values in enumerate(nf.rows):
        r = NOTES_FIRST_ROW + k
        internal_id = values[0]
        cells = [
            _n(f"B{r}", internal_id)
            if isinstance(internal_id, int)
            else _s(f"B{r}", str(internal_id)),
            _s(f"C{r}", values[1]),
            _s(f"D{r}", values[2]),
            _s(f"F{r}", values[3]),
        ]
        merges.append(f"D{r}:E{r}")
        for i, (mark_col, absence_col) in enumerate(columns):
            mark, absence = values[4 + 2 * i], values[5 + 2 * i]
            if isinstance(mark, str):
                cells.append(_s(f"{mark_col}{r}", mark))
            elif mark is not None:
                cells.append(_n(f"{mark_col}{r}", mark))
            if absence:
                cells.append(_s(f"{absence_col}{r}", absence))
        remark = values[4 + 2 * n_slots]
        if remark:
            cells.append(_s(f"{REMARK_COL}{r}", remark))
        parts.append(f'<row r="{r}">' + "".join(cells) + "</row>")
    parts.append("</sheetData>")
    parts.append(_PROTECTION)
    parts.append(
        f'<mergeCells count="{len(merges)}">'
        + "".join(f'<mergeCell ref="{m}"/>' for m in merges)
        + "</mergeCells>"
    )
    if nf.rows:
        pairs = [SLOT_COLUMNS[s][1] for s in (*TEST_SLOTS, "activities")]
        first = NOTES_FIRST_ROW
        marks = " ".join(f"{c}{first}:{c}{last_row}" for c in pairs)
        absences = " ".join(f"{_next_col(c)}{first}:{_next_col(c)}{last_row}" for c in pairs)
        parts.append(
            '<dataValidations count="2">'
            f'<dataValidation sqref="{marks}" showDropDown="0" showInputMessage="0" '
            'showErrorMessage="0" allowBlank="0" type="decimal" operator="between">'
            f"<formula1>0</formula1><formula2>{nf.mark_scale}</formula2></dataValidation>"
            f'<dataValidation sqref="{absences}" showDropDown="0" showInputMessage="0" '
            'showErrorMessage="0" allowBlank="0" type="list">'
            "<formula1>Data!$A$1:$A$2</formula1></dataValidation></dataValidations>"
        )
    parts.append(_PAGE + "</worksheet>")
    return "".join(parts)


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_CONTENT_TYPES = (
    _XML + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/worksheets/sheet2.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '<Override PartName="/docProps/core.xml" '
    'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    '<Override PartName="/docProps/app.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _XML + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
    'metadata/core-properties" Target="docProps/core.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/extended-properties" Target="docProps/app.xml"/>'
    "</Relationships>"
)
_APP = (
    _XML
    + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>Microsoft Excel</Application></Properties>"
)
_CORE = (
    _XML + '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<dc:creator>Massar</dc:creator>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2024-01-01T00:00:00Z</dcterms:created>'
    "</cp:coreProperties>"
)
_WORKBOOK = (
    _XML + '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    "<workbookPr/><workbookProtection/>"
    '<bookViews><workbookView activeTab="0"/></bookViews><sheets>'
    '<sheet name="NotesCC" sheetId="1" state="visible" r:id="rId1"/>'
    '<sheet name="Data" sheetId="2" state="visible" r:id="rId2"/>'
    '</sheets><calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>'
)
_WORKBOOK_RELS = (
    _XML + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet2.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# One cell format, as in the genuine export: every cell locked under the sheet's protection.
_STYLES = (
    _XML + '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill/></fill><fill><patternFill patternType="gray125"/>'
    "</fill></fills>"
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
# A1 is an inline string with no text (read as ""), A2 the justified-absence label.
_DATA_SHEET = (
    _XML + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<sheetPr><outlinePr summaryBelow="1" summaryRight="1"/><pageSetUpPr/></sheetPr>'
    '<dimension ref="A1:A2"/><sheetViews><sheetView workbookViewId="0">'
    '<selection activeCell="A1" sqref="A1"/></sheetView></sheetViews>'
    '<sheetFormatPr baseColWidth="8" defaultRowHeight="15"/><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"></c></row>'
    f'<row r="2"><c r="A2" t="inlineStr"><is><t>{JUSTIFIED}</t></is></c></row>'
    f"</sheetData>{_PAGE}</worksheet>"
)
_STATIC_PARTS = (
    ("[Content_Types].xml", _CONTENT_TYPES.encode()),
    ("_rels/.rels", _ROOT_RELS.encode()),
    ("docProps/app.xml", _APP.encode()),
    ("docProps/core.xml", _CORE.encode()),
    ("xl/workbook.xml", _WORKBOOK.encode()),
    ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS.encode()),
    ("xl/styles.xml", _STYLES.encode()),
    ("xl/worksheets/sheet2.xml", _DATA_SHEET.encode()),
)


def notes_bytes(nf: NotesFile) -> bytes:
    """The NotesCC workbook as bytes (cut in half when ``nf.truncate``: defect F001)."""
    sheet = render_notes_sheet(nf).encode()
    parts = [*_STATIC_PARTS[:7], ("xl/worksheets/sheet1.xml", sheet), _STATIC_PARTS[7]]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in parts:
            info = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
            # the small constant parts are stored, the sheet is deflated (level 1)
            info.compress_type = zipfile.ZIP_DEFLATED if data is sheet else zipfile.ZIP_STORED
            zf.writestr(info, data, compresslevel=1)
    data = buf.getvalue()
    return data[: len(data) // 2] if nf.truncate else data


def write_notes(nf: NotesFile, path: Path) -> int:
    """Write one NotesCC workbook; returns its size in bytes."""
    data = notes_bytes(nf)
    path.write_bytes(data)
    return len(data)
