"""The in-process prediction cache: an LRU bounded by ``max_size`` with a TTL.

An ``OrderedDict`` keeps entries in recency order, so a hit (``move_to_end``), an insert
and an eviction (``popitem(last=False)``) are each O(1). Each entry carries its expiry;
an expired entry found by ``get`` is dropped and counts as a miss. It is used from one
thread (a worker's event loop), so it takes no lock. Hits, misses, expiries and
evictions are counted for the metrics (``stats``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import msgspec


class CacheStats(msgspec.Struct):
    """Counts since the last ``take_stats``."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class MemoryCache:
    """An LRU of at most ``max_size`` entries, each living ``ttl`` seconds.

    Args:
        max_size: Most entries kept; the least recently used goes first.
        ttl: Seconds an entry is served after it was stored.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self, max_size: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_size < 1 or ttl <= 0:
            raise ValueError("a cache needs max_size >= 1 and ttl > 0")
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, object]] = OrderedDict()
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> object | None:
        """The value under ``key`` if present and fresh; None otherwise (a miss)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry[1]
            del self._entries[key]  # expired: a miss, and room for the fresh value
        self.stats.misses += 1
        return None

    def put(self, key: bytes, value: object) -> None:
        """Store ``value``; evict the least recently used entry when full."""
        entries = self._entries
        entries[key] = (self._clock() + self.ttl, value)
        entries.move_to_end(key)
        if len(entries) > self.max_size:
            entries.popitem(last=False)
            self.stats.evictions += 1

    def take_stats(self) -> CacheStats:
        """Return the counts so far and start new ones (the metrics flush)."""
        stats, self.stats = self.stats, CacheStats()
        return stats
