"""Demand: recent lead volume per vertical, the input of the demand price factor.

``DemandTracker`` is the seam for other implementations (a Redis-shared counter comes
with the scale-out work); ``SlidingWindowDemand`` is the in-process one. It counts leads
in one-second buckets over a ring of ``window_seconds`` buckets and keeps a running
total, so recording and reading are O(1) amortised whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class DemandTracker(Protocol):
    """Counts leads per vertical over a trailing window."""

    def record(self, vertical: str, now: float) -> float:
        """Count one lead at ``now`` and return the rate per minute *before* it."""
        ...

    def rate(self, vertical: str, now: float) -> float:
        """Return leads per minute over the trailing window ending at ``now``."""
        ...


class _Window:
    __slots__ = ("buckets", "last", "stamps", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.stamps = [-1] * size
        self.total = 0
        self.last = -1

    def advance(self, second: int) -> None:
        size = len(self.buckets)
        if second <= self.last:
            return
        # Expire buckets that fell out of the window; at most one pass over the ring.
        start = max(self.last + 1, second - size + 1)
        for s in range(start, second + 1):
            i = s % size
            if self.stamps[i] != s:
                self.total -= self.buckets[i]
                self.buckets[i] = 0
                self.stamps[i] = s
        self.last = second


class SlidingWindowDemand:
    """In-process demand counter with a fixed trailing window.

    Time may only move forward per vertical; a ``now`` earlier than one already seen is
    counted in the latest bucket (clocks on one host do not go backwards by much, and a
    counter must never go negative).
    """

    def __init__(self, window_seconds: int, per_vertical: Mapping[str, int] | None = None) -> None:
        """Create empty counters.

        Args:
            window_seconds: The trailing window of verticals not in ``per_vertical``.
            per_vertical: Window length by vertical, where it differs.
        """
        windows = {"": window_seconds, **(per_vertical or {})}
        if min(windows.values()) < 1:
            raise ValueError("window_seconds must be at least 1")
        self.window_seconds = window_seconds
        self._sizes = dict(per_vertical or {})
        self._windows: dict[str, _Window] = {}

    def _window(self, vertical: str, now: float) -> _Window:
        window = self._windows.get(vertical)
        if window is None:
            size = self._sizes.get(vertical, self.window_seconds)
            window = self._windows[vertical] = _Window(size)
        second = int(now)
        if second > window.last:
            window.advance(second)
        return window

    def rate(self, vertical: str, now: float) -> float:
        """Return leads per minute over the trailing window ending at ``now``."""
        window = self._window(vertical, now)
        return window.total * 60.0 / len(window.buckets)

    def record(self, vertical: str, now: float) -> float:
        """Count one lead at ``now`` and return the rate per minute before it."""
        window = self._window(vertical, now)
        size = len(window.buckets)
        before = window.total * 60.0 / size
        window.buckets[window.last % size] += 1
        window.total += 1
        return before
