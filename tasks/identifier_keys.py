"""How the matcher compares a parent's CNSS / CMR number, a parent's CIN and a Massar code.

    number_key(value) / number_key_expr(expr)    a CNSS or CMR number as compared
    cin_key(value) / cin_key_expr(expr)          a CIN as compared
    code_key(value)                              a Massar code as compared

The plain functions key a fund's request; the polars expressions key the warehouse's columns
when the register is built (tasks/province_register.py): both give the same key for one value.
"""

from __future__ import annotations

import re

import polars as pl

from schemas.text import clean_text
from tasks.normalise import clean_expr


def number_key(value: str | None) -> str:
    """A CNSS or CMR number as compared: spaces, dots, dashes and slashes removed, upper case,
    leading zeros of an all-digit number dropped (spreadsheets drop them)."""
    if not value:
        return ""
    if isinstance(value, str) and value.isascii() and value.isalnum():  # nothing to clean
        text = value.upper()
    else:
        text = _NUMBER_SEPARATORS.sub("", clean_text(str(value))).upper()
    return (text.lstrip("0") or text) if text.isdigit() else text


def cin_key(value: str | None) -> str:
    """A CIN as compared: upper case, no separators, no leading zeros in its digits."""
    if not value:
        return ""
    if isinstance(value, str) and value.isascii() and value.isalnum():  # nothing to clean
        text = value.upper()
    else:
        text = _NOT_CIN.sub("", clean_text(str(value)).upper())
    letters = len(text) - len(text.lstrip(_LETTERS))
    if text[letters : letters + 1] != "0":
        return text  # no leading zero after the letters: nothing for _CIN_ZEROS to drop
    return _CIN_ZEROS.sub(r"\1", text)


def code_key(value: str | None) -> str:
    """A Massar code as compared: clean, upper case, no spaces."""
    if not value:
        return ""
    if value.isascii() and value.isalnum():
        return value.upper()
    return _SPACE.sub("", clean_text(value)).upper()


_NUMBER_SEPARATORS = re.compile(r"[\s./-]")
_NOT_CIN = re.compile(r"[^0-9A-Z]")
_CIN_ZEROS = re.compile(r"^([A-Z]*)0+(?=\d)")
_SPACE = re.compile(r"\s")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def number_key_expr(expr: pl.Expr) -> pl.Expr:
    """number_key as a polars expression (null for a blank value)."""
    text = clean_expr(expr).str.replace_all(r"[\s./-]", "").str.to_uppercase()
    stripped = text.str.strip_chars_start("0")
    digits = text.str.contains(r"^[0-9]+$")
    key = pl.when(digits & (stripped.str.len_bytes() > 0)).then(stripped).otherwise(text)
    return pl.when(key.str.len_bytes() > 0).then(key)


def cin_key_expr(expr: pl.Expr) -> pl.Expr:
    """cin_key as a polars expression (null for a blank value)."""
    text = clean_expr(expr).str.to_uppercase().str.replace_all(r"[^0-9A-Z]", "")
    key = text.str.replace(r"^([A-Z]*)0+([0-9])", "${1}${2}")
    return pl.when(key.str.len_bytes() > 0).then(key)
