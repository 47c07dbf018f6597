"""Text normalisation for Arabic and French values as schools type them.

Keep the original text; these functions build keys for matching and parsing.
"""

from __future__ import annotations

import re
import unicodedata

TATWEEL = "\u0640"
_ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
_EXTENDED_ARABIC_INDIC = "۰۱۲۳۴۵۶۷۸۹"
_DIGITS = str.maketrans(_ARABIC_INDIC + _EXTENDED_ARABIC_INDIC, "0123456789" * 2)
# Alef with hamza or madda → bare alef; alef maqsura → ya; ta marbuta → ha (for keys only).
_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})
_HARAKAT = re.compile("[\u064b-\u065f\u0670]")
_SPACES = re.compile(r"\s+")
# Invisible marks that Excel and Windows keep in Arabic text.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\u00ad]")


def ascii_digits(text: str) -> str:
    """Arabic-Indic and extended Arabic-Indic digits turned into 0-9."""
    return text.translate(_DIGITS)


def clean_text(text: str) -> str:
    """What a value means to a person: invisible marks and tatweel removed, digits in ASCII,
    whitespace collapsed, ends stripped. Letters are kept as written."""
    text = _INVISIBLE.sub("", text).replace(TATWEEL, "").replace("\u00a0", " ")
    return _SPACES.sub(" ", ascii_digits(text)).strip()


def match_key(text: str) -> str:
    """A key for comparing Arabic or French text typed by different people: clean_text plus
    harakat removed, alef/hamza/ya/ta-marbuta variants unified, Latin letters folded to lower
    case without accents."""
    text = _HARAKAT.sub("", clean_text(text)).translate(_LETTERS)
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(
        c for c in decomposed if not unicodedata.combining(c) or "\u0600" <= c <= "\u06ff"
    )
    return unicodedata.normalize("NFC", text).casefold()


def label_key(label: str) -> str:
    """Key of a header or metadata label: match_key without a trailing colon."""
    return match_key(label).rstrip(":： ").strip()
