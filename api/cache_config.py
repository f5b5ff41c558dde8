"""``CACHE_CONFIG``: the prediction cache (``engine.cache``), off unless configured.

The variable holds a JSON object (the seed's ``{"enable": true, "ttl": 3600}`` works)::

    {"enable": true, "ttl": 3600, "max_size": 10000, "backend": "memory",
     "secret_file": "/path/to/secret"}

- ``enable`` (default false): cache the model's output per (vertical, version, encoded
  lead). Off by default, because what it saves depends on repeats.
- ``ttl`` (seconds, default 3600) and ``max_size`` (entries per worker in the memory
  tier, default 10000).
- ``backend``: ``memory`` (default: an LRU in each worker), ``redis`` (one shared tier,
  ``api.redis_cache``) or ``tiered`` (memory in front of Redis). The shared ones need
  ``REDIS_URL`` and a ``secret_file``, the same on every replica (processes share
  entries only if they compute the same keys).
- ``secret_file``: the key of the cache's keyed hash (32 bytes at least); a random one
  per worker when absent (a worker's own cache needs nothing shared).

When each backend pays off, measured by ``bench/bench_cache.py`` (``docs/scale-out.md``
has the table): a memory hit costs 6 to 9 µs against 12 µs to score a demo lead,
470 µs to explain one and 370 µs to score on a 1,337-tree model; a Redis hit costs 150
to 210 µs (a round trip through redis-py), so the Redis tier never pays for a small
model and pays for large models and ``explain`` only when most leads are repeats
somewhere in the fleet. Hence the defaults: off, and ``memory`` when on.

An invalid value stops the service at start with a message naming ``CACHE_CONFIG``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from api.json_setting import json_object

VARIABLE = "CACHE_CONFIG"
BACKENDS = ("memory", "redis", "tiered")
SHARED = ("redis", "tiered")  # backends whose entries other processes read


class CacheError(ValueError):
    """``CACHE_CONFIG`` is not a valid cache configuration."""


class CacheConfig(msgspec.Struct, frozen=True):
    """The prediction cache's settings (see the module docstring)."""

    enable: bool = False
    ttl: float = 3600.0
    max_size: int = 10_000
    backend: Literal["memory", "redis", "tiered"] = "memory"
    secret_file: Path | None = None


def parse_cache_config(raw: str | None) -> CacheConfig:
    """Parse ``CACHE_CONFIG`` (unset or empty: no cache).

    Raises:
        CacheError: Not a JSON object, an unknown key, a value of the wrong type or out
            of range, or a backend this release does not have; the message names the
            variable and the key.
    """
    if raw is None or not raw.strip():
        return CacheConfig()
    known = ("enable", "ttl", "max_size", "backend", "secret_file")
    document = json_object(VARIABLE, raw, known, CacheError)
    enable = document.get("enable", False)
    if not isinstance(enable, bool):
        raise CacheError(f"{VARIABLE}: enable must be true or false")
    ttl = document.get("ttl", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 30 * 86400:
        raise CacheError(f"{VARIABLE}: ttl must be a number of seconds in (0, 2592000]")
    size = document.get("max_size", 10_000)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10_000_000:
        raise CacheError(f"{VARIABLE}: max_size must be a whole number from 1 to 10000000")
    backend = document.get("backend", "memory")
    if backend not in BACKENDS:
        raise CacheError(f"{VARIABLE}: backend must be one of {', '.join(BACKENDS)}")
    secret = document.get("secret_file")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise CacheError(f"{VARIABLE}: secret_file must be a path")
    if enable and backend in SHARED and secret is None:
        # Processes share entries only if they compute the same keys: one secret for all.
        raise CacheError(
            f"{VARIABLE}: backend {backend!r} is shared by every worker and replica, so it "
            "needs a secret_file (the same file everywhere)"
        )
    return CacheConfig(
        enable, float(ttl), size, backend, Path(secret) if secret is not None else None
    )
