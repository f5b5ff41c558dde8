"""The outcomes a scoring user will report: scored leads waiting for their feedback.

A lead's outcome may only be reported once the service knows the lead (about one
watcher tick, 50 ms, after its response) and, as with real leads, well after it was
scored; each lead gets at most one outcome (a second one is a 409, not a load test).
The queue is bounded: when feedback falls behind scoring, the oldest leads drop off and
never get an outcome, as most real leads never do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Pending:
    """A scored lead: its id, its true outcome, and when its outcome may be reported."""

    lead_id: str
    converted: bool
    ready_at: float


class OutcomeQueue:
    """Scored leads in the order they were scored (see the module docstring).

    Args:
        delay: Seconds after scoring before a lead's outcome may be reported.
        capacity: Leads kept at most; beyond it the oldest are dropped.
    """

    def __init__(self, delay: float, capacity: int = 2000) -> None:
        self._delay = delay
        self._leads: deque[Pending] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._leads)

    def scored(self, lead_id: str, converted: bool, now: float) -> None:
        """Remember a lead scored at ``now`` (monotonic seconds)."""
        self._leads.append(Pending(lead_id, converted, now + self._delay))

    def take(self, count: int, now: float) -> list[Pending]:
        """Up to ``count`` of the oldest leads whose outcome may be reported at ``now``."""
        taken: list[Pending] = []
        while self._leads and len(taken) < count and self._leads[0].ready_at <= now:
            taken.append(self._leads.popleft())
        return taken
