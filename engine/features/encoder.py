"""Validate a lead and write its model input row in one pass: the scoring hot path.

The same ``LeadEncoder.encode_into`` runs in training (over the parsed CSV) and in
serving (over the decoded JSON), so the model sees bit-identical inputs for the same
lead. Rules, per feature:

- Absent or ``null``: missing (NaN), unless the feature is ``required``.
- Numerical: an ``int`` or ``float`` (not ``bool``), within ``[min, max]`` when declared
  and within the range of a double (an integer such as ``10**400`` is out of range).
  NaN counts as missing.
- Categorical: a string, or a number or boolean standing for its text (``29`` is the
  category ``"29.0"`` of a CSV, see ``engine.features.text``); its category code, or
  missing when unseen at training.
- Text: a string; the mean weight of its known tokens, or missing when none is known.

Keys of the lead that are not features are ignored, so callers can send extra context.
``encode_into`` also returns the lead's completeness: the summed importance of the
features that carried usable information (see ``engine.scoring.confidence``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.config import FeatureSpec
from engine.errors import LeadError
from engine.features.tables import EncoderTables
from engine.features.text import category_of_number, normalise_category, text_tokens

NAN = math.nan
_NUMERICAL, _CATEGORICAL, _TEXT = 0, 1, 2
_KIND_CODES = {"numerical": _NUMERICAL, "categorical": _CATEGORICAL, "text": _TEXT}
# Text values repeat (occupations, cities); memoising raw string -> value skips the
# regex work for repeats. Cleared when full, which keeps it bounded and O(1). Only texts
# of at most TEXT_MEMO_MAX_CHARS are kept: repeats are short, and a client sending many
# distinct long texts must not make the memo hold megabytes.
TEXT_MEMO_SIZE = 8192
TEXT_MEMO_MAX_CHARS = 256


class RowBuffer(Protocol):
    """Where encoded values go: a ctypes ``c_double`` array or a numpy row."""

    def __setitem__(self, index: int, value: float, /) -> None: ...


class LeadEncoder:
    """Validates leads and encodes them for one model version.

    Not thread-safe only in the sense that the text memo is shared; concurrent use
    from several threads gives correct results (dict operations are atomic) but may
    memoise the same text twice.
    """

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        tables: EncoderTables,
        importance: Mapping[str, float] | None = None,
        field_prefix: str = "lead_data.",
    ) -> None:
        """Build the per-feature plan.

        Args:
            specs: The model's features in column order.
            tables: The fitted encoder tables.
            importance: Completeness weight per feature (normalised gain); uniform when
                omitted.
            field_prefix: Prefix of field names in errors (the API's JSON path).
        """
        self.specs = tuple(specs)
        self.num_features = len(self.specs)
        weights = dict(importance) if importance else {}
        if not weights or sum(weights.values()) <= 0:
            weights = {s.name: 1.0 for s in self.specs}
        total = sum(weights.get(s.name, 0.0) for s in self.specs)
        self._text_memo: dict[str, dict[str, float]] = {}
        self._plan: list[tuple[str, str, int, int, float, float, bool, Any, float]] = []
        for spec in self.specs:
            table: Any = None
            if spec.kind == "categorical":
                table = CategoryCodes(
                    {v: float(i) for i, v in enumerate(tables.categories[spec.name])}
                )
            elif spec.kind == "text":
                table = tables.token_weights[spec.name]
                self._text_memo[spec.name] = {}
            self._plan.append(
                (
                    spec.name,
                    field_prefix + spec.name,
                    _KIND_CODES[spec.kind],
                    spec.index,
                    -math.inf if spec.min is None else spec.min,
                    math.inf if spec.max is None else spec.max,
                    spec.required,
                    table,
                    weights.get(spec.name, 0.0) / total,
                )
            )

    def encode_into(self, lead: Mapping[str, Any], row: RowBuffer) -> float:
        """Validate ``lead`` and write its encoded values into ``row``.

        Args:
            lead: Feature name to raw value (JSON-typed: number, string or None).
            row: Output buffer of at least ``num_features`` floats (a ctypes array or a
                numpy row); on error its contents are unspecified.

        Returns:
            The lead's completeness in [0, 1].

        Raises:
            LeadError: A value is missing, of the wrong type or out of range.
        """
        known = 0.0
        get = lead.get
        for name, field, kind, index, low, high, required, table, weight in self._plan:
            value = get(name)
            if value is None:
                if required:
                    raise LeadError(field, "is required", "missing")
                row[index] = NAN
                continue
            vtype = type(value)
            if kind == _NUMERICAL:
                if vtype is not float and vtype is not int:
                    if vtype is bool or not isinstance(value, numbers.Real):
                        raise LeadError(field, f"must be a number, not {_json_type(value)}", "type")
                    value = float(value)
                if value != value:  # NaN: a Python caller's way of saying missing
                    if required:
                        raise LeadError(field, "is required", "missing")
                    row[index] = NAN
                    continue
                if value < low:
                    raise LeadError(field, f"must be at least {_num(low)}", "range")
                if value > high:
                    raise LeadError(field, f"must be at most {_num(high)}", "range")
                try:
                    row[index] = value
                except OverflowError:  # an integer beyond any double (no bound declared)
                    raise LeadError(field, "is out of range for a number", "range") from None
                known += weight
            else:
                if vtype is not str:
                    if kind == _CATEGORICAL and isinstance(value, int | float):
                        # A category sent as a JSON number or boolean means the same as
                        # its CSV text: 29 is the category of "29.0", true of "True".
                        value = category_of_number(value)
                    elif not isinstance(value, str):
                        raise LeadError(field, f"must be a string, not {_json_type(value)}", "type")
                    else:
                        value = str(value)
                if kind == _CATEGORICAL:
                    code = table[value]  # NaN when unseen (CategoryCodes)
                    row[index] = code
                    if code == code:
                        known += weight
                else:
                    encoded = self._encode_text(name, value, table)
                    row[index] = encoded
                    if encoded == encoded:
                        known += weight
        # Normalised weights can sum to 1 + 1 ulp; completeness is a share, at most 1.
        return known if known < 1.0 else 1.0

    def _encode_text(self, name: str, text: str, weights: Mapping[str, float]) -> float:
        memo = self._text_memo[name]
        encoded = memo.get(text)
        if encoded is None:
            encoded = text_value(text, weights)
            if len(text) <= TEXT_MEMO_MAX_CHARS:
                if len(memo) >= TEXT_MEMO_SIZE:
                    memo.clear()
                memo[text] = encoded
        return encoded


class CategoryCodes(dict[str, float]):
    """A categorical feature's codes by canonical value, plus the spellings seen since.

    Looking a value up (``codes[value]``) is one dict lookup when the value is canonical
    or was seen before; otherwise ``__missing__`` normalises it (``normalise_category``:
    case, white space, numbers), remembers the spelling's code (NaN when unseen at
    training) and returns it. Leads repeat a few spellings (``"Toyota"``), so the
    normalisation runs once per spelling, not once per lead. The spellings are bounded
    like the text memo: at most ``TEXT_MEMO_SIZE`` of at most ``TEXT_MEMO_MAX_CHARS``,
    forgotten all at once when full (the fitted codes stay).
    """

    def __init__(self, fitted: Mapping[str, float]) -> None:
        super().__init__(fitted)
        self._fitted = dict(fitted)

    def __missing__(self, value: str) -> float:
        code = self._fitted.get(normalise_category(value), NAN)
        if len(value) <= TEXT_MEMO_MAX_CHARS:
            if len(self) >= len(self._fitted) + TEXT_MEMO_SIZE:
                self.clear()
                self.update(self._fitted)
            self[value] = code
        return code


def text_value(text: str, weights: Mapping[str, float]) -> float:
    """Return the mean weight of the known tokens of ``text``, NaN when none is known."""
    total = 0.0
    count = 0
    for token in text_tokens(text):
        weight = weights.get(token)
        if weight is not None:
            total += weight
            count += 1
    return total / count if count else NAN


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__
