"""The fleet tier's connection to Redis: bounded waits, and a circuit breaker.

Redis is the fleet tier (shared cache, reload propagation, demand, feedback across
replicas), never a requirement: every caller has a local fallback, and a Redis that is
down, paused or restarting must cost a request at most a bounded wait. So every call
goes through ``RedisLink.call``:

- it waits at most ``timeout`` (milliseconds, not the client's default seconds), and a
  timeout, a refused connection or a Redis error counts as a failure and returns
  ``None`` (the caller then uses its local state);
- after ``failure_threshold`` failures in a row the breaker *opens*: calls return
  ``None`` at once, without touching the network, for ``reset_seconds``;
- then one call is let through as a probe (*half-open*): success closes the breaker,
  failure opens it again for another ``reset_seconds``.

The state is exported as ``ml_redis_up`` (1 closed, 0 open or half-open) and failures as
``ml_redis_failures_total{reason}``, and logged on every change.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from api import metrics

T = TypeVar("T")
log = logging.getLogger("ml_service.redis")


class BreakerState(enum.Enum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a dependency that keeps failing, and probes it back.

    Args:
        failure_threshold: Failures in a row that open the breaker.
        reset_seconds: How long it stays open before one probe is let through.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or reset_seconds <= 0:
            raise ValueError("a breaker needs failure_threshold >= 1 and reset_seconds > 0")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    def allow(self) -> bool:
        """Whether a call may go out now (an open breaker lets one probe through)."""
        if self.state is BreakerState.CLOSED:
            return True
        if (
            self.state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_seconds
        ):
            self.state = BreakerState.HALF_OPEN
            return True
        return False  # open, or half-open with its probe already out

    def success(self) -> None:
        """A call succeeded: close."""
        self._failures = 0
        self.state = BreakerState.CLOSED

    def abandon(self) -> None:
        """A call went out and was cancelled (its request ended): neither verdict.

        A cancelled probe must not leave the breaker half-open for ever (no second probe
        would ever go out): it lets the next call probe instead.
        """
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self._opened_at = self._clock() - self.reset_seconds

    def failure(self) -> None:
        """A call failed: open after enough in a row (a failed probe reopens at once)."""
        self._failures += 1
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()


class RedisLink:
    """One Redis client (a connection pool) behind a breaker, with bounded waits.

    Args:
        url: ``redis://host:port/db`` (``REDIS_URL``).
        environment: The ``environment`` metric label.
        timeout_ms: The longest a call may wait, connecting included.
        breaker: The circuit breaker (a default one when omitted).
    """

    def __init__(
        self,
        url: str,
        environment: str,
        timeout_ms: float = 50.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        seconds = timeout_ms / 1000.0
        self.client: Any = aioredis.Redis.from_url(
            url, socket_timeout=seconds, socket_connect_timeout=seconds
        )
        self.timeout = seconds
        self.breaker = breaker or CircuitBreaker()
        self._environment = environment
        self._up = metrics.REDIS_UP.labels(environment)
        self._up.set(1)
        self._last_state = self.breaker.state
        self.problem: str | None = None  # the last failure, while the breaker is not closed

    async def call(self, command: Callable[[Any], Awaitable[T]]) -> T | None:
        """Run ``command(client)``; None when the breaker is open or the call fails."""
        breaker = self.breaker
        if not breaker.allow():
            return None
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the call in a new task,
            # which costs more than the Redis round trip on a cache hit.
            async with asyncio.timeout(self.timeout):
                result = await command(self.client)
        except asyncio.CancelledError:
            breaker.abandon()
            raise
        except (TimeoutError, RedisError, OSError) as exc:
            breaker.failure()
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            metrics.REDIS_FAILURES.labels(reason, self._environment).inc()
            self._report(exc)
            return None
        breaker.success()
        self._report(None)
        return result

    @property
    def up(self) -> bool:
        """Whether the breaker is closed (calls go to Redis)."""
        return self.breaker.state is BreakerState.CLOSED

    def _report(self, exc: BaseException | None) -> None:
        state = self.breaker.state
        if exc is not None:
            self.problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if state is self._last_state:
            return
        self._last_state = state
        self._up.set(1 if state is BreakerState.CLOSED else 0)
        if state is BreakerState.CLOSED:
            log.warning("redis is back: fleet features resume")
        else:
            log.error(
                "redis unavailable: fleet features fall back to local state",
                extra={"state": state.value, "problem": repr(exc)},
            )

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
