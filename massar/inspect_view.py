"""`massar inspect FILE` on the terminal: what `tasks.inspect_file` found, section by section.

Pupils' rows are printed here on purpose: this is the officer's own terminal, looking at a file
the officer holds; nothing of it goes to a log or to Prefect.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from schemas.datasets import DATASETS
from tasks.inspect_file import Inspection

_VERDICT_FR = {
    "accepted": "accepted (every row would be staged)",
    "partially_accepted": "partially accepted (some rows would be quarantined)",
    "rejected": "rejected",
}


def print_inspection(found: Inspection, console: Console) -> None:
    console.print(
        f"File {found.file_name} ({found.size:,} bytes, sha256 {found.sha256[:16]}…) "
        f"as a submission of school {found.school_code}",
        markup=False,
        highlight=False,
    )
    if found.dataset is None:
        console.print("Layout: not placed — the file would be rejected whole.", markup=False)
        _print_findings(found, console)
        return
    fmt = (found.source_format or "?") + (f", {found.encoding}" if found.encoding else "")
    console.print(
        f"Dataset: {found.dataset} — {found.dataset_title} ({fmt})", markup=False, highlight=False
    )
    for layout in found.layouts:
        _print_layout(layout, console)
    _print_staged(found, console)
    _print_findings(found, console)
    console.print(
        f"Rows read {found.rows_read}: {found.rows_accepted} would be staged, "
        f"{found.rows_quarantined} quarantined; the file would be "
        f"{_VERDICT_FR[found.verdict]}. Nothing was registered.",
        markup=False,
        highlight=False,
    )
    console.print(
        "Cross-record rules (a marked pupil missing from the list, a pupil in two schools…) "
        "compare the file with the school's other files and run at ingest, not here.",
        markup=False,
        highlight=False,
    )


def _print_layout(layout, console: Console) -> None:  # type: ignore[no-untyped-def]
    side = "lower" if layout.value_side == "lower" else "higher"
    headers = "-".join(str(r) for r in (layout.header_rows[0], layout.header_rows[-1]))
    if len(set(layout.header_rows)) == 1:
        headers = str(layout.header_rows[0])
    console.print(
        f"\nSheet {layout.sheet}: {layout.layout} layout, header row(s) {headers}, pupils from "
        f"row {layout.first_data_row}, {layout.rows_read} row(s) read; values stand at the "
        f"{side} column index of their label ({layout.value_side_evidence}).",
        markup=False,
        highlight=False,
    )
    meta = Table("metadata", "value", "cell", "label cell", title="Metadata found")
    for name, located in {**layout.metadata, **layout.technical}.items():
        value = located.value if located.value is not None else "— not found"
        if located.known_as:
            value = f"{value}  (level {located.known_as})"
        if located.value is not None and not located.expected_shape:
            value = f"{value}  (not of the expected shape)"
        meta.add_row(name, value, located.cell or "", located.label_cell or "hidden row")
    console.print(meta)
    columns = Table("column", "letter", title="Columns")
    for name, letter in layout.columns.items():
        if name != "remark":
            columns.add_row(name, letter)
    if layout.remark_column:
        columns.add_row("remark (never read as a mark)", layout.remark_column)
    console.print(columns)
    if layout.slots:
        slots = Table(
            "slot", "label", "label cells", "mark", "absence", "hidden marker", title="Mark slots"
        )
        for slot in layout.slots:
            slots.add_row(
                slot.slot,
                slot.label,
                slot.label_cells,
                slot.mark_column or "",
                slot.absence_column or "",
                slot.token or "",
            )
        console.print(slots)


def _print_staged(found: Inspection, console: Console) -> None:
    head = found.staged_head
    if head is None or head.height == 0:
        console.print("\nNo row would be staged.", markup=False)
        return
    dataset = DATASETS[found.dataset or ""]
    wanted = ["sheet", "sheet_row", *(c.name for c in dataset.columns)]
    shown = [c for c in wanted if c in head.columns]
    table = Table(*shown, title=f"First {head.height} row(s) as they would be staged")
    for row in head.select(shown).iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def _print_findings(found: Inspection, console: Console) -> None:
    if not found.findings:
        console.print("\nNo finding.", markup=False)
        return
    table = Table("rule", "severity", "sheet", "row", "column", "value", "message (fr)", "ar")
    for item in found.findings:
        table.add_row(
            item["rule_id"],
            item["severity"],
            item.get("sheet") or "",
            "" if item.get("sheet_row") is None else str(item["sheet_row"]),
            item.get("column_name") or "",
            item.get("value") or "",
            item["message_fr"],
            item["message_ar"],
        )
    table.title = f"Findings ({len(found.findings)})"
    console.print(table)
