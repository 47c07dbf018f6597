"""A national semester evaluated from the warehouse's Delta tables, size after size, beside
DuckDB's bare GROUP BY of the same marks.

    .venv/bin/python benchmarks/evaluate_national.py [--sizes 10M,40M,100M,300M] [--quick]
        [--batch-rows N] [--workdir DIR] [--keep] [--build-only]

For each size (mark rows), a warehouse is generated as the consolidation writes it: tables
``marks``, ``exam_marks`` and ``enrollments`` partitioned by school (warehouse/delta.py's
``replace_school_rows``, a few hundred schools per commit), one published night. The country:
pupils in classes of 40, 30 classes a school (1,200 pupils), the six collège levels, 10 subjects
× 2 semesters × 2 test slots = 40 marks a pupil (7.5 M pupils at 300 M marks), ~2 % of marks
not entered and ~1 % justified absences, marks in the warehouse's order (school by school, one
NotesCC workbook per class × subject × semester, pupil by pupil); the 3rd-year pupils sit the
collège certificate (5 local and 8 regional papers). Then, each in a process of its own so that
its peak resident memory is its own:

* ours: tasks/evaluation_batches.evaluate_warehouse, from the Delta tables to the four result
  tables (subject, semester, annual, exam results) written back to the warehouse, school batch
  by school batch (``--batch-rows``, default the setting ``evaluation_batch_rows``), the
  subject, semester and annual results computed by DuckDB SQL (tasks/results_sql.py, held to
  the setting ``evaluation_memory_mb``) straight from the batch's Parquet files
  (tasks/evaluation_duckdb.py);
* baseline: DuckDB's bare ``SELECT student_code, subject_code, semester, avg(mark) ... GROUP BY``
  over the same Parquet files (the aggregation alone: nothing written);
* floor (printed under each size; ``measure_floor``): the parts of ours that any evaluation
  writing these four tables pays, each alone in ours' batches: ours' SQL for the subject,
  semester and annual results with nothing written (each level a DuckDB table), copying those
  tables to Parquet (no Delta), and delta-rs writing the four tables as ours wrote them.

Targets (issue 17): 300 M marks in ≤ 10 min and ≤ 8 GB peak on the 2-core machine, ours ≤ 1.2×
DuckDB's GROUP BY. CPU seconds (all threads) and the 1-minute load average before → after are
printed beside every wall time. ``--quick``: 3 M marks. ``--keep --workdir DIR`` keeps the
generated warehouses in DIR/national-<size>M and reuses them (their result tables removed
before each measure); ``--build-only`` generates them without measuring. ``run(quick)``
returns the rows for benchmarks/report.py.

Round of 2026-12-06, 16:45-18:15 UTC (the machine shared by five engineers: load 4-11, so
the walls say little; CPU seconds compared). The evaluation's code is unchanged this round:
what it measured is where the CPU goes, the floor above, and the ideas below, dropped.

Where a 40 M run's CPU goes (6 batches of up to 8 M marks; the writes made synchronous in a
profiling script so that each step's process CPU is its own, every step timed directly; load
6.6; 55.3 s in all, the same code with its writer thread 59.8-62.5 s at load 4-10):

    the subject query (sums per pupil × subject × semester from the batch's Parquet files,
      the subject results, handed to Arrow)                                  20.4 s
    the semester and annual queries (from the Arrow subject results)           8.8 s
    delta-rs writes 15.6 s: subject results 11.0, semester 2.0, annual 1.6, exam 1.5
    the exams (polars) 5.2, reading the batch's exam marks 1.1                6.3 s
    the rows of other years read before each write (24 scans)                 0.75 s
    the years present (school_year of every mark, streamed)                  0.65 s
    the rest (the Delta log's files, enrolments, the restriction's check on the annual rows,
      the (year, school) pairs, the held groups, the connection)              0.8 s

10 M (2 batches, 13.4 s, load 3.6): subject 5.1, semester + annual 2.2, writes 3.5, exams 1.6,
the rest 0.6. One 8 M batch's pieces in one process (load 3-7): the bare 3-key GROUP BY
1.1-1.4 s CPU (1.4 handed to Arrow); ours' subject query 3.7-3.9 handed to Arrow, its 7-key
grouping alone (a count of the groups) 1.8, the hand-over of its 4 M rows 0.6-0.85; the
semester query 1.35-1.5 (its 6-key grouping alone 0.6; the ranks, sums and hand-over the
rest), the annual 0.3.

The floor (``--child floor``; its SQL gives ours' rows exactly: on a batch of the 10 M
warehouse, EXCEPT ALL both ways between its three tables and those ours wrote: 0 rows):

    marks  ours wall (CPU)   GROUP BY  SQL alone (× GROUP BY)  Parquet  Delta writes   load
    10 M   23.5 s (14.9 s)   1.5 s      6.5 s (4.2×)          3.1 s    4.2 s (2.7×)   5.3→5.8
    10 M   19.8 s (13.5 s)   1.5 s      6.3 s (4.2×)          3.1 s    3.7 s (2.5×)   5.2→5.9
    10 M   24.2 s (15.5 s)   1.7 s      6.7 s (4.1×)          3.1 s    4.1 s (2.5×)   7.1→7.3
    40 M   53.4 s (55.9 s)   7.3 s     29.3 s (4.0×)         12.8 s   15.7 s (2.2×)   5.3→6.1
    (CPU seconds but ours' wall; the GROUP BY's wall 1.2-3.1 s at 10 M, 8.1 s at 40 M)

(the previous code's benchmark in the same minutes, the same evaluation: 10 M 13.5 s and
14.6 s CPU, 8.0-8.7× the GROUP BY; 40 M 58.6 s CPU, 102.9 s wall at load 5.3→8.6, 7.0×.)

So ≤ 1.2× is out of reach by construction: ours' SQL alone, with nothing written and nothing
handed to Python, takes 4× the bare GROUP BY's CPU (it groups by 7 keys, not 3, reads slot,
absence and mark scale, sums exactly, then groups the subject results again for the semester
and annual results, with ranks), and delta-rs writing the four tables alone 2.2-2.7×; ours is
their sum and the exams (~10 %), within the noise: nothing big is left between ours and its
floor. Materialising the results in DuckDB and copying them to Parquet costs about what ours'
hand-over to Arrow and delta-rs' writes cost, so another writer would not lower it either.

Measured this round and dropped (CPU seconds):
- the writer thread against synchronous writes (in-process, alternated): 40 M 60.0 against
  59.8 s CPU (wall 75 against 127 s, load 4-8), 10 M 14.4, 14.4 against 16.3, 13.7: the
  overlap costs no CPU and saves wall; kept;
- the batch size (``--batch-rows``; 40 M, load 6-11): 16 M marks 65.4 s CPU, peak 4,440 MB;
  8 M (the setting) 61.1-62.5 s, 2,657-2,989 MB; 4 M 60.2-61.1 s, 1,691-1,708 MB; 2 M 59.8 s,
  1,187 MB: larger batches cost more (larger hash tables), smaller ones the same CPU in less
  memory (the setting, in ground/settings.py, left to the lead);
- a query per school instead of per batch (100 schools): 7.3-8.2 s against 2.3-2.4 s in one
  query (~55 ms of planning a query);
- the subject results kept in a DuckDB table for the semester query (1.1 s instead of 1.35-1.5
  from Arrow) cost as much to build as the hand-over (3.7-3.95 s) and then 0.85 s more to
  hand to Arrow for the writes;
- the subject query taken apart (one 8 M batch, each result consumed by a hash of its rows
  in DuckDB, nothing handed over; load 4-6): the 7-key grouping with one sum 1.9-2.0 s, six
  aggregates of the raw columns 2.55, ours' sums 3.05-3.26 (the level's scale by a CASE
  instead of the join with the levels 3.04-3.07, the same rows; no scale at all 2.9-2.96),
  with the subject results' finish 3.4-3.65, handed to Arrow 3.8-4.15: no piece worth more
  than ~0.5 s to rewrite, and the exact DECIMAL sums are what keeps the bits night after night;
- the hand-over by DuckDB's to_arrow_table or in batches of 1 M rows instead of 128 k: 0.6-0.8
  against 0.83-0.84 s (noise; the streamed reader keeps the memory limit's spill);
- the exams given only the annual rows at an exam level or of pupils with a paper (66 k of
  199 k rows a batch; the other rows decide nothing): 0.90-0.99 against 1.00-1.07 s a batch
  (alternated in one process, load 6.6), the same four tables on the 10 M warehouse and on
  generated provinces of 12 schools, clean and with defects (batches of one school and of the
  setting): ~0.1 s a batch, under 1 % of the run, not worth a filter whose every reader must
  be kept (tests/tasks/test_evaluation_duckdb.py now holds a batch's exam candidates to the
  whole warehouse's when the annual rows and the papers disagree on the level).

Figures (2026-12-05, the 2-core machine shared with four other engineers; batches of 8 M
marks, DuckDB held to 2,048 MB; the warehouses kept in /tmp/national).

The lead's runs at the end of that round (2026-12-06, 07:15-07:35 UTC, nothing else running,
load 0.6-3.6; the machine slower than at 01:00 or 04:00, see benchmarks/report.py; "CPU" in the
call; before = 563703a through PYTHONPATH, in the same hour):

    marks   before: wall (CPU)     after: wall (CPU), two runs        DuckDB GROUP BY wall
    10 M     10.4 s (17.5 s)       10.0 s (17.4 s), 9.6 s (16.7 s)     0.9-1.1 s
    40 M     37.3 s (70.2 s)       39.0 s (73.0 s), 38.6 s (73.0 s)    3.6-5.1 s
    100 M         -                97.5 s (184.7 s), peak 2,705 MB    13.7 s
    300 M         -               306.9 s (577.8 s), peak 2,921 MB    39.3 s (peak 12,160 MB)

So on a quiet machine the whole run shows no gain from the changes below (10 M -1 to -5 %,
40 M +4 % in CPU): the per-step gains measured at load 3-7 do not add up to a measurable one.
Ratio to the bare GROUP BY: 9.1 / 7.7 / 7.1 / 7.8× in wall (<= 1.2× missed); 300 M within
10 min and 8 GB.

Latest round (2026-12-06, 05:35-06:25 UTC, the machine shared: load 2.6-7.2; "CPU" is
evaluate_warehouse's alone, all threads; before = the tree at 563703a (git archive), run back to
back with after on the same kept warehouses):

    marks   before: wall (CPU)   peak RSS    after: wall (CPU)    peak RSS   load
    10 M     33.5 s (18.2 s)     1,873 MB     20.8 s (16.3 s)     1,947 MB   1.8→5.9 (not paired)
    10 M     16.2 s (16.3 s)     1,877 MB     15.9 s (14.8 s)     1,856 MB   3.3→3.5
    10 M     15.5 s (15.3 s)     1,975 MB     16.3 s (14.4 s)     1,948 MB   2.6→3.9
    10 M     16.5 s (15.3 s)     1,875 MB     25.2 s (15.9 s)     1,832 MB   3.8→4.8
    40 M     76.2 s (74.0 s)     2,817 MB     81.7 s (61.3 s)     2,665 MB   4.8→7.2
    DuckDB's bare GROUP BY meanwhile: 10 M 1.2-4.6 s wall, 1.5-2.3 s CPU;
    40 M 8.8-12.9 s wall, 8.5-10.2 s CPU

    the steps in one process, the writes not overlapped (a profiling script, 10 M, load 5.1-5.6):
    before 16.6, 18.0 s CPU; after 16.0, 14.8 s

What changed: (a) the restriction to active enrolments is checked on the annual results (one
row a pupil: its keys school, year, pupil and level are the restriction's keys, so every group
was kept when each annual row is) instead of joining the enrolments to every pupil × subject ×
semester group; only when a group is held are the groups restricted and the semester and annual
results computed again (tests/tasks/test_evaluation_duckdb.py holds pupils back in a ranked
class); (b) the exams look for expected papers absent from the data (an anti-join on 6 string
keys, 0.5-0.6 s a batch) only when fewer papers than expected are present, counted by a
semi-join (the papers are unique by their keys): a batch's exams 1.34 -> 0.91 s CPU; (c) one
join of the rules a group instead of two (the weight with the level's default already applied);
(d) is_exempt by bool_and instead of counting the excused slots. CPU: 10 M about -5 %, within the
machine's noise (the pairs -9 %, -6 %, +4 %: 14.4-16.3 against 15.3-18.2 s; the second batch is
2 M marks there, where each table's per-file write cost weighs most), 40 M -17 % (74.0 -> 61.3
s). Ratio to the bare GROUP BY in CPU: 10 M 7.9-8.5x, 40 M 7.2x (was 8-10x, 8.4-8.9x): the 1.2x
target is still missed by far.

Where an 8 M-mark batch's CPU goes now (DuckDB queries measured alone, load 3-6): the sums per
pupil × subject × semester 2.7 s (the bare 7-key GROUP BY of the same marks 1.5-1.7: the rest
is reading slot, absence and mark_scale and the row expressions, not the aggregates: two sums
and a count alone take 3.19 s where the six take 3.33), the subject results' finish 0.6-0.9, the
hand-over of its 4 M rows to Arrow 0.9, the semester results 0.9-1.1, the annual 0.25; the
writes ~3 (the subject table 2.0-2.8; each small table ~0.25 s of delta-rs' cost per file, one
per school: the semester results written unpartitioned take 0.14 s, partitioned 0.38), the
exams 0.9 (polars) and their reading 0.15.

Measured this round and not adopted (one 8 M batch of the 10 M warehouse, CPU seconds): the
semester step's counts from pre-computed flags or its points in BIGINT 1.00-1.03 s against 1.05;
the subject step's six counts packed into one BIGINT sum 3.79 against 3.33; DuckDB's Arrow
string views (arrow_output_version 1.5, produce_arrow_string_view) 4.97-5.28 against 4.23-5.30
for the subject results' hand-over, and 0.96 s more to cast them back to the table's strings;
rows handed to delta-rs sorted by school (a sort on the school's dictionary indices, 0.41 s) or
one record batch a school: 2.08-2.86 s against 2.35-2.80 (noise); delta-rs' per-file cost
unchanged by compression (none 0.25 s against ZSTD 0.27 for a batch's annual results),
target_file_size, no checkpoint hook or no statistics; DuckDB's memory at 6,000 MB instead of
2,048 for the subject query: 4.09-4.63 against 4.44-4.99 s (no spill seen either way).

The round before (2026-12-06, 02:20-03:15 UTC, the machine shared: load 8-11, so the walls say
little; CPU seconds "in call" are evaluate_warehouse's alone, "process" adds the child's start,
~2 s of it Prefect's import, which the earlier figures below included; before: the tree at
73e3bbf~1 (git archive), each size run back to back, before then after):

    marks   before: wall (process CPU)  peak RSS   after: wall (CPU in call; process)  peak RSS
    10 M     49.5 s (18.9 s)            1,832 MB    32.9 s (16.5 s; 18.6 s)           1,950 MB
    10 M     34.3 s (20.1 s)            1,937 MB    28.4 s (15.7 s; 17.7 s)           1,919 MB
    10 M     14.1 s (17.9 s)            2,335 MB    20.7 s (16.1 s; 18.1 s)           1,987 MB
    10 M     12.2 s (20.5 s)            1,984 MB    23.3 s (16.5 s; 18.4 s)           1,896 MB
    10 M     30.3 s (19.7 s)            1,886 MB    25.0 s (16.1 s; 18.0 s)           1,917 MB
      (these three pairs at load 3.7-5.6; the walls swing with the others' work, both ways)
    40 M    116.1 s (77.5 s)            2,600 MB   125.1 s (69.7 s; 71.6 s)          3,124 MB
    40 M    (each table's rows let go once written, load 5.4→7.1)  64.8 s (68.2 s; 70.2 s)  2,814 MB
    DuckDB's bare GROUP BY meanwhile: 10 M 1.6-5.0 s wall, 1.6-2.2 s CPU; 40 M 4.3-19.3 s, 8.2-8.3 s

What changed: (a) a batch's writes (delta-rs' writer: one thread) and its exams (polars) run in
a writer thread while DuckDB computes the next batch, one batch written at a time, so that a
core is not left idle while one thread writes (the gain shows only on a quiet machine, not
measured here, and is small: the quiet run below used ~1.7 of the 2 cores on average, (17.2 - ~2
s of start) / 8.9 s at 10 M, so ~15 % of wall at most); the price is a second batch's results in
memory (peak +0-120 MB at 10 M, +214 MB at 40 M once the writer lets each table's rows go after
writing them, +524 before; it follows the batch, not the country; at load 8-11 the overlap's
contention made the 40 M wall worse); (b) the exams: no exam computed for levels none of the
batch's pupils is at, papers grouped only when one is entered twice, the missing papers found by
an anti-join: 2.0 -> 1.3 s CPU for a batch's 863 k exam marks; (c) the (year, school) pairs from
the annual results instead of a DISTINCT over every group; (d) runs of one semester go through
the DuckDB batches too (they took the polars path). CPU: about -10 % (10 M: process 18.9-20.1 ->
17.7-18.6 s; 40 M: 77.5 -> 70.2-71.6 s). Ratio to the bare GROUP BY, CPU in call: 10 M 8-10x, 40
M 8.4-8.9x: the 1.2x target is missed by far, and cannot be met with these four tables written:
writing the subject results alone costs more than the bare GROUP BY (below).

The writer thread against the same code writing synchronously (evaluate_warehouse in-process
on the 10 M warehouse, alternated, 5 runs each, load 4.7-6.7): wall 13.4-22.5 s (median 16.5)
against 9.4-29.9 s (median 22.3), CPU 15.3-16.8 s against 15.9-17.7 s: no harm seen, the wall
gain lost in the machine's noise.

Measured and not adopted (one batch of 8 M marks of the 10 M warehouse, CPU seconds, load
5-10): writing its 4 M subject-result rows takes 2.0 s with delta-rs (ZSTD 1; LZ4 1.8, Snappy
2.1, statistics off 2.1, row groups of 64 k 2.2, rows sorted by school 2.3), 3.7-4.2 s with
DuckDB's COPY ... PARTITION_BY (school_code) (2.3-2.9 s unpartitioned, which a table
partitioned by school cannot take), 17 s with pyarrow's write_dataset on the rows as DuckDB
gives them and 1.6 s + 1.65 s of sorting on rows sorted by school: so DuckDB- or
pyarrow-written files committed as add actions would not be faster, and the writes stay with
delta-rs. The 7-key aggregation with exact sums: 3.5-3.8 s whatever the sums' type (DECIMAL
3.7, BIGINT micro-units 3.9, DOUBLE 3.9), without the levels' join 3.8, grouped by 4 keys with
any_value of the others 3.3 (and inexact for a pupil moved within a semester); the bare 3-key
GROUP BY of the same marks to Arrow 1.5, 7 keys 2.2. The semester step's points in BIGINT
instead of DECIMAL: 1.4 s either way. What one 8 M batch costs now: the subject results 4.3-5.5
s (the aggregation ~3.6, the enrolment flag and the hand-over to Arrow the rest), the semester
results 1.1-1.9, the annual 0.5, the writes ~4.4 (the subject table 2.0-2.5), the exams ~1.7.

Quiet run of this code (2026-12-06, 00:50-00:59 UTC, nothing else running, load 1.8-2.1;
the lead's run for the issue's note):

    marks   ours wall (CPU)       peak RSS   DuckDB GROUP BY wall (CPU)   peak RSS   ratio (CPU)
    10 M      8.9 s (17.2 s)      2,062 MB     0.8 s  (1.9 s)              633 MB   11.1× (9.1×)
    40 M     36.5 s (65.6 s)      2,818 MB     3.8 s  (7.7 s)            2,132 MB    9.5× (8.5×)
    100 M    89.8 s (158.2 s)     2,938 MB    10.6 s (20.7 s)            5,146 MB    8.5× (7.6×)
    300 M   298.4 s (504.6 s)     3,038 MB    38.6 s (68.2 s)           13,077 MB    7.7× (7.4×)

against the quiet run of the previous code (below): 300 M 440.8 s -> 298.4 s, peak 5,858 ->
3,038 MB (≤ 10 min and ≤ 8 GB met with room; the peak follows the batch, not the country);
ratio 12.6-15.9× -> 7.7-11.1× (≤ 1.2× still missed).

Latest (the batch stays in DuckDB: its marks read from the published version's Parquet files,
summed and flagged enrolled per pupil × subject × semester in one query that also gives the
subject results, the restriction to active enrolments applied to these groups; semester and
annual from them as Arrow with no polars hop; ranks and class sizes in one window; result
tables written at ZSTD level 1), 23:57-00:02 UTC, load 5-7 (others' tests running: walls
inflated, compare the CPU seconds; three 10 M runs give the spread):

    marks   ours wall (CPU)       peak RSS   DuckDB GROUP BY wall (CPU)   peak RSS   load
    10 M     21.0 s (17.6 s)      1,951 MB     1.9 s  (2.0 s)              678 MB   6.2→5.7
    10 M     23.2 s (18.1 s)      1,965 MB     2.0 s  (2.0 s)              699 MB   6.5→6.2
    10 M     40.9 s (20.1 s)      1,979 MB     2.2 s  (2.0 s)              705 MB   5.1→7.4
    40 M    126.7 s (71.4 s)      2,636 MB     9.7 s  (7.8 s)            2,066 MB   7.2→6.7

against, the same day before it (the marks read with polars, restricted by
tasks/evaluable.py, each step's results through polars and back): 10 M 24.1 s CPU, 4,507 MB
peak at load 0.5→4.5 (23.0 s CPU and 4,915 MB in the quiet run below); 40 M 90.1 s CPU,
5,673 MB (quiet run below). So about -25 % CPU at 10 M (17.6-20.1 against 23.0-24.1) and
-21 % at 40 M (71.4 against 90.1), peak RSS less than half (it follows the batch: 2 batches of
5 M marks at 10 M, 6 of up to 8 M at 40 M). Ratio to the bare GROUP BY in CPU: 8.9-10.2× at
10 M, 9.1× at 40 M (was 12.5-13.9×): the 1.2× target is still missed by far. Where the CPU
goes now (10 M, 16.3 s inside the process, by step, load 5.6; the measure above adds the
child's start-up): the batches in DuckDB 8.6 s (per 5 M-mark batch: the sums per pupil ×
subject × semester from Parquet with the subject results ~2.8, DuckDB's 7-key hash
aggregation with exact sums where the bare 3-key GROUP BY of the same marks takes ~0.8; the
semester results 0.8; the annual 0.2), the writes of the four tables 4.9 (the subject table's
5 M rows 2.5 of it: delta-rs' Parquet writer; its settings, sorting by school, dictionaries
off, moved it by less than the noise), the exams 2.1 (polars), the rest 0.7. The writes
alone take twice the bare GROUP BY: 1.2× cannot be reached while the four tables are written
with delta-rs. 100 M and 300 M not re-run with this change (left to the lead on a quiet
machine).

Before that change (DuckDB SQL with exact sums; a batch's writes read only its schools'
files), load 1.6-2.9:

    marks   ours wall (CPU)       peak RSS   DuckDB GROUP BY wall (CPU)   peak RSS   load
    10 M     21.5 s (26.0 s)      4,580 MB     1.0 s  (1.9 s)              644 MB   1.6→2.1
    100 M   166.0 s (230.3 s)     5,877 MB    16.3 s (20.9 s)            4,969 MB   2.1→2.7
    300 M   589.5 s (709.6 s)     6,065 MB    31.7 s (59.2 s)           11,484 MB   1.8→2.3

300 M marks (7.5 M pupils, 38 batches): ≤ 10 min and ≤ 8 GB met, narrowly (load about 2).

The same code again at the end of the day, nothing else running (load 1.7-2.5; the lead's run
for the issue's note, 22:04-22:16 UTC):

    10 M     12.2 s (23.0 s)      4,915 MB     0.8 s  (1.8 s)              678 MB   1.7→1.7
    40 M     50.8 s (90.1 s)      5,673 MB     3.2 s  (6.5 s)            2,032 MB   1.7→2.2
    100 M   132.4 s (231.5 s)     5,711 MB    10.5 s (20.8 s)            5,095 MB   2.2→2.4
    300 M   440.8 s (751.0 s)     5,858 MB    34.1 s (62.9 s)           11,473 MB   2.1→2.0

The same formulas before the writes read only their schools' files (every write built a
dataset of the whole table: CPU per million marks grew from 2.5 at 10 M to 4.0 at 300 M), at
load 6-13, so the walls are 2-3× the CPU seconds:

    10 M     61.8 s (25.3 s)      4,638 MB     2.6 s  (2.0 s)              671 MB   7.8→9.7
    40 M    321.3 s (108.4 s)     4,944 MB    10.8 s  (8.3 s)            2,045 MB   9.5→10.7
    100 M   721.1 s (307.1 s)     5,298 MB    24.5 s (21.2 s)            4,921 MB  10.3→7.3
    300 M  1472.8 s (1205.3 s)    6,157 MB    34.4 s (64.4 s)           12,451 MB   6.0→1.3

Growth: peak RSS follows the batch, not the country (4.6 GB at 10 M, 5.9 at 100 M, 6.1 at
300 M, where DuckDB's bare GROUP BY takes 11.5 GB); CPU 2.3-2.6 s per million marks at every
size. Against that GROUP BY the ratio is 11-14× in CPU (10-22× in wall): the 1.2× target is
missed by far. Where the CPU goes (10 M marks, 25.9 s): the subject results 8.0 s (DuckDB's
7-key aggregation with exact sums ~6 s, Arrow hand-overs the rest), writing the four tables
5.0 s (Delta, partitioned by school), the exams 2.7 s (polars), the restriction to active
enrolments 2.8 s, the semester results 2.5 s, reading the marks 1.1 s: the bare GROUP BY is
one of these steps.

    before this change (polars' group_by, batches of 8 M marks; load 14-20): 10 M 85.9 s,
    3,557 MB; 40 M 341.4 s, 4,117 MB (CPU not recorded then; 29.2 s CPU for 10 M measured
    on 2026-12-05 at load 8-10 before the change, 25.9 s after). 100 M and 300 M not run.
    Earlier still (the flow's in-memory path, whole warehouse at once): 10 M 318.0 s,
    7,733 MB; 40 M would need ~30 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LEVELS = ("1APIC", "2APIC", "3APIC", "1ASCG", "2ASCG", "3ASCG")
EXAM_LEVELS = ("3APIC", "3ASCG")
PUPILS_PER_CLASS = 40
CLASSES_PER_SCHOOL = 30
PUPILS_PER_SCHOOL = PUPILS_PER_CLASS * CLASSES_PER_SCHOOL
SUBJECTS = 10
SLOTS = 2
MARKS_PER_PUPIL = SUBJECTS * 2 * SLOTS
YEAR = "2024/2025"
SCHOOLS_PER_COMMIT = 200
QUICK_SIZES = (3_000_000,)
SIZES = (10_000_000, 40_000_000, 100_000_000, 300_000_000)
TARGET = "300 M marks: ≤ 600 s and ≤ 8,192 MB peak"


# ---- the warehouse ------------------------------------------------------------------------------


def _school_code(index: np.ndarray) -> pl.Series:
    return pl.Series(index).cast(pl.Utf8).str.zfill(6).str.replace("^", "S")


def _pupils(first_school: int, schools: int) -> pl.DataFrame:
    """The pupils of ``schools`` schools from ``first_school`` on, class by class."""
    index = np.arange(
        first_school * PUPILS_PER_SCHOOL, (first_school + schools) * PUPILS_PER_SCHOOL
    )
    klass = index // PUPILS_PER_CLASS
    level = np.array(LEVELS)[klass % len(LEVELS)]
    return pl.DataFrame(
        {
            "school_code": _school_code(index // PUPILS_PER_SCHOOL),
            "school_year": pl.Series([YEAR] * len(index)),
            "class_code": pl.Series(level)
            + "-"
            + pl.Series(klass % CLASSES_PER_SCHOOL + 1).cast(pl.Utf8),
            "level_code": pl.Series(level),
            "student_code": pl.Series(index).cast(pl.Utf8).str.zfill(9).str.replace("^", "K"),
        }
    )


def _subject_codes() -> dict[str, list[str]]:
    from schemas.evaluation_rules import load_rules

    rules = load_rules()
    return {
        level: [code for (lvl, code) in rules.subjects if lvl == level][:SUBJECTS]
        for level in LEVELS
    }


def _marks(pupils: pl.DataFrame, codes: dict[str, list[str]], seed: int) -> pl.DataFrame:
    """Marks in the warehouse's order: per school, one workbook per class × subject ×
    semester in a random submission order, pupil by pupil, a row per slot."""
    rng = np.random.default_rng(seed)
    classes = pupils.select("school_code", "class_code", "level_code").unique(maintain_order=True)
    files = classes.join(pl.DataFrame({"subject_no": np.arange(SUBJECTS)}), how="cross").join(
        pl.DataFrame({"semester": pl.Series([1, 2], dtype=pl.Int8)}), how="cross"
    )
    files = files.with_columns(pl.Series("_draw", rng.random(files.height))).sort(
        "school_code", "_draw"
    )
    files = files.with_row_index("submission_id").with_columns(
        pl.col("submission_id").cast(pl.Int64)
    )
    rows = files.join(pupils, on=["school_code", "class_code", "level_code"], maintain_order="left")
    rows = rows.join(
        pl.DataFrame({"slot": [f"test{i + 1}" for i in range(SLOTS)]}), how="cross"
    ).with_columns(pl.int_range(pl.len()).over("submission_id").add(17).alias("sheet_row"))
    table = pl.DataFrame({"level_code": list(codes), "_codes": [codes[level] for level in codes]})
    height = rows.height
    draw = rng.random(height)
    mark = np.round(rng.uniform(0, 20, height) * 4) / 4
    return (
        rows.join(table, on="level_code", how="left", maintain_order="left")
        .with_columns(pl.col("_codes").list.get(pl.col("subject_no")).alias("subject_code"))
        .select(
            "school_code",
            "school_year",
            "class_code",
            "level_code",
            "student_code",
            "subject_code",
            "semester",
            "slot",
            pl.Series("mark", np.where(draw >= 0.03, mark, np.nan)).fill_nan(None),
            pl.when(pl.Series((draw >= 0.02) & (draw < 0.03)))
            .then(pl.lit("justified"))
            .otherwise(pl.lit(None, pl.Utf8))
            .alias("absence"),
            pl.lit(20.0).alias("mark_scale"),
            "submission_id",
            pl.lit("Sheet1").alias("sheet"),
            pl.col("sheet_row").cast(pl.Int64),
        )
    )


def _exam_marks(pupils: pl.DataFrame, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sitting = pupils.filter(pl.col("level_code").is_in(EXAM_LEVELS))
    papers = pl.DataFrame(
        {
            "exam": ["local"] * 5 + ["regional"] * 8,
            "subject_code": [
                *("0010", "0020", "0040", "0050", "0060"),
                *("0010", "0020", "0040", "0050", "0060", "0070", "0080", "0110"),
            ],
        }
    )
    rows = sitting.join(papers, how="cross")
    absent = rng.random(rows.height) < 0.01
    return rows.select(
        "school_code",
        "school_year",
        "class_code",
        "student_code",
        "exam",
        pl.lit("normal").alias("session"),
        "subject_code",
        pl.Series(
            "mark", np.where(absent, np.nan, np.round(rng.uniform(0, 20, rows.height), 2))
        ).fill_nan(None),
        pl.Series("absent", absent),
        pl.lit(20.0).alias("mark_scale"),
        pl.lit(0, pl.Int64).alias("submission_id"),
        pl.lit("").alias("sheet"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("sheet_row"),
    )


def _enrollments(pupils: pl.DataFrame) -> pl.DataFrame:
    return pupils.select(
        "school_code",
        "school_year",
        "class_code",
        "level_code",
        "student_code",
        pl.lit("active").alias("status"),
    )


def build_warehouse(home: Path, marks: int, seed: int = 7) -> dict[str, Any]:
    """A home whose published night holds a country of about ``marks`` marks."""
    from massar.home import init_home
    from warehouse.control import ControlDatabase
    from warehouse.delta import replace_school_rows, table_versions
    from warehouse.nights import finish_night, start_night

    settings = init_home(home)
    codes = _subject_codes()
    schools = max(1, round(marks / MARKS_PER_PUPIL / PUPILS_PER_SCHOOL))
    rows = 0
    for first in range(0, schools, SCHOOLS_PER_COMMIT):
        count = min(SCHOOLS_PER_COMMIT, schools - first)
        pupils = _pupils(first, count)
        written = pupils.get_column("school_code").unique().to_list()
        frame = _marks(pupils, codes, seed + first)
        rows += frame.height
        replace_school_rows(settings.warehouse, "marks", written, frame.to_arrow())
        del frame
        replace_school_rows(
            settings.warehouse, "exam_marks", written, _exam_marks(pupils, seed + first).to_arrow()
        )
        replace_school_rows(
            settings.warehouse, "enrollments", written, _enrollments(pupils).to_arrow()
        )
    database = ControlDatabase(settings.resolved_database_url)
    try:
        night = start_night(database)
        finish_night(database, night, table_versions(settings.warehouse), {})
    finally:
        database.dispose()
    size = sum(f.stat().st_size for f in (settings.warehouse / "marks").rglob("*.parquet"))
    return {
        "marks": rows,
        "schools": schools,
        "pupils": schools * PUPILS_PER_SCHOOL,
        "mb": size / 2**20,
    }


# ---- the measures (each in its own process) --------------------------------------------------


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would keep the parent's across
    the fork and exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process (all its threads) and of its children (the measures give
    those of the measured call; the process' start, imports of Prefect among them, apart)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_ours(home: Path, batch_rows: int | None) -> dict[str, Any]:
    from ground.settings import load_settings
    from schemas.evaluation_rules import load_rules
    from tasks.evaluation_batches import evaluate_warehouse

    settings = load_settings(home)
    rules = load_rules()
    started, cpu = time.perf_counter(), _cpu()
    run = evaluate_warehouse(settings, rules, batch_rows=batch_rows)
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "cpu": _cpu() - cpu,
        "process_cpu": _cpu(),
        "peak_mb": _peak_mb(),
        "rows": run.rows,
        "batches": run.batches,
    }


def measure_baseline(home: Path) -> dict[str, Any]:
    import duckdb

    files = str(home / "warehouse" / "marks" / "**" / "*.parquet")
    started, cpu = time.perf_counter(), _cpu()
    connection = duckdb.connect()
    groups, _ = connection.execute(
        "SELECT count(*), sum(average) FROM (SELECT student_code, subject_code, semester, "
        f"avg(mark) AS average FROM read_parquet('{files}', hive_partitioning = true) "
        "GROUP BY ALL)"
    ).fetchone()  # type: ignore[misc]
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "cpu": _cpu() - cpu,
        "process_cpu": _cpu(),
        "peak_mb": _peak_mb(),
        "groups": groups,
    }


def measure_floor(home: Path, batch_rows: int | None) -> dict[str, Any]:
    """The parts of ours that no evaluation writing these tables avoids, each alone, in ours'
    school batches: ``compute``, DuckDB running ours' SQL (tasks/results_sql.py) for the
    subject, semester and annual results of every mark, each level materialised in a DuckDB
    table (no restriction to enrolments, no exams, nothing handed to Python); ``parquet``,
    copying those tables to Parquet files (no Delta); ``writes``, the four
    result tables as ours just wrote them, written again with
    warehouse/delta.replace_school_rows into a scratch warehouse (reading them back is not
    counted). Run after ours, whose tables it reads."""
    from ground.settings import load_settings
    from schemas.evaluation_rules import load_rules
    from tasks.evaluation_batches import RESULT_TABLES, batches_of, evaluation_connection
    from tasks.evaluation_duckdb import MARK_COLUMNS
    from tasks.results_sql import (
        annual_query,
        semester_query,
        subject_finish_query,
        subject_sums_query,
    )
    from warehouse.delta import partition_files, partition_rows, read_table, replace_school_rows

    settings = load_settings(home)
    rules, warehouse = load_rules(), settings.warehouse
    batches = batches_of(
        partition_rows(warehouse, "marks"), batch_rows or settings.evaluation_batch_rows
    )
    files = partition_files(warehouse, "marks")
    scratch = Path(tempfile.mkdtemp(prefix="floor-", dir=home))
    connection = evaluation_connection(settings)
    spent = dict.fromkeys(("compute_wall", "compute_cpu", "parquet_wall", "parquet_cpu"), 0.0)

    def timed(step: str, sql: str) -> None:
        started, cpu = time.perf_counter(), _cpu()
        connection.execute(sql)
        spent[f"{step}_wall"] += time.perf_counter() - started
        spent[f"{step}_cpu"] += _cpu() - cpu

    for number, batch in enumerate(batches):
        listing = ", ".join(f"'{path}'" for school in batch for path in files[school])
        marks = (
            f"(SELECT {', '.join(MARK_COLUMNS)} FROM read_parquet([{listing}], "
            "hive_partitioning = true, hive_types = {'school_code': VARCHAR}))"
        )
        sums = f"({subject_sums_query(marks, rules, MARK_COLUMNS)})"
        steps = (
            ("floor_subjects", subject_finish_query(sums, rules)),
            ("floor_semesters", semester_query("floor_subjects")),
            ("floor_annual", annual_query("floor_semesters", rules)),
        )
        for name, sql in steps:
            timed("compute", f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            target = scratch / f"{name}-{number}.parquet"
            timed("parquet", f"COPY {name} TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    connection.close()
    writes_wall = writes_cpu = 0.0
    for table in RESULT_TABLES:
        stored = read_table(warehouse, table)
        for batch in batches:
            codes = pc.field("school_code").isin(pa.array(batch, pa.string()))
            rows = stored.to_table(filter=codes)
            started, cpu = time.perf_counter(), _cpu()
            replace_school_rows(scratch, table, batch, rows)
            writes_wall += time.perf_counter() - started
            writes_cpu += _cpu() - cpu
    shutil.rmtree(scratch)
    return {
        **spent,
        "writes_wall": writes_wall,
        "writes_cpu": writes_cpu,
        "peak_mb": _peak_mb(),
    }


def _child(kind: str, home: Path, batch_rows: int | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--workdir", str(home)]
    if batch_rows:
        command += ["--batch-rows", str(batch_rows)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the {kind} measure failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _load() -> float:
    return os.getloadavg()[0]


def measure_size(marks: int, workdir: Path, batch_rows: int | None, keep: bool) -> dict[str, Any]:
    home = workdir / f"national-{marks // 1_000_000}M"
    record = home / "built.json"
    if keep and record.exists():  # generated by an earlier run with --keep: reused
        built = json.loads(record.read_text())
        _without_results(home)
    else:
        if home.exists():
            shutil.rmtree(home)
        started, load = time.perf_counter(), _load()
        built = build_warehouse(home, marks)
        built["build_s"], built["build_load"] = time.perf_counter() - started, load
        record.write_text(json.dumps(built))
    before = _load()
    ours = _child("ours", home, batch_rows)
    load_ours = f"{before:.1f}→{_load():.1f}"  # the 1-minute load before and after
    before = _load()
    base = _child("baseline", home, None)
    load_base = f"{before:.1f}→{_load():.1f}"
    floor = _child("floor", home, batch_rows)  # reads the result tables ours wrote
    if not keep:
        shutil.rmtree(home)
    return {
        **built,
        "ours": ours,
        "baseline": base,
        "floor": floor,
        "load_ours": load_ours,
        "load_baseline": load_base,
    }


def _without_results(home: Path) -> None:
    """The warehouse as generated: an earlier measure's result tables removed (the night
    published names only the generated tables), so that every measure writes them afresh."""
    from tasks.evaluation_batches import RESULT_TABLES

    for table in RESULT_TABLES:
        shutil.rmtree(home / "warehouse" / table, ignore_errors=True)


def _label(marks: int) -> str:
    return f"{marks / 1_000_000:g} M marks"


def run(quick: bool, sizes: tuple[int, ...] | None = None, **options: Any) -> list[dict[str, Any]]:
    """One row per size for benchmarks/report.py: measure, ours_s, baseline_s, peak_rss_mb,
    target (and the load average and batches beside them)."""
    chosen = sizes or (QUICK_SIZES if quick else SIZES)
    workdir = Path(options.get("workdir") or tempfile.mkdtemp(prefix="massar-national-"))
    workdir.mkdir(parents=True, exist_ok=True)
    disk = shutil.disk_usage(workdir).free / 2**30
    rows = []
    for marks in chosen:
        needed = marks * 25 / 2**30 + 2  # ~25 bytes a mark on disk with the results
        if needed > disk:
            print(f"{_label(marks)}: skipped, {needed:.0f} GB of disk needed, {disk:.0f} free")
            continue
        figures = measure_size(
            marks, workdir, options.get("batch_rows"), options.get("keep", False)
        )
        ours, base, floor = figures["ours"], figures["baseline"], figures["floor"]
        row = {
            "measure": f"evaluation, {_label(figures['marks'])} ({figures['pupils']:,} pupils)",
            "ours_s": round(ours["wall"], 1),
            "baseline_s": round(base["wall"], 1),
            "peak_rss_mb": round(ours["peak_mb"]),
            "baseline_peak_rss_mb": round(base["peak_mb"]),
            "ours_cpu_s": round(ours["cpu"], 1),
            "baseline_cpu_s": round(base["cpu"], 1),
            "ours_process_cpu_s": round(ours["process_cpu"], 1),
            "baseline_process_cpu_s": round(base["process_cpu"], 1),
            "target": TARGET,
            "load_average": f"{figures['load_ours']} / {figures['load_baseline']}",
            "batches": ours["batches"],
            "marks_mb": round(figures["mb"]),
            "build_s": round(figures["build_s"], 1),
            "floor_compute_s": round(floor["compute_wall"], 1),
            "floor_compute_cpu_s": round(floor["compute_cpu"], 1),
            "floor_parquet_s": round(floor["parquet_wall"], 1),
            "floor_parquet_cpu_s": round(floor["parquet_cpu"], 1),
            "floor_writes_s": round(floor["writes_wall"], 1),
            "floor_writes_cpu_s": round(floor["writes_cpu"], 1),
        }
        rows.append(row)
        print(
            f"{row['measure']}: ours {row['ours_s']} s ({row['ours_cpu_s']} s CPU; "
            f"{row['ours_process_cpu_s']} s with the process' start), peak RSS "
            f"{row['peak_rss_mb']:,} MB ({row['batches']} batches) | DuckDB GROUP BY "
            f"{row['baseline_s']} s ({row['baseline_cpu_s']} s CPU; "
            f"{row['baseline_process_cpu_s']} s with the process' start), peak RSS "
            f"{row['baseline_peak_rss_mb']:,} MB | ratio {ours['wall'] / base['wall']:.2f}× wall, "
            f"{ours['cpu'] / base['cpu']:.2f}× CPU | "
            f"load average {row['load_average']} | marks on disk {row['marks_mb']:,} MB, "
            f"built in {row['build_s']} s",
            flush=True,
        )
        print(
            f"    floor, each alone: ours' SQL for subject, semester and annual results, "
            f"nothing written {row['floor_compute_s']} s ({row['floor_compute_cpu_s']} s CPU, "
            f"{floor['compute_cpu'] / base['cpu']:.2f}× the GROUP BY's); copying them to "
            f"Parquet (no Delta) {row['floor_parquet_s']} s ({row['floor_parquet_cpu_s']} s "
            f"CPU); the four tables' Delta writes {row['floor_writes_s']} s "
            f"({row['floor_writes_cpu_s']} s CPU, {floor['writes_cpu'] / base['cpu']:.2f}× "
            "the GROUP BY's)",
            flush=True,
        )
    return rows


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", help="mark rows, e.g. 10M,40M,100M,300M")
    parser.add_argument("--quick", action="store_true", help="3 M marks, under a minute")
    parser.add_argument("--batch-rows", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated warehouses")
    parser.add_argument("--child", choices=("ours", "baseline", "floor"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--build-only", action="store_true", help="generate (and keep) the warehouses, no measure"
    )
    args = parser.parse_args()
    if args.child:
        if args.child == "ours":
            result = measure_ours(args.workdir, args.batch_rows)
        elif args.child == "floor":
            result = measure_floor(args.workdir, args.batch_rows)
        else:
            result = measure_baseline(args.workdir)
        print(json.dumps(result))
        return
    sizes = tuple(_size(part) for part in args.sizes.split(",")) if args.sizes else None
    if args.build_only:
        workdir = args.workdir or Path(tempfile.gettempdir())
        for marks in sizes or SIZES:
            home = workdir / f"national-{marks // 1_000_000}M"
            if not (home / "built.json").exists():
                started = time.perf_counter()
                built = build_warehouse(home, marks)
                built["build_s"], built["build_load"] = time.perf_counter() - started, _load()
                (home / "built.json").write_text(json.dumps(built))
            print(home, (home / "built.json").read_text(), flush=True)
        return
    print(f"{os.cpu_count()} cores, load average {_load():.1f}; target {TARGET}", flush=True)
    run(args.quick, sizes, workdir=args.workdir, batch_rows=args.batch_rows, keep=args.keep)


if __name__ == "__main__":
    main()
