"""Normalisation of free text and category strings, shared by training and serving.

Text scheme: NFKC-normalise, case-fold, replace every run of non-alphanumeric
characters with one space, split on spaces, and keep each token once in order of first
appearance. ``"  Austin,  TX 78701"`` becomes ``["austin", "tx", "78701"]``. The order is
kept so that sums over tokens add up in the same order in training and serving, which
keeps encoded values bit-identical.

Category scheme: case-fold and collapse white space, so ``" Toyota "`` and ``"toyota"``
are one category; punctuation is kept (``"f-150"`` stays itself). A category that is a
number in JSON's grammar is written in one canonical form, so a CSV's ``"29.0"`` (how
pandas writes an integer column with gaps), ``"29"``, ``"2.9e1"`` and a JSON ``29`` or
``29.0`` are one category, ``"29"``: integral values as integers (exact up to 2**53),
others as Python's shortest round-trip ``repr``. Digit strings with a leading zero
(``"02134"``, a ZIP code) are identifiers, not numbers, and stay as they are. Booleans
are ``"true"`` and ``"false"``, as a CSV's ``True`` case-folds.
"""

from __future__ import annotations

import math
import re
import unicodedata

_SEPARATORS = re.compile(r"[\W_]+")
# JSON's number grammar: no leading "+", no leading zeros, no bare "." ends.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<fraction>(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)")
_EXACT_INTEGERS = 2.0**53


def text_tokens(text: str) -> list[str]:
    """Return the distinct normalised tokens of ``text`` in order of first appearance."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return list(dict.fromkeys(_SEPARATORS.sub(" ", folded).split()))


def normalise_category(value: str) -> str:
    """Return the canonical form of a category string."""
    folded = " ".join(value.split()).casefold()
    number = _NUMBER.fullmatch(folded)
    if number is None:
        return folded
    if not number["fraction"]:
        return str(int(folded))  # exact at any size ("-0" is "0")
    return category_of_number(float(folded)) or folded  # "1e999" overflows: keep it


def category_of_number(value: float) -> str:
    """Return the category text of a JSON number or boolean (see the module docstring).

    A non-finite float has no category text; it returns ``""``, which no table holds,
    so the lead's value counts as unseen.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if number != number or number in (math.inf, -math.inf):
        return ""
    if number.is_integer() and abs(number) < _EXACT_INTEGERS:
        return str(int(number))
    return repr(number)
