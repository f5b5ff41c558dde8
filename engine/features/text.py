"""Normalisation of free text and category strings, shared by training and serving.

Text scheme: NFKC-normalise, case-fold, replace every run of non-alphanumeric
characters with one space, split on spaces, and keep each token once in order of first
appearance. ``"  Austin,  TX 78701"`` becomes ``["austin", "tx", "78701"]``. The order is
kept so that sums over tokens add up in the same order in training and serving, which
keeps encoded values bit-identical.

Category scheme: case-fold and collapse white space, so ``" Toyota "`` and ``"toyota"``
are one category; punctuation is kept (``"f-150"`` stays itself).
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\W_]+")


def text_tokens(text: str) -> list[str]:
    """Return the distinct normalised tokens of ``text`` in order of first appearance."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return list(dict.fromkeys(_SEPARATORS.sub(" ", folded).split()))


def normalise_category(value: str) -> str:
    """Return the canonical form of a category string."""
    return " ".join(value.split()).casefold()
