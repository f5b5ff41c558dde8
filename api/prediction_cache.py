"""The worker's prediction cache: built from ``CACHE_CONFIG``, and its metrics.

``build`` makes the in-process cache (``engine.cache.memory.MemoryCache``) and its keyer
(the ``secret_file``'s key, or a random one). ``CacheMetrics.flush`` (a watcher tick
hook) adds the scorer's hits and misses per vertical to ``ml_cache_lookups_total`` and
the evictions to ``ml_cache_evictions_total``, and sets ``ml_cache_entries``: nothing
on the request path but two integer increments.
"""

from __future__ import annotations

from api import metrics
from api.cache_config import CacheConfig
from engine.cache.keys import CacheKeyer
from engine.cache.memory import MemoryCache
from engine.scoring.scorer import Scorer

TIER = "memory"


def build(config: CacheConfig) -> tuple[MemoryCache, CacheKeyer] | None:
    """The cache and its keyer, or None when ``CACHE_CONFIG`` does not enable one."""
    if not config.enable:
        return None
    secret = config.secret_file.read_bytes() if config.secret_file is not None else None
    return MemoryCache(config.max_size, config.ttl), CacheKeyer(secret)


class CacheMetrics:
    """Writes the cache's counts to the shared metrics at each watcher tick."""

    def __init__(self, scorer: Scorer, cache: MemoryCache, environment: str) -> None:
        self._scorer = scorer
        self._cache = cache
        self._environment = environment
        self._evictions = metrics.CACHE_EVICTIONS.labels(TIER, environment)
        self._entries = metrics.CACHE_ENTRIES.labels(TIER, environment)

    def flush(self) -> None:
        """Add what was counted since the last tick."""
        env = self._environment
        for vertical, (hits, misses) in self._scorer.take_cache_counts().items():
            if hits:
                metrics.CACHE_LOOKUPS.labels(vertical, "hit", env).inc(hits)
            if misses:
                metrics.CACHE_LOOKUPS.labels(vertical, "miss", env).inc(misses)
        stats = self._cache.take_stats()
        if stats.evictions:
            self._evictions.inc(stats.evictions)
        self._entries.set(len(self._cache))
