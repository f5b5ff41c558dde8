"""The Redis tier of the prediction cache: shared by every worker of every replica.

``RedisCache`` implements ``engine.cache.RemoteCache`` over ``api.redis_link.RedisLink``:

- A read is one ``GET`` (a batch's misses one ``MGET``), bounded by the link's timeout
  and skipped while its circuit breaker is open. Whatever goes wrong (Redis down,
  paused, a value this release cannot read) answers "miss": the scorer predicts, so
  Redis can cost a request a bounded wait, never its answer.
- Writes never wait: ``put`` queues the value and the queue is sent in the background as
  one pipeline of ``SET key value PX ttl`` per event-loop pass, so requests that miss
  together share a round trip. The queue is bounded (``MAX_PENDING``); beyond it, and
  while Redis is unreachable, writes are dropped and counted (a cache may forget).
- Values are msgpack of (score, reasons): floats travel as IEEE doubles, so a score
  read back is bit-identical to the one predicted. Keys are the keyer's 16-byte keyed
  hashes under ``PREFIX``: nothing in Redis reveals a lead.

The counts (``stats``) go to ``ml_cache_redis_operations_total`` at each watcher tick
(``api.prediction_cache``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import msgspec

from api.redis_link import RedisLink
from engine.scoring.result import Reason

PREFIX = b"ml-service:cache:"
MAX_PENDING = 10_000
"""Writes queued at most; a burst of misses beyond it is not cached rather than buffered."""

PIPELINE = 256
"""Writes per pipeline (about a millisecond of Redis work; measured by bench_cache)."""

_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(tuple[float, list[Reason] | None]).decode


class RedisCacheStats(msgspec.Struct):
    """Operation counts since the last ``take_stats``, by outcome."""

    hits: int = 0
    misses: int = 0
    unavailable: int = 0  # reads answered "miss" because Redis could not be asked
    unreadable: int = 0  # values that did not decode (another release's layout)
    stored: int = 0
    dropped: int = 0  # writes not sent: queue full or Redis unreachable


class RedisCache:
    """The prediction cache's Redis tier (see the module docstring).

    Args:
        link: The worker's Redis link (timeouts and circuit breaker).
        ttl: Seconds an entry lives in Redis.
    """

    def __init__(self, link: RedisLink, ttl: float) -> None:
        self._link = link
        self._ttl_ms = max(1, int(ttl * 1000))
        self._pending: list[tuple[bytes, bytes]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self.stats = RedisCacheStats()

    async def get(self, key: bytes) -> object | None:
        """The value under ``key``; None when missing or when Redis cannot answer."""

        async def fetch(client: Any) -> tuple[bytes | None]:
            return (await client.get(PREFIX + key),)  # a tuple: None is the link's failure

        answer = await self._link.call(fetch)
        if answer is None:
            self.stats.unavailable += 1
            return None
        if answer[0] is None:
            self.stats.misses += 1
            return None
        return self._decode(answer[0])

    async def get_many(self, keys: Sequence[bytes]) -> list[object | None]:
        """The values of ``keys`` with one ``MGET``; all None when Redis cannot answer."""
        raws: list[Any] | None = await self._link.call(
            lambda client: client.mget([PREFIX + key for key in keys])
        )
        if raws is None:
            self.stats.unavailable += len(keys)
            return [None] * len(keys)
        values: list[object | None] = []
        for raw in raws:
            if raw is None:
                self.stats.misses += 1
                values.append(None)
            else:
                values.append(self._decode(raw))
        return values

    def _decode(self, raw: bytes) -> object | None:
        try:
            value = _DECODE(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.stats.unreadable += 1
            return None
        self.stats.hits += 1
        return value

    def put(self, key: bytes, value: object) -> None:
        """Queue ``value`` for Redis; the queue goes out in the background."""
        if len(self._pending) >= MAX_PENDING:
            self.stats.dropped += 1
            return
        self._pending.append((PREFIX + key, _ENCODE(value)))
        if not self._flushing:
            self._flushing = True
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send the queue as pipelines until it is empty."""
        try:
            while self._pending:
                # At most PIPELINE writes per round trip, so each fits in the link's timeout.
                batch, self._pending = self._pending[:PIPELINE], self._pending[PIPELINE:]
                if await self._link.call(functools.partial(self._send, batch=batch)) is None:
                    self.stats.dropped += len(batch)
                else:
                    self.stats.stored += len(batch)
        finally:
            self._flushing = False

    async def _send(self, client: Any, batch: list[tuple[bytes, bytes]]) -> Any:
        pipe = client.pipeline(transaction=False)
        for key, raw in batch:
            pipe.set(key, raw, px=self._ttl_ms)
        return await pipe.execute()

    async def drain(self) -> None:
        """Wait for the queued writes to be sent (shutdown, tests)."""
        task = self._flush_task
        if task is not None:
            await task

    def take_stats(self) -> RedisCacheStats:
        """Return the counts so far and start new ones (the metrics flush)."""
        stats, self.stats = self.stats, RedisCacheStats()
        return stats
