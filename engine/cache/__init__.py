"""The prediction cache: a model's output for (vertical, version, encoded features).

What is cached is the score (and, for an ``explain`` request, its reasons), never the
price (market factors change by the minute) and never a lead's data: the key is a keyed
hash (``keys.CacheKeyer``) of the vertical, the model version, the explain flag and the
encoded feature row. A reload changes the version, so a stale score can never be
served.

Two interfaces, because the tiers differ in kind, not just in speed:

- ``PredictionCache`` is synchronous: ``memory.MemoryCache`` (an in-process LRU with a
  TTL) answers in about a microsecond, so the scorer calls it inline.
- ``RemoteCache`` is asynchronous: a shared cache across workers and replicas (Redis,
  ``api.redis_cache``) costs a network round trip, so the scorer awaits its reads
  (``Scorer.score_async``) and hands it writes that it sends in the background. A remote
  cache that cannot answer answers "miss": the scorer then predicts, as without a cache.

The ``tiered`` backend is both: the memory cache in front, the remote one behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class PredictionCache(Protocol):
    """What the scorer needs of a cache."""

    def get(self, key: bytes) -> object | None:
        """The value stored under ``key``, or None (missing or expired)."""

    def put(self, key: bytes, value: object) -> None:
        """Store ``value`` under ``key``."""


class RemoteCache(Protocol):
    """What the scorer needs of a cache it reaches over the network."""

    async def get(self, key: bytes) -> object | None:
        """The value stored under ``key``; None when missing, expired or unreachable."""

    async def get_many(self, keys: Sequence[bytes]) -> list[object | None]:
        """The values of ``keys`` in one round trip, None where ``get`` would give None."""

    def put(self, key: bytes, value: object) -> None:
        """Queue ``value`` for storing under ``key``; never waits on the network."""
