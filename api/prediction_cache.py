"""The worker's prediction cache: built from ``CACHE_CONFIG``, and its metrics.

``build`` makes the configured tiers and their keyer (the ``secret_file``'s key, or a
random one for a memory-only cache):

- ``memory``: the in-process LRU (``engine.cache.memory.MemoryCache``);
- ``redis``: only the shared tier (``api.redis_cache.RedisCache``), one per worker over
  the worker's Redis link;
- ``tiered``: the memory LRU in front of the Redis tier, so a repeat within a worker
  never leaves the process and a repeat across workers or replicas skips the model.

``CacheMetrics.flush`` (a watcher tick hook) adds the scorer's hits and misses per
vertical to ``ml_cache_lookups_total``, the memory tier's evictions to
``ml_cache_evictions_total`` and its size to ``ml_cache_entries``, and the Redis tier's
operations to ``ml_cache_redis_operations_total``: nothing on the request path but
integer increments.
"""

from __future__ import annotations

import msgspec

from api import metrics
from api.cache_config import CacheConfig
from api.redis_cache import RedisCache
from api.redis_link import RedisLink
from engine.cache.keys import CacheKeyer
from engine.cache.memory import MemoryCache
from engine.scoring.scorer import Scorer

TIER = "memory"


class Caches(msgspec.Struct):
    """The configured tiers (either may be None, not both) and their keyer."""

    memory: MemoryCache | None
    redis: RedisCache | None
    keyer: CacheKeyer


def build(config: CacheConfig, link: RedisLink | None = None) -> Caches | None:
    """The cache tiers, or None when ``CACHE_CONFIG`` does not enable a cache.

    Args:
        config: ``CACHE_CONFIG``.
        link: The worker's Redis link; required by the ``redis`` and ``tiered`` backends
            (the settings refuse those without ``REDIS_URL``).
    """
    if not config.enable:
        return None
    secret = config.secret_file.read_bytes() if config.secret_file is not None else None
    memory = MemoryCache(config.max_size, config.ttl) if config.backend != "redis" else None
    redis = None
    if config.backend != "memory":
        if link is None:
            raise ValueError(f"the {config.backend!r} cache needs a Redis link (REDIS_URL)")
        redis = RedisCache(link, config.ttl)
    return Caches(memory, redis, CacheKeyer(secret))


class CacheMetrics:
    """Writes the cache's counts to the shared metrics at each watcher tick."""

    def __init__(self, scorer: Scorer, caches: Caches, environment: str) -> None:
        self._scorer = scorer
        self._caches = caches
        self._environment = environment
        self._evictions = metrics.CACHE_EVICTIONS.labels(TIER, environment)
        self._entries = metrics.CACHE_ENTRIES.labels(TIER, environment)
        operations = metrics.CACHE_REDIS_OPERATIONS
        # RedisCacheStats field -> its series (operation, result).
        self._redis = {
            field: operations.labels(op, result, environment)
            for field, op, result in (
                ("hits", "get", "hit"),
                ("misses", "get", "miss"),
                ("unavailable", "get", "unavailable"),
                ("unreadable", "get", "unreadable"),
                ("stored", "set", "stored"),
                ("dropped", "set", "dropped"),
            )
        }

    def flush(self) -> None:
        """Add what was counted since the last tick."""
        env = self._environment
        for vertical, (hits, misses) in self._scorer.take_cache_counts().items():
            if hits:
                metrics.CACHE_LOOKUPS.labels(vertical, "hit", env).inc(hits)
            if misses:
                metrics.CACHE_LOOKUPS.labels(vertical, "miss", env).inc(misses)
        memory, redis = self._caches.memory, self._caches.redis
        if memory is not None:
            stats = memory.take_stats()
            if stats.evictions:
                self._evictions.inc(stats.evictions)
            self._entries.set(len(memory))
        if redis is not None:
            counts = redis.take_stats()
            for field, counter in self._redis.items():
                value = getattr(counts, field)
                if value:
                    counter.inc(value)
