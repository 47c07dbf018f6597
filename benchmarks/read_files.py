"""Benchmark: the school-file reader against python-calamine alone, file by file.

For every file of a province folder (one process, files read once beforehand so that both
sides find them in the page cache) it times:

- bare: python-calamine alone (open the workbook, `to_python()` every sheet) for workbooks, the
  stdlib csv module (UTF-8 / Windows-1256 decoding) for CSVs;
- ours: `connectors.school_files.read_submission` (rejections included, counted apart).

and prints both totals (wall and CPU seconds), the ratios ours / bare, and the same per layout
(ListEleve, NotesCC, tables), with the load average. Files go in groups (a school's files of
one layout) read by both sides in turn, `--repeat` times; the best time of each side per group
is kept. Polars runs on one thread, as in the ingest's worker processes.

    .venv/bin/python benchmarks/read_files.py [PROVINCE] [--limit-schools N] [--repeat R]
        [--profile OUT.prof]

Figures (issue 17, item 1): a generated province of 60 schools (`generate_province(...,
schools=60, seed=2024)`: 6,516 files, 6,228 of them NotesCC), `--repeat 1` (each file's first
read), the tree before this round (40cb72b) and after, run back to back three times on the 2 shared
cores at load average 9-14 (wall times follow the load; compare CPU seconds):

                          before (40cb72b)           after
    ours CPU / bare CPU   7.67 / 2.56 s = 3.00x      6.24 / 2.55 s = 2.44x
                          7.84 / 2.58 s = 3.04x      6.50 / 2.57 s = 2.53x
                          7.33 / 2.45 s = 2.99x      5.92 / 2.44 s = 2.42x (a3a1395)
      NotesCC             6.69-7.18 s (2.97-3.01x)   5.31-5.86 s (2.40-2.49x)
    ours wall / bare wall 34.02 / 10.32 s = 3.30x    16.48 / 6.66 s = 2.47x
                          26.99 / 8.14 s = 3.31x     14.04 / 6.05 s = 2.32x
                          19.28 / 5.99 s = 3.22x     11.53 / 4.77 s = 2.42x (load 9-10)

Most of the wall time saved was waiting: each NotesCC frame was gathered by polars' thread
pool, a hand-off of two context switches per file (3,250 voluntary switches per 2,327 files,
5 after), milliseconds each on a busy machine. The CPU saved: the gather per column, the
repeated columns of the frames and the label cells of the rows above the header made once per
export, the metadata values looked up cell by cell. Target (<= 2x the bare read) missed: the
reader's own work beyond python-calamine (classifying the sheet, locating the metadata and the
technical row, the marks grid, the frame, the zip checks; each 20-60 us a NotesCC file) still
costs ~1.4x python-calamine's parse of the same files.

Round 2 (issue 17, item 1, 6 December 2026): the default generated province (/tmp/a3/province),
`--limit-schools 40` (9,112 files, 8,752 NotesCC), `--repeat 1`, the reader of 299dfab (tree
684c2e4) and after (the reader of 8b82490, then of fd724d6), back to back in pairs on the 2
shared cores at load average 3.8-6.6 (the other engineers' work: CPU seconds grow with the
load too, compare the ratios of each pair):

                          before (299dfab reader)    after
    ours CPU / bare CPU   8.97 / 3.75 s = 2.39x      8.32 / 3.69 s = 2.25x   (8b82490, load 3.8-4.0)
                          9.24 / 3.91 s = 2.36x      8.26 / 3.54 s = 2.33x   (8b82490, load 4.0)
                          10.45 / 4.28 s = 2.44x     8.95 / 3.96 s = 2.26x   (8b82490, load 4.7)
                          9.96 / 3.81 s = 2.61x      12.87 / 5.10 s = 2.52x  (8b82490, load 5.0-6.6)
                          10.71 / 4.26 s = 2.51x     9.32 / 4.03 s = 2.31x   (fd724d6, load 6.4)
                          9.16 / 3.77 s = 2.43x      8.66 / 3.98 s = 2.17x   (fd724d6, load 5.3-5.6)
      NotesCC             2.30-2.56x                 2.15-2.51x
      tables (CSV, xlsx)  2.65-2.85x                 2.16-2.32x
      ListEleve           4.85-5.39x                 3.84-4.45x

What changed (each compared with the code it replaces on 3,271 files of every layout, frames,
layouts, findings and rejections identical; tests/connectors/test_read_step_paths.py):
- NotesCC: the pupils' block transposed with zip when its rows have one width, its empty rows
  found by comparing each row with an empty one (stops at the first filled cell), no compress
  copies when every row is a pupil, the slot columns interleaved by slice assignment; the
  technical row renders only the cells it reads; the layout's slot descriptions and column
  letters made once per export; a metadata row's filled columns memoised with its label cells;
  an empty row's label keys known without a memo lookup; a row with a label key is not blank
  (no is_blank scan while looking for a table header).
- Tables: a CSV's blank lines by joining its text cells; the school codes (F004) counted with a
  Counter instead of three polars calls a file (320 table files: 1.67 -> 0.67 s under cProfile).
- ListEleve: a pupil's ASCII code is never the Arabic code label, its key is not made (a memo
  miss per pupil, ~40% of a ListEleve read).

Measured and dropped: inflating only the first 1 kB of a worksheet for its `<dimension>` (the
tag stands at byte ~200): zlib's window costs ~6 us even for 256 bytes, 8 kB ~13 us, so ~5 us
a file saved, and an entry corrupt between 1 and 8 kB would get calamine's F001 detail instead
of the zip check's; the frame's memo of repeated columns removed (grid_frame 67-97 -> 118-129
us a file in context: kept); Located built without its frozen __init__ (0.9 -> 0.4 us, 13 a
file: not worth bypassing the dataclass). GC is not a factor (63 collections, ~0.1 s
per 4,224 files).

Why still above 2x (target missed): a step measured alone (the same rows read again) costs a
third of what it costs inside a read (NotesCC, 20 schools, CPU per file, load ~4.5: classify
17 vs 63 us, the sheet's reader 130 vs 237, the frame 20 vs 70, the zip checks 24 vs 72):
fresh cells from python-calamine are hashed and compared with the memos' keys, and the cache
is cold after calamine's parse and the other processes; python-calamine itself takes ~430 us
a NotesCC file inside a read vs ~300 alone. The reader's work is spread over ~25 steps of
5-60 us; the next large cut needs fewer Python objects per file (e.g. one memo lookup per row
shared by classify, metadata and technical row, or frames built per school from column lists,
which needs the ingest to stack them).

Round 3 (issue 17, item 1, 6 December 2026, 11:20-12:30 UTC): target (the read step's CPU down
by a third, 26.9 s -> 18 s in the ingest) missed. Where a NotesCC file's read goes, in the
read (3,000 files of /tmp/a3/province, bytes given as the ingest does, one process, load ~3-4,
coarse timers): 849 us a file, of which python-calamine's parse of the marks sheet 364 us
(`load_sheets` without the classification), classify 62, the zip checks 60 (the 8 kB inflate
of the marks sheet's head ~30), metadata 66, marks grid 76, grid frame 59, technical row 23,
the rest ~40 (reading the file, 45 us, when its bytes are not given). The same file read again
at once costs 718 us instead of 775 (parse alone 343): the reader's ~400 us are work, not a cold
cache. In instructions (callgrind, 600 files, startup subtracted) a file costs 5.6 M: the
python-calamine extension 3.0 M (quick-xml, zlib-rs, UTF-8 checks), CPython 1.6 M, libc 0.5 M,
the zip checks' zlib 0.12 M, polars 0.09 M. A third off the read needs the reader's Python cut
by ~60%: ~25 steps of 5-60 us each, no single one worth more than a few per cent.

What changed (each compared with 7d98905 on 2,902 files: a sample of every layout of
/tmp/a3/province, a `--defects` province of 7 schools, both genuine replica folders; frames,
dtypes, layouts, findings and rejections identical; tests/connectors/test_read_step_paths.py):
- a metadata label's values on both sides, and the Located each side gives, remembered per label
  row with the row above (9 label lookups in 10 hit: a class's metadata rows recur from file to
  file); rows holding cells other than text and floats are not remembered (1.0 == True as keys):
  111 k instructions a file fewer, metadata 37 -> 27 us a file measured alone (3c44b61);
- the technical row's subject token found through a memo of each row's token column (the rows
  above it recur): 22 k instructions a file fewer (68f1c54);
- label keys of ASCII text without the Unicode passes that cannot change them: the technical
  row's identifier is new in every file and cost ~11 us through label_key: 66 k fewer (531da6e).

Together (callgrind with its cache model, 600 NotesCC files, one process): 4,683 -> 4,565 M
instructions, first-level cache misses 63.4 -> 62.9 M, last-level the same; estimated cycles
(instructions + 10 x L1 misses + 100 x LL misses) 5,391 -> 5,268 M: ~205 k a file, -3% of a
file's read. The benchmark cannot see it at this load: the pairs scatter by +-5% (ours CPU /
bare CPU, load average in brackets, old and new run alternately in the same minutes):

    --repeat 1               before (7d98905)                after (531da6e)
    province (31,413 files)  31.82 / 14.07 = 2.26x (6.6-6.8) 35.81 / 15.67 = 2.29x (5.3-6.7)
                             31.35 / 14.03 = 2.23x (4.9-5.2) 38.25 / 17.22 = 2.22x (68f1c54)
                             30.92 / 13.51 = 2.29x (5.0-5.6) 34.54 / 15.27 = 2.26x (3c44b61)
                             33.12 / 14.60 = 2.27x (5.1-5.7)
    40 schools (9,112 files) 7.54 / 3.37 = 2.23x (5.7-6.2)   7.87 / 3.61 = 2.18x (6.2-6.8)
                             8.35 / 3.64 = 2.29x (5.5)       7.83 / 3.41 = 2.29x (5.5-5.7)
                             8.96 / 3.84 = 2.33x (4.5-4.8)   8.70 / 3.71 = 2.35x (68f1c54)
                             9.90 / 4.22 = 2.35x (4.7-6.2)   10.19 / 4.23 = 2.41x (68f1c54)

Measured and dropped:
- fastexcel 0.21.0 (Rust, calamine underneath, Arrow columns): 2,000 NotesCC files from bytes,
  the marks sheet to Arrow 295-412 us a file against python-calamine's `to_python` of the same
  sheet 316-333 us (its parse without the Python cells 265-312): the parse is calamine's either
  way and not cheaper, and the rows above the header would still be needed as Python cells.
  Its text also differs from `render`: " " stays " " (ours None), True "true" ("TRUE"), -0.0
  "-0" ("0"), 1.2345678901234568e17 "123456789012345696" ("123456789012345700"), a date
  "2017-06-22 00:00:00" ("22/06/2017"), a date and time "2017-06-22 08:30:00" ("22/06/2017
  08:30:00"). Not adopted.
- NotesCC's empty absence and remark columns given to the grid as constants (no interleaving,
  no series of None built): +190 instructions a file under callgrind (the emptiness test costs
  what the lists saved).
- reading the file with os.open/os.read instead of pathlib: 14 -> 8 us a file alone, < 1%.
- "one memo lookup per row shared by classify, metadata and technical row": the metadata's own
  row lookups cost ~10 us a file measured alone (its rows loop), the bound of what sharing saves.

Next: the grid frame (~60 us a file) could shrink with frames built per school from column
lists (the ingest stacking them, outside the reader); a third off needs the reader's layout work
(classify, metadata, grid) out of Python, e.g. a compiled NotesCC reader.

Round 4 (issue 17, item 1, 6 December 2026, 14:10-15:40 UTC): target (the read step's CPU
<= ~22 s, the reader's Python beyond the parse cut by a third) missed again. Where a NotesCC
read goes, measured without py-spy's syscall bias (perf, cpu-clock samples of one process
reading 4,000 NotesCC files from bytes): python-calamine's extension 34% of the samples,
CPython 48%, libc 7%, polars 3%, zlib (the zip checks) 2.5%. With call graphs (a loop of
from_filelike, get_sheet_by_index, to_python on 1,500 files): get_sheet_by_index 59% of
the samples, of which calamine's worksheet_range 35% and merge_cells_by_sheet_name 24%:
python-calamine 0.9.1 reads each sheet's merged cells whenever a sheet is loaded, a second
inflate and XML pass over the whole sheet that the reader never uses. That is the largest
single item left in the read, and it is not the reader's Python: python-calamine 0.3.2 (the
last release before merged cells) parses the same NotesCC files in 253 us instead of 315-321
(bare) and reads them in 611-625 us instead of 711-735 (3,000 files, one process, load 6.9-7.2;
4,000 workbooks of every layout: 295 vs 352 us a file), with the same cells (values and types)
on 4,000 workbooks and the same reads on 4,330 files, but 0.3.2 panics (PanicException, not
caught as F001) on a truncated .xls: no drop-in. The saving needs python-calamine to read
merged cells only when asked (`merged_cell_ranges` lazily), an upstream change.

What changed (2c0c941): a sheet's rows' facts looked up once for every step of its read. Layout
detection, the technical row, the marker row and the metadata each looked a row up in a memo
of their own (~35 lookups of a 26-cell tuple a NotesCC file, each hashing and comparing every
cell); now one memo of row facts (cells.row_facts: label keys, and what each step notes of the
row), each sheet's facts looked up once by layout detection and handed to the readers
(SheetKind.rows), the metadata's placements memo keyed by the facts themselves; the marker
row's tokens noted in its facts; render_all answers an empty column before collecting its
types. Callgrind, 600 NotesCC files (parse + classify + read, one process, reproducible to
0.03%): 4,491 -> 4,418 M instructions, -122 k a file of ~5.3 M (shared facts -82 k; marker row
-40 k; empty columns -40 k, measured apart: -24 M each). The same reads: frames (values, dtypes),
layouts, findings and rejections of 4,330 files (3,000 sampled from /tmp/a3/province, the
table and ListEleve files of a 40-school province, an 8-school `--defects` province, both genuine
replica folders) equal 0c5aeac's; tests/connectors/test_read_step_paths.py.

    --repeat 1, province     before (0c5aeac)                    after (2c0c941)
    ours CPU / bare CPU      27.22 / 12.10 = 2.25x (3.9-6.3)     26.63 / 12.47 = 2.13x (6.3-6.7)
                             26.56 / 11.87 = 2.24x (6.5-5.6)     24.87 / 11.77 = 2.11x (5.6-5.0)
      NotesCC                2.23-2.24x                          2.13-2.14x
    ours beyond bare (CPU)   15.1, 14.7 s                        14.2, 13.1 s
    40 schools (9,112 files) 7.17 / 3.34 = 2.14x (8.6-7.7)       7.03 / 3.55 = 1.98x (7.7-7.3)
                             7.29 / 3.37 = 2.16x (7.3-6.8)       7.09 / 3.50 = 2.03x (6.8-6.4)

Measured and dropped:
- the marks grid's columns picked from the rows (`map(itemgetter(p), block)`, 13 of a sheet's
  26 columns) instead of transposing the whole block, on the idea that each cell touched is a
  cache miss (py-spy put 14% of the reader's samples on the transposition): +90 k
  instructions a file under callgrind, and first reads not faster (184-242 vs 178-194 us a
  file for classify + read_notes_cc, 3,000 files, load 4.4-5);
- the garbage collector: first reads with it disabled cost the same (183-196 vs 183-204 us).
Not tried, the bound being small (steps measured alone, the same rows again): the zip checks
cost 53 us a NotesCC file (central directory 16, the marks sheet's 8 kB head 20, of which the
inflate 16: needed for the same F001/F006 verdicts, see round 2); the grid frame 23-28 us, of
which polars' constructors 13 and its 18 memo lookups of repeated columns 5.

Round 5 (issue 17, item 1, 6 December 2026, 16:40-18:15 UTC): python-calamine's merged-cells
pass skipped. python-calamine 0.9.1 has no way to load a sheet without its merged cells
(`get_sheet_by_name` calls calamine's `worksheet_merge_cells` whatever is asked later; `nrows`,
`iter_rows` and `skip_empty_area` only shape the cells already parsed), and every release since
0.4.0 reads them (0.3.2, the last without, panics on truncated .xls). The reader now gives
calamine a copy of an xlsx (connectors/reading/calamine_copy.py) whose first worksheet is stored
with an empty <mergeCells> before its <sheetData>: calamine's merged-cells pass stops there,
and neither pass inflates the sheet. The copy is made only where calamine cannot tell it from
the original (see the module), else the school's bytes are read. One process, 2,000 NotesCC
files of /tmp/a3/province: check_zip + load_sheets 347-352 -> 272-275 us a file (copy 98 us,
calamine 297 -> 177); the rest of the sheet's inflate in Python (zlib 1.2.13) is 31 us of the
copy's cost. Old (2f1172f) and new (9bb2599) run in turn, 40 schools (9,112 files), `--repeat
1`, load average 6.2-6.9:

                          before (2f1172f)             after (9bb2599)
    ours CPU / bare CPU   7.19 / 3.58 s = 2.01x        6.44 / 3.49 s = 1.84x
                          7.15 / 3.48 s = 2.06x        6.47 / 3.47 s = 1.86x
      NotesCC             6.58, 6.53 s (2.10-2.14x)    5.83, 5.81 s (1.89-1.91x)
    ours wall / bare wall 15.53 / 8.33, 13.05 / 6.02   13.05 / 7.85, 11.42 / 5.97
    province (31,413)     25.62 / 12.26 = 2.09x        24.17 / 12.28 = 1.97x  (load 4.8-7.6)
                          26.85 / 12.35 = 2.17x        24.75 / 12.39 = 2.00x  (load 6.8-8.5)
      NotesCC             22.99, 24.06 s               21.40, 21.88 s
      tables              1.98, 2.12 s                 2.11, 2.19 s (a table's first sheet,
                                                       without merged cells, inflated for nothing)

On the province the cut is 6-8% of the read (7-9% of NotesCC's), against 10-11% on the first
40 schools; the load rose during the first old run and the second new one.

Same reads (frames with dtypes, layouts, findings, rejections) as 2f1172f on 3,700 files of
/tmp/a3/province (2,500 NotesCC sampled, every table and ListEleve file of the first schools),
an 8-school `--defects` province (1,081 files), both genuine replica folders, 2,460
byte-damaged copies of 41 province and replica files (truncated, bits flipped, ranges zeroed)
and 1,470 XML-damaged ones (sound zips, a character inserted or removed before, in and after
<sheetData>): an earlier rule that only checked the elements up to <mergeCells> changed 34 of
those 1,470 (calamine parses the <mergeCell> references and refuses a damaged one), hence the
references checked too (tests/connectors/test_calamine_copy.py).

Measured and dropped:
- python-calamine releases (pip, one process, 2,000 NotesCC files, bare parse of the marks
  sheet, best of 3, two runs): 0.3.2 243-267 us, 0.4.0 346-355, 0.6.2 305-312, 0.8.3 261-268,
  0.9.1 294-299. 0.8.3 (calamine 0.36.1) reads the 4,789 sound files identically but refuses
  95 of the 2,460 damaged ones otherwise (16 read where 0.9.1 refuses "File is larger than its
  declared uncompressed size", 77 other error texts): not adopted. Every release reads merged
  cells from 0.4.0 on.
- the <dimension> search from the first b"dimension" (the regex costs < 1 us a head already).
- the marks frame's per-pupil columns expanded in Python instead of gathered by polars: within
  the noise of the machine (CPU per file 652-734 vs 679-760 us, load 4-7), not pursued.
- the copy for every deflated worksheet: a sheet without <mergeCells> (tables, ListEleve
  sheets) is inflated for nothing; the first worksheet only (a NotesCC marks sheet).
Found on the way (fuzzing): python-calamine panics on .xls files cut short of their last
sectors (PanicException, a BaseException: it passed the ingest's `except Exception`): F001 now
(f410b00). A .xls with a record type zeroed makes calamine allocate 16 TB and abort the whole
process (Rust's allocation failure, not catchable in Python): now F001 or F006, checked before
calamine opens it (olefile).

Round 6 (issue 17, item 1, 6 December 2026, 19:40-20:45 UTC): two small cuts, measured in
instructions (callgrind, 234 NotesCC files, startup subtracted, PYTHONHASHSEED=0; the machine's
load made the benchmark's pairs scatter more than they could show): the calamine copy's rule
for what follows </sheetData> written with possessive repeats (6fa0112: 16 -> 7 us a sheet's
36 references, 4,719 -> 4,682 k instructions a file) and the zip checks' NUL test as `0 in raw`
(ed40a7a: `b"\x00" in raw` raised and cleared a formatted TypeError for every directory entry;
4,682 -> 4,647 k). Together -1.5 % of a NotesCC file's read (~0.3-0.45 s of CPU on the
province). A file's read is now ~1.66 M instructions in python-calamine and ~1.62 M in the
interpreter. Same reads (frames with dtypes, layouts, findings, rejections) as 231f31c on 3,700
province files, 2,958 files of 12 schools in the ingest's order, a --defects province, both
genuine replica folders, 2,460 byte-damaged and 1,470 XML-damaged copies. Measured and dropped:
the classification's answers memoised with each row's facts, a memo of render_all (both within
the noise). Next, if anything: a school's marks grids stacked into one frame before the reader
builds one a file; beyond that, a compiled NotesCC reader.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# As in the ingest's worker processes (flows/runners.py): polars on one thread.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

LAYOUTS = ("ListEleve", "NotesCC", "tables")


def layout_of(school: Path, path: Path) -> str:
    parts = path.relative_to(school).parts
    if parts[0] == "NotesCC":
        return "NotesCC"
    if path.name.lower().startswith("listeleve"):
        return "ListEleve"
    return "tables"


def collect(province: Path, limit: int | None) -> list[tuple[str, Path, str]]:
    """(school code, path, layout) for every file of the first `limit` school folders."""
    schools = sorted(p for p in province.iterdir() if p.is_dir() and p.name[:5].isdigit())
    if limit is not None:
        schools = schools[:limit]
    files = []
    for school in schools:
        for path in sorted(p for p in school.rglob("*") if p.is_file()):
            files.append((school.name, path, layout_of(school, path)))
    return files


def bare_one(path: Path) -> None:
    from python_calamine import CalamineWorkbook

    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".xlsb"):
        with CalamineWorkbook.from_path(str(path)) as workbook:
            for name in workbook.sheet_names:
                workbook.get_sheet_by_name(name).to_python()
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1256")
        list(csv.reader(io.StringIO(text)))


def ours_one(school: str, path: Path) -> bool:
    from connectors.school_files import FileRejected, read_submission

    try:
        read_submission(path, school_code=school)
    except FileRejected:
        return False
    return True


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads, polars' pool included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(files, repeat: int) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:  # type: ignore[no-untyped-def]
    """[wall, CPU] seconds per layout for bare and ours, and the files ours rejected. Files are
    taken in groups (one school's files of one layout); each group is read `repeat` times by
    each side in turn and the best time of each side kept, so that a burst of load on the
    machine hits both sides alike. Ours' first pass is each file's first read in the process
    (as in the ingest); later passes find the memos of recurring labels warm."""
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for school, path, layout in files:
        groups[(school, layout)].append(path)
    bare: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    ours: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    rejected = 0
    clock = time.perf_counter
    for (school, layout), paths in groups.items():
        best_bare, best_ours = [float("inf")] * 2, [float("inf")] * 2
        for attempt in range(repeat):
            t0, c0 = clock(), cpu_seconds()
            for path in paths:
                bare_one(path)
            t1, c1 = clock(), cpu_seconds()
            read = [ours_one(school, path) for path in paths]
            t2, c2 = clock(), cpu_seconds()
            if attempt == 0:
                rejected += read.count(False)
            best_bare = [min(best_bare[0], t1 - t0), min(best_bare[1], c1 - c0)]
            best_ours = [min(best_ours[0], t2 - t1), min(best_ours[1], c2 - c1)]
        for side, best in ((bare, best_bare), (ours, best_ours)):
            side[layout][0] += best[0]
            side[layout][1] += best[1]
    return bare, ours, rejected


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("province", nargs="?", default="/tmp/tiznit", type=Path)
    parser.add_argument("--limit-schools", type=int, default=None, metavar="N")
    parser.add_argument("--repeat", type=int, default=1, metavar="R")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile ours into this file")
    args = parser.parse_args()

    files = collect(args.province, args.limit_schools)
    if not files:
        sys.exit(f"no school files under {args.province}")
    counts: dict[str, int] = defaultdict(int)
    size = 0
    for _, path, layout in files:  # warm the page cache
        counts[layout] += 1
        size += len(path.read_bytes())
    # Import and warm both sides (module imports, label caches) outside the timings.
    ours_one(files[0][0], files[0][1])
    bare_one(files[0][1])
    print(f"{len(files)} files, {size / 2**20:.0f} MB, {args.province}")

    load_before = load_average()
    bare, ours, rejected = timed(files, args.repeat)
    print(
        f"{'':<10} {'files':>6} {'bare s':>8} {'ours s':>8} {'ratio':>6} "
        f"{'bare CPU':>9} {'ours CPU':>9} {'ratio':>6} {'ours ms/file':>13}"
    )
    rows = [(layout, counts.get(layout, 0), bare[layout], ours[layout]) for layout in LAYOUTS]
    total = [
        (
            "total",
            len(files),
            [sum(v[i] for v in bare.values()) for i in (0, 1)],
            [sum(v[i] for v in ours.values()) for i in (0, 1)],
        )
    ]
    for layout, n, b, o in rows + total:
        if not n:
            continue
        print(
            f"{layout:<10} {n:>6} {b[0]:>8.2f} {o[0]:>8.2f} {o[0] / b[0]:>6.2f} "
            f"{b[1]:>9.2f} {o[1]:>9.2f} {o[1] / b[1]:>6.2f} {1000 * o[0] / n:>13.2f}"
        )
    print(
        f"({rejected} files rejected by read_submission; load average {load_before} before, "
        f"{load_average()} after; POLARS_MAX_THREADS={os.environ.get('POLARS_MAX_THREADS')})"
    )
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        for school, path, _ in files:
            ours_one(school, path)
        profiler.disable()
        profiler.dump_stats(str(args.profile))
        print(f"profile of ours (memos warm) written to {args.profile}")


if __name__ == "__main__":
    main()
