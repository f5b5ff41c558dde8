"""The monitoring store's interface: what every worker of a machine shares for monitoring.

Two kinds of data live in the store, both written off the request path in batches:

- Scored leads (``ScoredLead``): what a worker remembers of a lead scored with a
  ``lead_id``, so that its outcome (``Outcome``), which may reach any worker days later,
  can be matched to the score the model gave. Never the lead's data: only its id,
  vertical, model version, score, whether it was accepted, when it was scored, and the
  shadow challenger's version and score when one ran. A lead is kept for the store's
  retention (default 30 days) from when it was scored.
- Per-minute histogram counts (``CountRow``): each worker's flush of drift bins and score
  histograms, merged across workers by summing, kept for a shorter retention (default 7
  days).

Times are epoch seconds (``float``) everywhere except ``CountRow.minute``, which is the
epoch minute ``int(t // 60)`` (``epoch_minute``). A ``since`` given in seconds selects
the minute that contains it and every later one.

The embedded default is ``engine.monitoring.sqlite_store`` (SQLite in WAL mode, one file
per machine); a Redis-backed store for several machines implements the same Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

OutcomeStatus = Literal["recorded", "unknown", "duplicate"]
"""Per outcome: stored; no such lead (never scored, or expired); or one was stored before."""


class StoreUnavailable(Exception):
    """The store cannot be reached now; the caller may retry.

    Raised by a store on another machine (``engine.monitoring.redis_store``) when it is
    down, frozen or restarting: by the reads (``labelled``, ``counts``,
    ``versions_with_counts``), ``record_outcomes`` and ``prune``. The fire-and-forget
    writes (``remember``, ``add_counts``) never raise it: they keep what they could not
    write and write it on the next call that reaches the store.
    """


def epoch_minute(t: float) -> int:
    """Return the epoch minute of ``t`` (epoch seconds): the ``minute`` of a ``CountRow``."""
    return int(t // 60)


class ScoredLead(msgspec.Struct, frozen=True):
    """What a worker remembers of a lead scored with a ``lead_id`` (never its data).

    Attributes:
        lead_id: The caller's id of the lead (up to 128 characters, validated by the
            HTTP layer), stored as is.
        vertical: The lead's vertical.
        version: The champion model version that scored it.
        score: The champion's score.
        accepted: Whether the lead was accepted at the champion's threshold.
        scored_at: When it was scored, epoch seconds.
        shadow_version: The shadow challenger's version, when one scored the lead too.
        shadow_score: The shadow challenger's score (never returned to the caller).
    """

    lead_id: str
    vertical: str
    version: str
    score: float
    accepted: bool
    scored_at: float
    shadow_version: str | None = None
    shadow_score: float | None = None


class Outcome(msgspec.Struct, frozen=True):
    """Whether a scored lead converted, reported by the lead buyer.

    Attributes:
        lead_id: The id the lead was scored with.
        converted: Whether it converted.
        outcome_at: When the outcome happened (or was reported), epoch seconds.
    """

    lead_id: str
    converted: bool
    outcome_at: float


class LabelledScores(msgspec.Struct, frozen=True):
    """The leads of one vertical that have an outcome, scored in a window, as columns.

    Every list has one entry per lead, in order of ``scored_at``. ``versions`` and
    ``scores`` are the champion's; ``shadow_versions`` and ``shadow_scores`` are the
    challenger's, or None where no challenger scored the lead.
    """

    versions: list[str]
    scores: list[float]
    converted: list[bool]
    scored_at: list[float]
    shadow_versions: list[str | None]
    shadow_scores: list[float | None]


class CountRow(msgspec.Struct, frozen=True):
    """Per-minute histogram counts of one key from one worker's flush.

    Rows with the same key (vertical, version, role, name, minute) are summed element by
    element in the store, so every worker adds its own counts to the machine's total.

    Attributes:
        vertical: The vertical.
        version: The model version the counts belong to.
        role: ``"champion"`` or ``"challenger"`` (the shadow model).
        name: What is counted: a feature's name, ``"__score__"``, ``"__score_hist__"``.
        minute: The epoch minute, ``epoch_minute(t)``.
        counts: One count per bin.
    """

    vertical: str
    version: str
    role: str
    name: str
    minute: int
    counts: list[int]


class OpenReport(msgspec.Struct, frozen=True):
    """What opening a store found, for the log and a metric.

    Attributes:
        created: This open initialised an empty store (a missing or empty file, or the
            fresh store that replaced a bad one).
        recovered: The file was unusable (corrupt, not a database, or an unknown
            schema); it was moved aside and a fresh store created in its place.
        problem: What was wrong, when something was; also set, with ``recovered``
            False, when a bad file could not be moved aside because other processes
            still had it open (see ``engine.monitoring.sqlite_store``).
        moved_to: Where the bad file was moved (its ``-wal`` and ``-shm`` sit beside it
            with those suffixes), when it was.
    """

    created: bool
    recovered: bool
    problem: str | None
    moved_to: str | None


class MonitoringStore(Protocol):
    """The store shared by the workers of a machine (or, with Redis, of several)."""

    def remember(self, leads: Sequence[ScoredLead]) -> None:
        """Store scored leads, upserting by ``lead_id``, in one transaction.

        A lead scored again replaces its earlier scoring, unless it already has an
        outcome: then it keeps the outcome and the scoring the outcome belongs to.
        """
        ...

    def record_outcomes(self, outcomes: Sequence[Outcome], now: float) -> list[OutcomeStatus]:
        """Record outcomes in one transaction; return one status per outcome, in order.

        ``unknown``: no lead with that id, or it was scored before ``now - retention``.
        ``duplicate``: the lead has an outcome already (also from earlier in the batch).
        """
        ...

    def labelled(self, vertical: str, since: float, until: float | None = None) -> LabelledScores:
        """Return the leads of ``vertical`` with an outcome scored in ``[since, until)``."""
        ...

    def add_counts(self, rows: Sequence[CountRow]) -> None:
        """Add each row's counts to the stored counts of its key, in one transaction."""
        ...

    def counts(
        self, vertical: str, version: str, role: str, name: str, since: float
    ) -> list[int] | None:
        """Return the element-wise sum of a key's counts over the minutes from ``since``.

        None when the key has no counts in that window.
        """
        ...

    def versions_with_counts(self, vertical: str, since: float) -> list[tuple[str, str]]:
        """Return the sorted ``(version, role)`` pairs of ``vertical`` counted from ``since``."""
        ...

    def prune(self, now: float) -> int:
        """Drop leads and counts older than their retentions; return the rows removed."""
        ...

    def close(self) -> None:
        """Release the store (idempotent)."""
        ...
