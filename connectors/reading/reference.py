"""What the readers check values against: the levels and subjects of schemas/reference/ (or of
another folder), read once; and whether a subject code and a subject name agree (F010)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from schemas.reference_data import LEVELS, REFERENCE_DIR, SUBJECTS, reference_rows
from schemas.text import clean_text, match_key

__all__ = ["REFERENCE_DIR", "Reference", "reference", "subject_check"]


@dataclass(frozen=True, eq=False)
class Reference:
    """What the readers check values against (schemas/reference/ or another folder)."""

    level_by_label: dict[str, str]  # match_key of the Arabic label → level code
    level_codes: frozenset[str]
    subject_name: dict[str, str]  # subject code → Arabic name
    subject_codes: dict[str, frozenset[str]]  # match_key of the Arabic name → codes


@cache
def reference(folder: Path = REFERENCE_DIR) -> Reference:
    """levels.csv and subjects.csv of `folder`, read once (a missing file: nothing known)."""
    by_label: dict[str, str] = {}
    codes: set[str] = set()
    for row in reference_rows(LEVELS, folder):
        code = (row.get("level_code") or "").strip().upper()
        if code:
            codes.add(code)
            if row.get("label_ar"):
                by_label.setdefault(match_key(row["label_ar"]), code)
    names: dict[str, str] = {}
    by_name: dict[str, set[str]] = {}
    for row in reference_rows(SUBJECTS, folder):
        code = (row.get("subject_code") or "").strip()
        name = (row.get("name_ar") or "").strip()
        if code and name:
            names[code] = name
            by_name.setdefault(match_key(name), set()).add(code)
    return Reference(
        by_label, frozenset(codes), names, {k: frozenset(v) for k, v in by_name.items()}
    )


_name_key = lru_cache(maxsize=1 << 12)(match_key)
"""match_key memoised: every NotesCC file names its subject, among a few dozen."""


def subject_check(code: str | None, name: str | None, ref: Reference) -> str | None:
    """The disagreement between a subject code and a subject name in the reference, as a
    short phrase, or None (they agree, or one of them is unknown to the reference)."""
    if not code or not name:
        return None
    known_name = ref.subject_name.get(code)
    codes = ref.subject_codes.get(_name_key(name), frozenset())
    if code in codes or (known_name is None and not codes):
        return None
    left = f"{code} = {known_name}" if known_name else f"{code} = ?"
    right = f"{clean_text(name)} = {', '.join(sorted(codes))}" if codes else f"{name} = ?"
    return f"{left} ; {right}"
