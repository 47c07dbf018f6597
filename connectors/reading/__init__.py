"""The rooms of reading a school's file; `connectors.school_files.read_submission` walks them
in this order, and each module answers one question:

1. `sniff`: may the file be read at all (name, size) and in which format are its bytes?
   (`csv_text`: how a CSV's bytes become text, its delimiter.)
2. `workbook_safety`: is a workbook safe to parse (zip directory, sheet dimensions)?
   (`limits`: how big a file, a zip, a sheet may be.) `calamine_copy`: the xlsx as python-calamine
   is given it, its worksheets stored so that calamine skips their merged cells.
3. `workbook_loading`: the workbook's sheets as rows of cells (python-calamine).
4. `layout_detection`: which layout each sheet holds and where its header row is
   (`table_headers`: which table dataset a header row names).
5. One reader per layout: `liste_eleve`, `notes_cc`, `table_files` (also CSV files). The two
   Massar readers share `metadata_location` (where a label's value stands) and `reference`
   (levels and subjects); `notes_slots` finds NotesCC's mark/absence pairs.
6. `read_frame`: column lists into the polars frame; `read_result`: what a read hands on
   (`ReadResult`, `SheetLayout`, `ReadFinding`) or the refusal (`FileRejected`).

`cells` (how a cell reads as text, as a label, by its address) is used by every step.
docs/decisions/0007-one-reader-per-layout.md says why the path is cut this way.
"""
