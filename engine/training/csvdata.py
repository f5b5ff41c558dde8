"""Reading a vertical's training CSV into JSON-typed leads and 0/1 labels.

Each row becomes the same kind of mapping the API decodes from JSON: numerical cells
become ``float`` (``""``, ``na``, ``nan``, ``null``, ``none`` mean missing), categorical
and text cells stay strings (``""`` means missing). The target column is matched against
the vertical's ``positive_values`` and ``negative_values`` (case-insensitive). Columns
that are not configured features are ignored, so a CSV may carry more than the model
uses (e.g. the bank data set's leaky ``duration``).
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from engine.config import FeatureSpec, TrainingConfig
from engine.errors import TrainingError

MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none"})


class TrainingData(msgspec.Struct):
    """A parsed training file.

    Attributes:
        leads: One mapping of feature name to typed value per row.
        labels: 0/1 per row.
        sha256: Digest of the file's bytes.
        size: The file's size in bytes.
        source: The file's name (no directories, which may hold personal paths).
        lines: The file line number of each row, for error messages.
    """

    leads: list[dict[str, Any]]
    labels: npt.NDArray[np.int8]
    sha256: str
    size: int
    source: str
    lines: list[int]


def read_training_csv(
    path: Path, specs: tuple[FeatureSpec, ...], training: TrainingConfig
) -> TrainingData:
    """Parse and check a training CSV.

    Args:
        path: The CSV file.
        specs: The vertical's features.
        training: Target column, label values and delimiter.

    Returns:
        The parsed leads and labels.

    Raises:
        TrainingError: The file is unreadable or empty, a configured column or the
            target is absent, a number does not parse, a label is not recognised, or
            only one class is present. The message names the row and column.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrainingError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrainingError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=training.delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise TrainingError(f"{path} is empty: no header row")
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [s.name for s in specs if s.name not in columns]
    if training.target not in columns:
        missing.insert(0, f"{training.target} (the target)")
    if missing:
        raise TrainingError(
            f"{path}: column(s) {', '.join(missing)} not found; the header has "
            f"{', '.join(columns)} (delimiter {training.delimiter!r})"
        )
    positives = {v.casefold() for v in training.positive_values}
    negatives = {v.casefold() for v in training.negative_values}
    target_at = columns[training.target]
    plan = [(s.name, columns[s.name], s.kind == "numerical") for s in specs]
    leads: list[dict[str, Any]] = []
    labels: list[int] = []
    lines: list[int] = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TrainingError(
                f"{path} line {line}: {len(row)} fields, the header has {len(header)}"
            )
        label = row[target_at].strip().casefold()
        if label in positives:
            labels.append(1)
        elif label in negatives:
            labels.append(0)
        else:
            raise TrainingError(
                f"{path} line {line}: target {training.target!r} is {row[target_at]!r}; "
                f"expected one of {sorted(positives | negatives)}"
            )
        lead: dict[str, Any] = {}
        for name, at, numerical in plan:
            cell = row[at]
            if numerical:
                stripped = cell.strip()
                if stripped.casefold() in MISSING_MARKERS:
                    lead[name] = None
                    continue
                try:
                    lead[name] = float(stripped)
                except ValueError:
                    raise TrainingError(
                        f"{path} line {line}: column {name!r} has {cell!r}, not a number"
                    ) from None
            else:
                lead[name] = cell if cell.strip() else None
        leads.append(lead)
        lines.append(line)
    if not leads:
        raise TrainingError(f"{path} has a header but no data rows")
    label_array = np.array(labels, dtype=np.int8)
    positive_count = int(label_array.sum())
    if positive_count in (0, len(label_array)):
        only = "positive" if positive_count else "negative"
        raise TrainingError(
            f"{path}: every row of {training.target!r} is {only}; training needs both classes"
        )
    return TrainingData(
        leads=leads,
        labels=label_array,
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        source=path.name,
        lines=lines,
    )
