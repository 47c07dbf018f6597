"""Right-to-left pages that show codes as written: values isolated from the Arabic around them.

An HTML page in Arabic (``dir="rtl"``) reorders a Latin code, a number or a file name that mixes
both scripts: ``NotesCC/Export_33494V_1APG-1_التربية الإسلامية_24062024161205.xlsx`` shows
with its date before the subject name, ``12 Mo > 10 Mo`` backwards. :func:`isolated` puts one
value in a ``<bdi>`` (and each Arabic run of a left-to-right value in its own), and
:func:`isolated_message` does the same for the values a sentence quotes. Both escape everything
they are given: the result is safe HTML.

    >>> isolated("1APIC-1")
    '<bdi dir="ltr">1APIC-1</bdi>'
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable

# Arabic script (letters and Arabic-Indic digits); a run keeps the spaces between its words.
_ARABIC = "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"
_ARABIC_RUN = re.compile(rf"[{_ARABIC}]+(?:\s+[{_ARABIC}]+)*")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
# A code, number or path inside Arabic text: letters and digits joined by the punctuation codes,
# dates and paths use, never ending on it (a sentence's full stop stays outside); such tokens
# separated only by spaces or operators ("12 Mo > 10 Mo", "1, 2") are one left-to-right run.
_LTR_TOKEN = r"[A-Za-z0-9](?:[A-Za-z0-9_./\\:#+\-]*[A-Za-z0-9])?"
_LTR_RUN = re.compile(rf"{_LTR_TOKEN}(?:[ <>=,;×*]+{_LTR_TOKEN})*")


def _first_strong(text: str) -> str | None:
    arabic, latin = _ARABIC_RUN.search(text), _LATIN.search(text)
    if arabic and (not latin or arabic.start() < latin.start()):
        return "rtl"
    return "ltr" if latin else None


def _marked(text: str, runs: re.Pattern[str]) -> str:
    """``text`` escaped, each match of ``runs`` in its own ``<bdi>``."""
    out, at = [], 0
    for match in runs.finditer(text):
        out += [html.escape(text[at : match.start()]), f"<bdi>{html.escape(match[0])}</bdi>"]
        at = match.end()
    return "".join(out) + html.escape(text[at:])


def isolated(value: object, direction: str | None = None) -> str:
    """One value (file name, code, number, cell value) as escaped HTML in a ``<bdi>``, so that the
    Arabic text around it does not reorder it. ``direction`` is forced ("ltr" for a file name),
    else taken from the value's first letter (numbers: left to right). Inside a left-to-right
    value each Arabic run is isolated too: ``1APG-1_التربية الإسلامية_2406….xlsx`` then shows in
    the order it is written, the date after the subject name."""
    text = "" if value is None else str(value)
    if text == "":
        return ""
    direction = direction or _first_strong(text) or "ltr"
    inner = _marked(text, _ARABIC_RUN) if direction == "ltr" else html.escape(text)
    return f'<bdi dir="{direction}">{inner}</bdi>'


@functools.lru_cache(maxsize=4096)
def _quoting(texts: tuple[str, ...]) -> re.Pattern[str]:
    """The pattern finding any of ``texts`` (in this order) as a whole word, compiled once: a
    school's findings quote the same file names and values again and again, more patterns
    than the ``re`` module's own cache keeps (6,000 findings quoting 300 file names: 95 -> 77
    ms)."""
    alternatives = "|".join(re.escape(text) for text in texts)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def isolated_message(message: str, known: Iterable[tuple[str, str | None]], arabic: bool) -> str:
    """A finding's message as escaped HTML: each ``known`` value it quotes (text, direction: the
    file name, the cell value) isolated whole, and in the rest each run of the other script (codes
    and numbers in Arabic text, Arabic words in French text) in its own ``<bdi>``."""
    values = {text: direction for text, direction in known if text and text.strip()}
    # longest first, so that a file name is taken whole before a value found inside it
    quoted = _quoting(tuple(sorted(values, key=len, reverse=True))) if values else None
    runs = _LTR_RUN if arabic else _ARABIC_RUN
    out, at = [], 0
    for match in quoted.finditer(message) if quoted else ():
        out += [_marked(message[at : match.start()], runs), isolated(match[0], values[match[0]])]
        at = match.end()
    return "".join(out) + _marked(message[at:], runs)
