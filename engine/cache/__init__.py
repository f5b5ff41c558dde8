"""The prediction cache: a model's output for (vertical, version, encoded features).

What is cached is the score (and, for an ``explain`` request, its reasons), never the
price (market factors change by the minute) and never a lead's data: the key is a keyed
hash (``keys.CacheKeyer``) of the vertical, the model version, the explain flag and the
encoded feature row. A reload changes the version, so a stale score can never be
served. Backends sit behind ``PredictionCache``: ``memory.MemoryCache`` (in-process LRU
with a TTL); the Redis and tiered backends plug in behind the same interface.
"""

from __future__ import annotations

from typing import Protocol


class PredictionCache(Protocol):
    """What the scorer needs of a cache."""

    def get(self, key: bytes) -> object | None:
        """The value stored under ``key``, or None (missing or expired)."""

    def put(self, key: bytes, value: object) -> None:
        """Store ``value`` under ``key``."""
