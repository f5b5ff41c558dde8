"""Locust's CSV reports read back, and the pass/fail verdict of a load test.

``read_results(prefix)`` reads the three CSV files of a run (locust's layout, written
once locust stopped: ``loadtests/locustfile.py``):
``<prefix>_stats.csv`` (a row per request name, then ``Aggregated``; response times in
ms, percentiles in locust's rounded buckets, ``N/A`` for a name without requests),
``<prefix>_failures.csv`` (a row per name and distinct failure message, with its
occurrences) and ``<prefix>_exceptions.csv`` (errors raised inside a task: a broken load
test, not a failed request).

``judge(results, thresholds)`` lists what broke a threshold (empty: the test passed):

- **Any unexpected failure.** Every failure message starts with its category
  (``loadtests.checks``); only ``connection error`` may be tolerated, and only up to
  ``Thresholds.connection_errors`` (the soak allows one per client for each worker it
  kills: a SIGKILLed worker drops the requests in flight on its connections). A 5xx, an
  unexpected status or body, and any exception inside a task always fail the test.
- **p99 over ``Thresholds.p99_ms``** (500 ms, the seed's latency target and the
  ``MLServiceScoringLatencyHigh`` alert's threshold): over all requests, and for every
  request name but the admin reload (which waits, by design, for every worker to switch).
- **A required kind of request that never happened** (so a mix that silently stopped
  sending, say, feedback cannot pass), and more lost outcomes than allowed (soak only).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests import checks, mix

CATEGORIES: tuple[str, ...] = (
    checks.CONNECTION_ERROR,
    checks.SERVER_ERROR,
    checks.UNEXPECTED_STATUS,
    checks.UNEXPECTED_BODY,
)


@dataclass(frozen=True)
class Row:
    """One line of ``_stats.csv``: a request name (or the aggregate) and its figures."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float

    @property
    def kind(self) -> str | None:
        """The kind of request (``loadtests.mix.kind_of``); None for the aggregate."""
        return mix.kind_of(self.name)


@dataclass(frozen=True)
class FailureRow:
    """One line of ``_failures.csv``: a failure message and how often it happened."""

    method: str
    name: str
    error: str
    occurrences: int

    @property
    def category(self) -> str:
        """The category the message starts with (``other`` for none of ours)."""
        # Locust wraps our message: CatchResponseError('connection error: ...').
        message = self.error.partition("(")[2].lstrip("'\"") if "(" in self.error else self.error
        for category in CATEGORIES:
            if message.startswith(category):
                return category
        return "other"


@dataclass(frozen=True)
class Results:
    """Everything locust reported about one run."""

    rows: tuple[Row, ...]
    total: Row
    failures: tuple[FailureRow, ...]
    exceptions: tuple[str, ...]

    def requests_of(self, kind: str) -> int:
        """Requests of one kind (``loadtests.mix``), over every name of that kind."""
        return sum(row.requests for row in self.rows if row.kind == kind)

    def failures_of(self, category: str) -> int:
        """Failed requests whose message is of ``category``."""
        return sum(f.occurrences for f in self.failures if f.category == category)


@dataclass(frozen=True)
class Thresholds:
    """What a run must meet (see the module docstring)."""

    p99_ms: float = 500.0
    connection_errors: int = 0
    lost_outcomes: int = 0
    required_kinds: tuple[str, ...] = ()


def _read(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise FileNotFoundError(f"locust wrote no report {path}") from None


def _number(row: dict[str, str], column: str, path: Path) -> float | None:
    raw = row.get(column)
    if raw is None:
        raise ValueError(f"{path}: no column {column!r}")
    if raw == "N/A":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{path}: {column} is not a number: {raw!r}") from None
    if math.isnan(value):
        return None
    return value


def _row(raw: dict[str, str], path: Path) -> Row:
    return Row(
        method=raw.get("Type", ""),
        name=raw.get("Name", ""),
        requests=int(_number(raw, "Request Count", path) or 0),
        failures=int(_number(raw, "Failure Count", path) or 0),
        rps=_number(raw, "Requests/s", path) or 0.0,
        p50_ms=_number(raw, "50%", path),
        p99_ms=_number(raw, "99%", path),
        max_ms=_number(raw, "Max Response Time", path) or 0.0,
    )


def read_results(prefix: Path) -> Results:
    """Read ``<prefix>_stats.csv``, ``_failures.csv`` and ``_exceptions.csv``.

    Raises:
        FileNotFoundError: A report is missing (locust did not finish).
        ValueError: A report is malformed (the message names the file and column).
    """
    stats_path = prefix.with_name(prefix.name + "_stats.csv")
    rows = [_row(raw, stats_path) for raw in _read(stats_path)]
    totals = [row for row in rows if row.name == "Aggregated" and not row.method]
    if len(totals) != 1:
        raise ValueError(f"{stats_path}: no Aggregated row")
    failures_path = prefix.with_name(prefix.name + "_failures.csv")
    failures = tuple(
        FailureRow(
            raw.get("Method", ""),
            raw.get("Name", ""),
            raw.get("Error", ""),
            int(_number(raw, "Occurrences", failures_path) or 0),
        )
        for raw in _read(failures_path)
    )
    exceptions_path = prefix.with_name(prefix.name + "_exceptions.csv")
    exceptions = tuple(
        f"{raw.get('Count', '?')}x {raw.get('Message', '')}" for raw in _read(exceptions_path)
    )
    return Results(
        tuple(row for row in rows if row is not totals[0]), totals[0], failures, exceptions
    )


def judge(results: Results, thresholds: Thresholds) -> list[str]:
    """What in ``results`` breaks ``thresholds``, one sentence each (empty: passed)."""
    problems: list[str] = []
    if results.total.requests == 0:
        problems.append("no request was made")
    connection = results.failures_of(checks.CONNECTION_ERROR)
    if connection > thresholds.connection_errors:
        problems.append(f"{connection} connection errors, {thresholds.connection_errors} allowed")
    for failure in results.failures:
        if failure.category != checks.CONNECTION_ERROR:
            problems.append(
                f"{failure.occurrences} unexpected failures of {failure.name}: {failure.error}"
            )
    listed = sum(f.occurrences for f in results.failures)
    if listed != results.total.failures:  # a failure the failure report does not explain
        problems.append(f"{results.total.failures} failures reported, {listed} listed")
    problems.extend(f"exception in a task: {message}" for message in results.exceptions)
    for row in (results.total, *results.rows):
        if row.kind in (mix.RELOAD, mix.LOST) or row.p99_ms is None:
            continue
        if row.p99_ms > thresholds.p99_ms:
            problems.append(
                f"p99 of {row.name} is {row.p99_ms:g} ms, over {thresholds.p99_ms:g} ms"
            )
    for kind in thresholds.required_kinds:
        if results.requests_of(kind) == 0:
            problems.append(f"no {kind} request was made")
    lost = results.requests_of(mix.LOST)
    if lost > thresholds.lost_outcomes:
        problems.append(f"{lost} requests reported lost leads, {thresholds.lost_outcomes} allowed")
    return problems


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def summary(results: Results, kinds: Sequence[str] = mix.ALL_KINDS) -> list[str]:
    """Lines for the terminal: the totals, then each kind of request and each vertical."""
    total = results.total
    lines = [
        f"requests/s {total.rps:.1f}   p50 {_ms(total.p50_ms)}   p99 {_ms(total.p99_ms)}   "
        f"max {_ms(total.max_ms)}   requests {total.requests}   failures {total.failures}"
    ]
    lost = results.requests_of(mix.LOST)
    for kind in (*kinds, *((mix.LOST,) if lost else ())):
        rows = [row for row in results.rows if row.kind == kind]
        lines.append(
            f"  {kind:<15} requests {sum(r.requests for r in rows):>7}   "
            f"failures {sum(r.failures for r in rows):>5}   "
            f"worst p99 {_ms(_worst(r.p99_ms for r in rows))}"
        )
    verticals = _by_vertical(results.rows)
    if verticals:
        share = sum(verticals.values()) or 1
        lines.append(
            "  scored leads' verticals (single requests): "
            + ", ".join(f"{v} {n / share:.0%}" for v, n in sorted(verticals.items()))
        )
    lines.extend(f"  failed: {f.occurrences}x {f.name}: {f.error[:160]}" for f in results.failures)
    lines.extend(f"  exception: {message[:160]}" for message in results.exceptions)
    return lines


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _by_vertical(rows: Iterable[Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        if row.kind == "score" and row.name.endswith("]"):
            vertical = row.name.rpartition("[")[2][:-1]
            counts[vertical] = counts.get(vertical, 0) + row.requests
    return counts
