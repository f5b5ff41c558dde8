"""Demand: recent lead volume per vertical, the input of the demand price factor.

``DemandTracker`` is the seam the scorer calls once per scored lead, on the event loop,
so ``record`` must be O(1) and do no I/O. Two implementations:

- ``SlidingWindowDemand`` counts in-process: one-second buckets over a ring of
  ``window_seconds`` buckets with a running total, so recording and reading are O(1)
  amortised whatever the traffic. Each process sees only its own leads.
- ``FleetDemand`` adds the fleet's view (every worker of every replica) through Redis,
  without putting Redis on the hot path: ``record`` counts locally exactly as above and
  also notes the lead as not yet pushed; a sync loop off the hot path
  (``api.fleet_demand.DemandSync``) pushes those counts to shared per-bucket counters
  and reads back the fleet's total about once a second. ``record`` then answers from
  that total plus its own leads since. When Redis is down or slow the view goes stale
  and the answer is the local window's: today's behaviour, never an error or a wait.

Redis buckets are coarser than the local ones (``bucket_layout``): the fleet total is
one ``MGET`` of at most 60 keys per vertical, whatever the window.
"""

from __future__ import annotations

import math
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


def bucket_layout(window_seconds: int) -> tuple[int, int]:
    """Return the Redis buckets of a window: (bucket width in seconds, buckets per window).

    The width is ``ceil(window / 60)`` seconds, so a window is at most 60 keys: reading
    the fleet's total is one ``MGET`` of at most 60 small values per vertical per sync,
    whatever the window (a 300 s window: 5 s buckets; up to 60 s: 1 s buckets, the local
    resolution). The fleet window is that many buckets ending with the current one, so
    it spans the configured window give or take one bucket: a few percent at most.
    Buckets are aligned on epoch time, so every replica counts a given second in the
    same key (clock skew between hosts moves a lead by at most the skew).
    """
    width = -(-window_seconds // 60)
    return width, -(-window_seconds // width)


class _Fleet:
    """Everything ``FleetDemand`` knows of one vertical (one lookup on the hot path)."""

    __slots__ = (
        "bucket",
        "count",
        "fleet_total",
        "fresh_until",
        "in_flight",
        "local",
        "pending",
        "since",
        "span",
        "width",
        "window",
    )

    def __init__(self, window_seconds: int) -> None:
        self.local = _Window(window_seconds)
        self.window = window_seconds
        self.width, self.span = bucket_layout(window_seconds)
        # Not yet pushed: the running Redis bucket's count, plus the closed buckets.
        self.bucket = -1
        self.count = 0
        self.pending: dict[int, int] = {}
        # The fleet view: its total at the last sync, and this instance's leads not in
        # that total (``since``); ``in_flight`` of them were taken by the sync under way
        # and leave ``since`` once the total that includes them is applied.
        self.fleet_total = 0
        self.since = 0
        self.in_flight = 0
        self.fresh_until = -math.inf

    def roll(self, bucket: int) -> None:
        """Close the running bucket; keep at most ``span`` buckets (the window's)."""
        pending = self.pending
        if self.count:
            pending[self.bucket] = pending.get(self.bucket, 0) + self.count
            self.count = 0
        self.bucket = bucket
        if len(pending) > self.span:
            oldest = bucket - self.span
            for old in [b for b in pending if b <= oldest]:
                del pending[old]

    def rate(self) -> float:
        total = self.local.total
        fleet = self.fleet_total + self.since
        return (fleet if fleet > total else total) * 60.0 / self.window


class FleetDemand:
    """Demand counted locally and, through a sync loop, over the whole fleet.

    Local counting is ``SlidingWindowDemand``'s window, unchanged: with no sync (no
    Redis, or Redis down) the rates are exactly today's. Alongside, each vertical keeps

    - the leads not yet pushed to Redis, by Redis bucket: ``bucket_layout`` buckets
      aligned on epoch time, so every replica's lead at a given second lands in the
      same key; the sync loop ``take_pending``s them, ``INCRBY``s them, and
      ``restore_pending``s them when Redis failed (at-least-once: never lost, and
      bounded, since a bucket older than the window is dropped);
    - the fleet's total over the window as last read (``apply_fleet``), and the leads
      counted here since (they are in no Redis total yet).

    While the fleet view is fresh (the last successful sync is younger than
    ``stale_after`` seconds), the rate is ``(fleet total + leads since)`` per minute,
    but never below the local window's (the fleet saw at least what this instance saw;
    this also covers a Redis restarted empty). When the view is stale, or
    ``mark_stale`` said the sync failed, the rate is the local one: demand degrades to
    what this process sees, and recovers with the next successful sync.

    ``record`` stays O(1) and does no I/O: on top of the local window it compares the
    Redis bucket only when the second changes and increments two integers. The sync
    loop (``api.fleet_demand``) runs on the same event loop, so nothing needs a lock.
    """

    def __init__(
        self,
        window_seconds: int,
        per_vertical: Mapping[str, int] | None = None,
        stale_after: float = 3.0,
    ) -> None:
        """Create empty counters.

        Args:
            window_seconds: The trailing window of verticals not in ``per_vertical``.
            per_vertical: Window length by vertical, where it differs.
            stale_after: Seconds after a successful sync when the fleet view is no
                longer trusted (about three sync intervals).
        """
        windows = {"": window_seconds, **(per_vertical or {})}
        if min(windows.values()) < 1:
            raise ValueError("window_seconds must be at least 1")
        if stale_after <= 0:
            raise ValueError("stale_after must be positive")
        self.window_seconds = window_seconds
        self.stale_after = stale_after
        self._sizes = dict(per_vertical or {})
        self._states: dict[str, _Fleet] = {}

    def window_of(self, vertical: str) -> int:
        """Return the window of ``vertical`` in seconds."""
        return self._sizes.get(vertical, self.window_seconds)

    def layout(self, vertical: str) -> tuple[int, int]:
        """Return ``bucket_layout`` of the window of ``vertical``."""
        return bucket_layout(self.window_of(vertical))

    def _state(self, vertical: str) -> _Fleet:
        state = self._states.get(vertical)
        if state is None:
            state = self._states[vertical] = _Fleet(self.window_of(vertical))
        return state

    def record(self, vertical: str, now: float) -> float:
        """Count one lead at ``now`` and return the rate per minute before it."""
        state = self._states.get(vertical)
        if state is None:
            state = self._state(vertical)
        local = state.local
        second = int(now)
        if second > local.last:
            local.advance(second)
            bucket = second // state.width
            if bucket > state.bucket:
                state.roll(bucket)
        total = local.total
        if now < state.fresh_until:
            fleet = state.fleet_total + state.since
            if fleet > total:  # noqa: PLR1730 (hot path: cheaper than a max() call)
                total = fleet
        buckets = local.buckets
        buckets[local.last % len(buckets)] += 1
        local.total += 1
        state.count += 1
        state.since += 1
        # The same arithmetic as SlidingWindowDemand: local rates are exactly today's.
        return total * 60.0 / state.window

    def rate(self, vertical: str, now: float) -> float:
        """Return leads per minute over the trailing window ending at ``now``."""
        state = self._state(vertical)
        local = state.local
        second = int(now)
        if second > local.last:
            local.advance(second)
        if now < state.fresh_until:
            return state.rate()
        return local.total * 60.0 / state.window

    def is_fresh(self, vertical: str, now: float) -> bool:
        """Whether the rate of ``vertical`` at ``now`` is the fleet's (else local)."""
        return now < self._state(vertical).fresh_until

    def take_pending(self) -> dict[str, dict[int, int]]:
        """Hand over the leads not yet pushed, as ``{vertical: {bucket: count}}``.

        Until ``apply_fleet`` (success) or ``restore_pending`` (failure), the leads
        taken still count in the fleet view as this instance's own.
        """
        taken: dict[str, dict[int, int]] = {}
        for vertical, state in self._states.items():
            state.roll(state.bucket)  # close the running count, keep the bucket running
            state.in_flight = state.since
            if state.pending:
                taken[vertical] = state.pending
                state.pending = {}
        return taken

    def restore_pending(self, pending: Mapping[str, Mapping[int, int]], now: float) -> None:
        """Give back counts a sync could not push, dropping buckets the window left.

        Args:
            pending: What ``take_pending`` returned (or the part of it not pushed).
            now: Epoch seconds; a bucket wholly before the window ending here is dropped
                (Redis would expire it anyway), so a long outage keeps at most one
                window of buckets per vertical.
        """
        for vertical, buckets in pending.items():
            state = self._state(vertical)
            oldest = int(now) // state.width - state.span
            kept = state.pending
            for bucket, count in buckets.items():
                if bucket > oldest:
                    kept[bucket] = kept.get(bucket, 0) + count
            # In no fleet total, so they stay in ``since`` when a total is applied.
            state.in_flight = max(0, state.in_flight - sum(buckets.values()))

    def apply_fleet(self, totals: Mapping[str, int], at: float) -> None:
        """Take the fleet's totals over each window, as read at ``at`` (epoch seconds).

        A total includes every lead this instance pushed, so up to the last
        ``take_pending``; ``record`` and ``rate`` add the leads counted since.
        """
        fresh_until = at + self.stale_after
        for vertical, total in totals.items():
            state = self._state(vertical)
            state.fleet_total = total
            state.since -= state.in_flight
            state.in_flight = 0
            state.fresh_until = fresh_until

    def mark_stale(self) -> None:
        """The sync failed: use local rates until the next successful sync."""
        for state in self._states.values():
            state.fresh_until = -math.inf
