"""What a worker remembers of the leads it scores with a ``lead_id``, for their outcomes.

On the request path a scored lead with a ``lead_id`` becomes one small record (vertical,
model version, score, accepted, when; never the lead's data) appended to a list; at each
watcher tick the list goes to the monitoring store in one batch, on the store's thread,
keyed by the HMAC of its id (``api.lead_keys``), never by the id itself.
So an outcome can be recorded for it (``POST /api/v1/feedback``, by any worker) about a
tick after its response. If the store falls behind, records wait in memory up to
``capacity``; beyond that the oldest are dropped and counted
(``ml_feedback_leads_total{outcome="dropped"}``), never blocking a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from api import metrics
from api.monitoring_io import StoreIO
from engine.monitoring.store import MonitoringStore, ScoredLead
from engine.scoring.result import ScoreResult

# Records the store may fall behind by before the oldest are dropped, and how many
# batches may wait for the store's thread at once.
DEFAULT_CAPACITY = 100_000
MAX_BACKLOG = 4


class LeadMemory:
    """Buffers scored leads for the monitoring store (see the module docstring)."""

    def __init__(self, io: StoreIO, environment: str, capacity: int = DEFAULT_CAPACITY) -> None:
        self._io = io
        self._capacity = capacity
        self._pending: list[ScoredLead] = []
        self._written = metrics.FEEDBACK_LEADS.labels("remembered", environment)
        self._dropped = metrics.FEEDBACK_LEADS.labels("dropped", environment)
        self._clock = time.time

    def keep(
        self,
        lead_id: str,
        vertical: str,
        result: ScoreResult,
        shadow: tuple[str, float] | None = None,
    ) -> None:
        """Remember one scored lead, with its shadow score if any (one record, one append)."""
        if shadow is None:
            record = ScoredLead(
                lead_id, vertical, result.model_version, result.score, result.accepted,
                self._clock(),
            )  # fmt: skip
        else:
            record = ScoredLead(
                lead_id, vertical, result.model_version, result.score, result.accepted,
                self._clock(), shadow[0], shadow[1],
            )  # fmt: skip
        self._pending.append(record)

    def flush(self) -> None:
        """Hand what is buffered to the store's thread (every watcher tick)."""
        pending = self._pending
        if not pending:
            return
        if len(pending) > self._capacity:
            excess = len(pending) - self._capacity
            del pending[:excess]
            self._dropped.inc(excess)
        if self._io.backlog >= MAX_BACKLOG:
            return  # the store is behind: keep buffering (bounded above)
        self._pending = []
        written, hasher = self._written, self._io.hash_lead_id
        self._io.submit(lambda store: _remember(store, pending, hasher, written))


def _remember(
    store: MonitoringStore,
    leads: list[ScoredLead],
    hasher: Callable[[str], str],
    written: Any,
) -> None:
    """On the store's thread: key each lead by the hash of its id, then write."""
    store.remember([msgspec.structs.replace(lead, lead_id=hasher(lead.lead_id)) for lead in leads])
    written.inc(len(leads))
