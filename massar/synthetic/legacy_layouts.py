"""The platform's former Excel layouts of ListEleve and NotesCC, kept behind the generator's
``massar_layout="legacy"`` switch until every reader follows the genuine layouts.

These are NOT what Massar writes (see massar_layouts.py for that): ListEleve right-to-left with
labels in A/E and values to their right, NotesCC with slot pairs side by side from G, tokens
aligned with the labels and the remark after the last pair.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime
from pathlib import Path

import xlsxwriter
import xlwt

from massar.synthetic.massar_layouts import ListWorkbook, NotesFile, col_letter
from schemas.datasets import (
    ABSENCE_LABEL,
    JUSTIFIED_LABEL,
    LIST_ELEVES_METADATA,
    MARK_LABEL,
    MARK_SLOTS,
    MARKS,
    NOTES_CC_METADATA,
    STUDENTS,
)

LIST_TITLE = STUDENTS.title_ar  # لائحة التلاميذ
NOTES_TITLE = MARKS.title_ar  # نقط المراقبة المستمرة
LIST_HEADER_ROW = 15  # 1-based Excel row
LIST_FIRST_ROW = 16
NOTES_HEADER_ROWS = (16, 17)
NOTES_FIRST_ROW = 18
NOTES_HIDDEN_ROWS = (1, 2, 5, 15)
NOTES_HIDDEN_COLS = ("B", "H", "J", "L", "N", "P")
SLOT_LABEL = {key: label for key, label, _ in MARK_SLOTS}
SLOT_TOKEN = {key: token for key, _, token in MARK_SLOTS}

# ListEleve metadata: (metadata column name, row, label column, value column range) 0-based cols.
# Right block: label in A, value in B:C; left block: label in E, value in F:G (RTL: value left).
LIST_META_CELLS: tuple[tuple[str, int, int, int, int], ...] = (
    ("academy", 4, 0, 1, 2),
    ("directorate", 5, 0, 1, 2),
    ("commune", 6, 0, 1, 2),
    ("school_name", 7, 0, 1, 2),
    ("school_year", 4, 4, 5, 6),
    ("level_label", 5, 4, 5, 6),
    ("class_code", 6, 4, 5, 6),
)
LIST_TITLE_CELL = (2, 0, 6)  # row 2, merged A:G

# NotesCC metadata: (name, row, label col, value first col, value last col), 0-based cols.
NOTES_META_CELLS: tuple[tuple[str, int, int, int, int], ...] = (
    ("academy", 7, 2, 3, 5),
    ("directorate", 8, 2, 3, 5),
    ("school_name", 9, 2, 3, 5),
    ("level_label", 10, 2, 3, 5),
    ("class_code", 11, 2, 3, 5),
    ("teacher", 7, 6, 8, 12),
    ("session_label", 8, 6, 8, 12),
    ("subject_name", 9, 6, 8, 12),
    ("school_year", 10, 6, 8, 12),
)
NOTES_TITLE_CELL = (3, 2, 12)  # row 3, merged C:M

_LIST_META_LABEL = {c.name: c.header_ar for c in LIST_ELEVES_METADATA}
_NOTES_META_LABEL = {c.name: c.header_ar for c in NOTES_CC_METADATA}
NOTES_FIXED_HEADERS = tuple(
    MARKS.column(n).header_ar for n in ("internal_id", "student_code", "full_name", "birth_date")
)
REMARK_LABEL = MARKS.column("remark").header_ar

FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_CREATED = datetime(2024, 1, 1)


def mark_col(slot_index: int) -> int:
    return 6 + 2 * slot_index


# --------------------------------------------------------------------------- ListEleve


def write_list_xls(book: ListWorkbook, path: Path) -> None:
    wb = xlwt.Workbook(encoding="utf-8")
    title = xlwt.easyxf("font: bold on, height 280; align: horiz center")
    label = xlwt.easyxf("font: bold on; align: horiz right")
    border = "borders: left thin, right thin, top thin, bottom thin"
    value = xlwt.easyxf(f"align: horiz right; {border}")
    header = xlwt.easyxf(
        f"font: bold on; align: horiz center; {border}; pattern: pattern solid, fore_colour gray25"
    )
    cell = xlwt.easyxf(border)
    dfmt = xlwt.easyxf(f"{border}; align: horiz center", num_format_str="dd/mm/yyyy")
    for i, sheet in enumerate(book.sheets, start=1):
        ws = wb.add_sheet(f"Sheet{i}")
        ws.cols_right_to_left = True
        for c, width in enumerate((6, 14, 18, 18, 8, 14, 14)):
            ws.col(c).width = 256 * width
        r, c1, c2 = LIST_TITLE_CELL
        ws.write_merge(r - 1, r - 1, c1, c2, LIST_TITLE, title)
        for name, row, lc, v1, v2 in LIST_META_CELLS:
            ws.write(row - 1, lc, _LIST_META_LABEL[name], label)
            ws.write_merge(row - 1, row - 1, v1, v2, sheet.meta.get(name, ""), value)
        for c, text in enumerate(sheet.headers):
            ws.write(LIST_HEADER_ROW - 1, c, text, header)
        for k, values in enumerate(sheet.rows):
            r = LIST_FIRST_ROW - 1 + k
            for c, v in enumerate(values):
                if isinstance(v, date):
                    ws.write(r, c, v, dfmt)
                else:
                    ws.write(r, c, "" if v is None else v, cell)
    wb.save(str(path))


def write_list(book: ListWorkbook, path: Path) -> None:
    if book.fmt == "xls":
        write_list_xls(book, path)
        return
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties({"created": FIXED_CREATED, "author": "Massar"})
    _fill_list_xlsx(wb, book)
    wb.close()


def _fill_list_xlsx(wb: xlsxwriter.Workbook, book: ListWorkbook) -> None:
    title = wb.add_format({"bold": True, "font_size": 14, "align": "center", "valign": "vcenter"})
    label = wb.add_format({"bold": True, "align": "right"})
    value = wb.add_format({"align": "right", "border": 1})
    header = wb.add_format({"bold": True, "align": "center", "border": 1, "bg_color": "#D9D9D9"})
    cell = wb.add_format({"border": 1})
    dfmt = wb.add_format({"border": 1, "num_format": "dd/mm/yyyy", "align": "center"})
    for i, sheet in enumerate(book.sheets, start=1):
        ws = wb.add_worksheet(f"Sheet{i}")
        ws.right_to_left()
        for c, width in enumerate((6, 14, 18, 18, 8, 14, 14)):
            ws.set_column(c, c, width)
        r, c1, c2 = LIST_TITLE_CELL
        ws.merge_range(r - 1, c1, r - 1, c2, LIST_TITLE, title)
        for name, row, lc, v1, v2 in LIST_META_CELLS:
            ws.write_string(row - 1, lc, _LIST_META_LABEL[name], label)
            ws.merge_range(row - 1, v1, row - 1, v2, sheet.meta.get(name, ""), value)
        for c, text in enumerate(sheet.headers):
            ws.write_string(LIST_HEADER_ROW - 1, c, text, header)
        for k, values in enumerate(sheet.rows):
            r = LIST_FIRST_ROW - 1 + k
            for c, v in enumerate(values):
                if isinstance(v, date):
                    ws.write_datetime(r, c, datetime(v.year, v.month, v.day), dfmt)
                elif isinstance(v, int | float):
                    ws.write_number(r, c, v, cell)
                else:
                    ws.write_string(r, c, v or "", cell)


# --------------------------------------------------------------------------- NotesCC


_ESC = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
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
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
    'metadata/core-properties" Target="docProps/core.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/extended-properties" Target="docProps/app.xml"/>'
    "</Relationships>"
)
_APP = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>Microsoft Excel</Application></Properties>"
)
_CORE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<dc:creator>Massar</dc:creator>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2024-01-01T00:00:00Z</dcterms:created>'
    "</cp:coreProperties>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<bookViews><workbookView xWindow="0" yWindow="0" windowWidth="20000" windowHeight="10000"/>'
    "</bookViews><sheets>"
    '<sheet name="NotesCC" sheetId="1" r:id="rId1"/>'
    '<sheet name="Data" sheetId="2" r:id="rId2"/>'
    "</sheets></workbook>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet2.xml"/>'
    '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# cellXfs: 0 default, 1 header, 2 locked bordered text, 3 unlocked mark (0.00),
# 4 unlocked text (absence, remark), 5 title, 6 metadata label, 7 metadata value
_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<fonts count="3"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="14"/><name val="Calibri"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFD9D9D9"/><bgColor indexed="64"/>'
    "</patternFill></fill></fills>"
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
    '<border><left style="thin"/><right style="thin"/><top style="thin"/><bottom style="thin"/>'
    "<diagonal/></border></borders>"
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="8">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" '
    'applyBorder="1" applyAlignment="1"><alignment horizontal="center" vertical="center" '
    'wrapText="1"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="1" xfId="0" applyBorder="1"/>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="1" xfId="0" applyNumberFormat="1" '
    'applyBorder="1" applyProtection="1"><protection locked="0"/></xf>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="1" xfId="0" applyBorder="1" '
    'applyProtection="1"><protection locked="0"/></xf>'
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1" '
    'applyAlignment="1"><alignment horizontal="center"/></xf>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="1" xfId="0" applyBorder="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
_DATA_SHEET = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<dimension ref="A1:A2"/><sheetViews><sheetView workbookViewId="0"/></sheetViews>'
    '<sheetFormatPr defaultRowHeight="15"/><sheetData>'
    '<row r="1"><c r="A1" t="inlineStr"><is><t></t></is></c></row>'
    f'<row r="2"><c r="A2" t="inlineStr"><is><t>{JUSTIFIED_LABEL}</t></is></c></row>'
    "</sheetData></worksheet>"
)
_SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
)
_COLS = (
    "<cols>"
    '<col min="1" max="1" width="2" customWidth="1"/>'
    '<col min="2" max="2" width="0" hidden="1" customWidth="1"/>'
    '<col min="3" max="3" width="14" customWidth="1"/>'
    '<col min="4" max="5" width="16" customWidth="1"/>'
    '<col min="6" max="6" width="12" customWidth="1"/>'
    + "".join(
        f'<col min="{c}" max="{c}" width="9" customWidth="1"/>'
        f'<col min="{c + 1}" max="{c + 1}" width="0" hidden="1" customWidth="1"/>'
        for c in range(7, 17, 2)
    )
    + '<col min="17" max="17" width="20" customWidth="1"/>'
    "</cols>"
)


def _s(ref: str, text: str, style: int = 0) -> str:
    text = text.translate(_ESC)
    space = ' xml:space="preserve"' if text[:1] == " " or text[-1:] == " " else ""
    return f'<c r="{ref}" t="inlineStr" s="{style}"><is><t{space}>{text}</t></is></c>'


def _n(ref: str, number: float | int, style: int = 0) -> str:
    return (
        f'<c r="{ref}" s="{style}"><v>{number!r}</v></c>'
        if isinstance(number, float)
        else f'<c r="{ref}" s="{style}"><v>{number}</v></c>'
    )


def _empty(ref: str, style: int) -> str:
    return f'<c r="{ref}" s="{style}"/>'


_COL = [col_letter(i) for i in range(40)]


def render_notes_sheet(nf: NotesFile) -> str:
    n_slots = len(nf.slots)
    remark_col = mark_col(n_slots)
    last_col = max(remark_col, 16)
    parts = [_SHEET_HEAD]
    last_row = NOTES_FIRST_ROW + len(nf.rows) - 1 if nf.rows else NOTES_HEADER_ROWS[1]
    parts.append(f'<dimension ref="A1:{_COL[last_col]}{last_row}"/>')
    parts.append(
        '<sheetViews><sheetView rightToLeft="1" workbookViewId="0">'
        f'<pane ySplit="{NOTES_HEADER_ROWS[1]}" topLeftCell="A{NOTES_FIRST_ROW}" '
        'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
    )
    parts.append('<sheetFormatPr defaultRowHeight="15"/>')
    parts.append(_COLS)
    parts.append("<sheetData>")
    merges: list[str] = []
    rows: dict[int, list[str]] = {r: [] for r in range(1, NOTES_FIRST_ROW)}
    # row 3: title
    tr, tc1, tc2 = NOTES_TITLE_CELL
    rows[tr].append(_s(f"{_COL[tc1]}{tr}", NOTES_TITLE, 5))
    merges.append(f"{_COL[tc1]}{tr}:{_COL[tc2]}{tr}")
    # row 5: technical cells
    rows[5] += [
        _s("C5", nf.school_code),
        _s("E5", nf.guid),
        _n("G5", nf.session),
        _s("K5", f"#{nf.subject_code}#"),
        _s("O5", nf.level_internal),
    ]
    # metadata
    for name, row, lc, v1, v2 in NOTES_META_CELLS:
        rows[row].append(_s(f"{_COL[lc]}{row}", _NOTES_META_LABEL[name], 6))
        rows[row].append(_s(f"{_COL[v1]}{row}", nf.meta.get(name, ""), 7))
        merges.append(f"{_COL[v1]}{row}:{_COL[v2]}{row}")
    # row 15 tokens, rows 16-17 headers
    h1, h2 = NOTES_HEADER_ROWS
    for col, text in zip((1, 2, 3, 5), NOTES_FIXED_HEADERS, strict=True):
        rows[h1].append(_s(f"{_COL[col]}{h1}", text, 1))
        rows[h2].append(_empty(f"{_COL[col]}{h2}", 1))
        end = 4 if col == 3 else col
        if col == 3:
            rows[h1].append(_empty(f"E{h1}", 1))
            rows[h2].append(_empty(f"E{h2}", 1))
        merges.append(f"{_COL[col]}{h1}:{_COL[end]}{h2}")
    for i, key in enumerate(nf.slots):
        mc = mark_col(i)
        rows[15].append(_s(f"{_COL[mc]}15", SLOT_TOKEN[key]))
        rows[h1].append(_s(f"{_COL[mc]}{h1}", SLOT_LABEL[key], 1))
        rows[h1].append(_empty(f"{_COL[mc + 1]}{h1}", 1))
        merges.append(f"{_COL[mc]}{h1}:{_COL[mc + 1]}{h1}")
        rows[h2].append(_s(f"{_COL[mc]}{h2}", MARK_LABEL, 1))
        rows[h2].append(_s(f"{_COL[mc + 1]}{h2}", ABSENCE_LABEL, 1))
    rows[h1].append(_s(f"{_COL[remark_col]}{h1}", REMARK_LABEL, 1))
    rows[h2].append(_empty(f"{_COL[remark_col]}{h2}", 1))
    merges.append(f"{_COL[remark_col]}{h1}:{_COL[remark_col]}{h2}")
    hidden = set(NOTES_HIDDEN_ROWS)
    for r in range(1, NOTES_FIRST_ROW):
        attr = ' hidden="1"' if r in hidden else ""
        parts.append(f'<row r="{r}"{attr}>' + "".join(rows[r]) + "</row>")
    # pupils
    cols = _COL
    for k, values in enumerate(nf.rows):
        r = NOTES_FIRST_ROW + k
        cells = [
            _n(f"B{r}", values[0], 2)
            if isinstance(values[0], int)
            else _s(f"B{r}", str(values[0]), 2),
            _s(f"C{r}", values[1], 2),
            _s(f"D{r}", values[2], 2),
            _empty(f"E{r}", 2),
            _s(f"F{r}", values[3], 2),
        ]
        merges.append(f"D{r}:E{r}")
        for i in range(n_slots):
            mark = values[4 + 2 * i]
            absence = values[5 + 2 * i]
            mc = mark_col(i)
            ref = f"{cols[mc]}{r}"
            if mark is None:
                cells.append(_empty(ref, 3))
            elif isinstance(mark, str):
                cells.append(_s(ref, mark, 3))
            else:
                cells.append(_n(ref, mark, 3))
            ref = f"{cols[mc + 1]}{r}"
            cells.append(_s(ref, absence, 4) if absence else _empty(ref, 4))
        remark = values[4 + 2 * n_slots]
        ref = f"{cols[remark_col]}{r}"
        cells.append(_s(ref, remark, 4) if remark else _empty(ref, 4))
        parts.append(f'<row r="{r}">' + "".join(cells) + "</row>")
    parts.append("</sheetData>")
    parts.append(
        '<sheetProtection sheet="1" objects="1" scenarios="1" formatColumns="0" formatRows="0"/>'
    )
    parts.append(
        f'<mergeCells count="{len(merges)}">'
        + "".join(f'<mergeCell ref="{m}"/>' for m in merges)
        + "</mergeCells>"
    )
    if nf.rows and n_slots:
        sqref = " ".join(
            f"{cols[mark_col(i) + 1]}{NOTES_FIRST_ROW}:{cols[mark_col(i) + 1]}{last_row}"
            for i in range(n_slots)
        )
        parts.append(
            '<dataValidations count="1"><dataValidation type="list" allowBlank="1" '
            f'showErrorMessage="1" sqref="{sqref}"><formula1>Data!$A$1:$A$2</formula1>'
            "</dataValidation></dataValidations>"
        )
    parts.append(
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" '
        'footer="0.3"/></worksheet>'
    )
    return "".join(parts)


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


def write_notes(nf: NotesFile, path: Path) -> int:
    """Write one NotesCC workbook; returns its size in bytes."""
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
    if nf.truncate:
        data = data[: len(data) // 2]
    path.write_bytes(data)
    return len(data)
