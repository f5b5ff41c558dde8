"""Export a vertical's archived leads, decrypted, as a CSV the training pipeline reads.

The CSV (the vertical's training ``delimiter``, UTF-8, a header row) has the columns::

    lead_id, scored_at, model_version, score, accepted, <every configured feature>, <target>

Features are today's config's, in model column order; a feature a record lacks is an
empty cell (missing), and archived features the config no longer lists are left out.
``engine.training.csvdata`` ignores the five bookkeeping columns, so the file trains
as it is once the target column holds outcomes:

- With an outcomes file (CSV, comma-separated, a header with ``lead_id`` and the
  vertical's target column, e.g. ``lead_id,converted``; labels as the vertical's
  ``positive_values``/``negative_values``), each outcome is joined to the latest
  archived record of its lead id; leads without an outcome, and records without a lead
  id, are left out (and counted). The result trains directly:
  ``ml-service train --vertical V --data out.csv --version X.Y.Z``.
- Without one, every record is exported and the target column is left empty, for the
  operator to fill (the training reader refuses empty labels).

The file holds PII in plain text: it is written with mode 0600, through a temporary
file renamed into place only when the whole export succeeded.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from engine.archive.codec import OpenedRecord
from engine.archive.errors import ArchiveError
from engine.archive.keys import ArchiveKeys
from engine.archive.reader import Problem, read_vertical
from engine.config import ModelConfig, feature_specs
from engine.errors import UnknownVertical
from engine.store.layout import atomic_write

META_COLUMNS = ("lead_id", "scored_at", "model_version", "score", "accepted")


class ExportSummary(msgspec.Struct):
    """What an export did.

    Attributes:
        rows: Data rows written.
        records: Records read and authenticated.
        skipped: Invalid records left out (only with ``skip_invalid``).
        incomplete: Cut-short last lines left out (a crash mid-write).
        without_outcome: Records left out for want of an outcome (with outcomes).
        superseded: Older records of a lead scored again (with outcomes).
    """

    rows: int = 0
    records: int = 0
    skipped: int = 0
    incomplete: int = 0
    without_outcome: int = 0
    superseded: int = 0


def read_outcomes(path: Path, config: ModelConfig, vertical: str) -> dict[str, str]:
    """Read an outcomes CSV into lead id -> label (as written).

    Raises:
        ArchiveError: The file is unreadable, lacks a column, has an unknown label, or
            gives one lead two different outcomes; the message names the line.
    """
    training = config.verticals[vertical].training
    target = training.target
    labels = {v.casefold() for v in (*training.positive_values, *training.negative_values)}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"cannot read outcomes {path}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {"lead_id", target} <= set(reader.fieldnames):
        raise ArchiveError(f"outcomes {path}: the header needs columns lead_id and {target}")
    outcomes: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        lead_id, label = (row.get("lead_id") or "").strip(), (row.get(target) or "").strip()
        if not lead_id:
            raise ArchiveError(f"outcomes {path} line {line}: lead_id is empty")
        if label.casefold() not in labels:
            raise ArchiveError(
                f"outcomes {path} line {line}: {target} must be one of {sorted(labels)}"
            )
        previous = outcomes.get(lead_id)
        if previous is not None and previous.casefold() != label.casefold():
            raise ArchiveError(f"outcomes {path} line {line}: a second, different outcome")
        outcomes[lead_id] = label
    return outcomes


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def export_csv(
    directory: Path,
    vertical: str,
    config: ModelConfig,
    keys: ArchiveKeys,
    out: Path,
    *,
    outcomes: Path | None = None,
    skip_invalid: bool = False,
    warn: Callable[[str], None] = lambda _: None,
) -> ExportSummary:
    """Decrypt ``vertical``'s archive into a training CSV at ``out``.

    Args:
        directory: The archive directory.
        vertical: The vertical to export.
        config: Today's configuration (features, target, delimiter).
        keys: The archive keys.
        out: The CSV to write (replaced only when the export succeeds).
        outcomes: An outcomes CSV to join (see the module docstring).
        skip_invalid: Leave out records that fail authentication or cannot be read,
            reporting each through ``warn``, instead of failing.
        warn: Receives one line per record left out.

    Raises:
        UnknownVertical: Not a configured vertical.
        ArchiveError: A record is invalid (without ``skip_invalid``), the outcomes file
            is bad, or a feature is named like a bookkeeping column. Nothing is written.
    """
    if vertical not in config.verticals:
        raise UnknownVertical(vertical, list(config.verticals))
    settings = config.verticals[vertical]
    features = [s.name for s in feature_specs(settings)]
    target = settings.training.target
    clash = sorted(set(META_COLUMNS) & {*features, target})
    if clash:
        raise ArchiveError(f"feature or target named like an export column: {', '.join(clash)}")
    joined = read_outcomes(outcomes, config, vertical) if outcomes is not None else None
    summary = ExportSummary()
    records: list[OpenedRecord] = []
    latest: dict[str, OpenedRecord] = {}
    for item in read_vertical(directory, vertical, keys):
        if isinstance(item, Problem):
            _problem(item, summary, skip_invalid, warn)
            continue
        summary.records += 1
        if joined is None:
            records.append(item)
        elif item.lead_id is None or item.lead_id not in joined:
            summary.without_outcome += 1
        else:
            earlier = latest.get(item.lead_id)
            if earlier is not None:
                summary.superseded += 1
                if earlier.scored_at > item.scored_at:
                    continue
            latest[item.lead_id] = item
    if joined is not None:
        records = sorted(latest.values(), key=lambda r: r.scored_at)
    rows = [
        [
            _cell(r.lead_id),
            r.scored_at,
            r.model_version,
            _cell(r.score),
            _cell(r.accepted),
            *(_cell(r.values.get(name)) for name in features),
            joined[r.lead_id] if joined is not None and r.lead_id is not None else "",
        ]
        for r in records
    ]
    _write(out, [[*META_COLUMNS, *features, target], *rows], settings.training.delimiter)
    summary.rows = len(rows)
    return summary


def _problem(
    problem: Problem, summary: ExportSummary, skip_invalid: bool, warn: Callable[[str], None]
) -> None:
    if problem.incomplete:  # a crash's torn tail never held a whole record
        summary.incomplete += 1
        warn(f"left out: {problem}")
        return
    if not skip_invalid:
        hint = " (--skip-invalid leaves such records out)"
        raise ArchiveError(f"invalid record at {problem}; nothing exported{hint}")
    summary.skipped += 1
    warn(f"skipped: {problem}")


def _write(out: Path, rows: list[list[str]], delimiter: str) -> None:
    """Replace ``out`` with the CSV atomically, readable by the owner only (it holds PII)."""
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(rows)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, text.getvalue().encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise ArchiveError(f"cannot write {out}: {exc.strerror}") from None
