"""Validation of the schools' data: what is wrong with a submission, at which row and column,
in the words of the rule catalogue (schemas/rules.csv). One file per question:

    submission.py      what of a submission is accepted (normalise, row rules, accepted |
                       quarantined)                                   validate_submission
    model_check.py     which rows break the dataset's pandera model (a fast pre-check, pandera
                       on the failing rows only, threads on large frames)
    levels.py          which level and mark scale a row has (the levels reference)
    findings.py        what a finding is (columns, one per cell, messages in Arabic and French)
    cross_record.py    running the cross-record rules       cross_check_school / _province

The rules, one declaration each (id → placeholders, datasets needed, check or where raised):

    declared.py        the kinds of declaration
    file_rules.py      F001-F012, raised by the readers (connectors/), the ingest, the resends
    row_rules.py       R001-R010, checks of the dataset's model; R007 duplicates
    school_rules.py    X003-X011, X013, X014 over one school's datasets (X001 retired)
    province_rules.py  X002 over every school's list; X012, X015 raised by the consolidation
    all_rules.py       every rule of the catalogue and its declaration

Adding a rule: docs/decisions/0008-rules-declared-once.md.
"""
