"""Writers of the datasets without a known Massar layout (schemas/datasets.py labels).

classes, rooms and timetable are XLSX (one right-to-left sheet named after the dataset's Arabic
title, header in row 1); guardians, exam_marks, absences, discipline and support are CSV, UTF-8
with BOM, comma separated, CRLF line ends (one school may send Windows-1256 without BOM).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import xlsxwriter

from massar.synthetic.massar_layouts import FIXED_CREATED
from schemas.datasets import DATASETS, Dataset

XLSX_DATASETS = ("classes", "rooms", "timetable")
CSV_DATASETS = ("guardians", "exam_marks", "absences", "discipline", "support")


def file_name(dataset: str) -> str:
    return f"{dataset}.xlsx" if dataset in XLSX_DATASETS else f"{dataset}.csv"


@dataclass
class Table:
    dataset: str
    rel_path: str
    headers: list[str]
    rows: list[list] = field(default_factory=list)  # values in the dataset's column order
    encoding: str = "utf-8-sig"

    @property
    def spec(self) -> Dataset:
        return DATASETS[self.dataset]

    @property
    def sheet(self) -> str:
        """Sheet name for XLSX tables, empty for CSV."""
        return self.spec.title_ar if self.dataset in XLSX_DATASETS else ""

    def column_index(self, name: str) -> int:
        return [c.name for c in self.spec.columns].index(name)

    @staticmethod
    def first_data_row() -> int:
        """1-based row (XLSX) or line (CSV) of the first data row."""
        return 2


def new_table(dataset: str) -> Table:
    spec = DATASETS[dataset]
    return Table(dataset, file_name(dataset), list(spec.headers_ar))


def fmt_decimal(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return fmt_decimal(value)
    return str(value)


def render_csv(table: Table) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(table.headers)
    for row in table.rows:
        writer.writerow([_cell_text(v) for v in row])
    return buf.getvalue().encode(table.encoding)


def write_table(table: Table, path: Path) -> int:
    if table.dataset in XLSX_DATASETS:
        _write_xlsx(table, path)
    else:
        path.write_bytes(render_csv(table))
    return path.stat().st_size


def _write_xlsx(table: Table, path: Path) -> None:
    wb = xlsxwriter.Workbook(str(path))
    wb.set_properties({"created": FIXED_CREATED, "author": "Massar"})
    header = wb.add_format({"bold": True, "align": "center", "border": 1, "bg_color": "#D9D9D9"})
    ws = wb.add_worksheet(table.sheet)
    ws.right_to_left()
    ws.set_column(0, len(table.headers) - 1, 16)
    for c, text in enumerate(table.headers):
        ws.write_string(0, c, text, header)
    kinds = [c.kind for c in table.spec.columns]
    for r, row in enumerate(table.rows, start=1):
        for c, value in enumerate(row):
            if value is None or value == "":
                continue
            if kinds[c] in ("integer", "decimal") and isinstance(value, int | float):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, str(value))
    wb.close()
