"""The Redis link against a real redis-server: bounded waits, and a breaker that stops
waiting on a dead or frozen Redis and probes it back."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from api.redis_link import BreakerState, CircuitBreaker, RedisLink
from tests.redis_server import RedisServer

ENV = "unit-redis"


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The breaker's state now (a call, so a type checker does not carry it over)."""
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_failures_and_probes_back():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=2.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert state_of(breaker) is BreakerState.CLOSED  # two failures: not yet
    breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN and not breaker.allow()
    clock.now += 2.0
    assert breaker.allow() and state_of(breaker) is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again, for another period
    assert state_of(breaker) is BreakerState.OPEN and not breaker.allow()
    clock.now += 2.0
    assert breaker.allow()
    breaker.success()
    assert state_of(breaker) is BreakerState.CLOSED and breaker.allow()
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


def up() -> float | None:
    return REGISTRY.get_sample_value("ml_redis_up", {"environment": ENV})


@pytest.fixture
def server(tmp_path):
    redis = RedisServer(tmp_path).start()
    yield redis
    redis.stop()


def test_calls_work_then_a_dead_redis_costs_bounded_time_then_it_comes_back(server):
    async def scenario() -> None:
        link = RedisLink(server.url, ENV, timeout_ms=50, breaker=CircuitBreaker(3, 0.3))
        assert await link.call(lambda r: r.set("k", "v")) is True
        assert await link.call(lambda r: r.get("k")) == b"v"
        assert up() == 1
        server.kill()
        started = time.monotonic()
        results = [await link.call(lambda r: r.get("k")) for _ in range(20)]
        elapsed = time.monotonic() - started
        assert results == [None] * 20
        # At most three calls waited (then the breaker answers at once): bounded.
        assert elapsed < 2.0
        assert state_of(link.breaker) is BreakerState.OPEN and up() == 0
        server.start()
        await asyncio.sleep(0.35)  # the breaker lets a probe through
        assert await link.call(lambda r: r.set("k", "again")) is True
        assert state_of(link.breaker) is BreakerState.CLOSED and up() == 1
        await link.close()

    asyncio.run(scenario())


def test_a_frozen_redis_times_out_instead_of_hanging(server):
    async def scenario() -> None:
        link = RedisLink(server.url, ENV, timeout_ms=50, breaker=CircuitBreaker(2, 10.0))
        assert await link.call(lambda r: r.ping()) is True
        failures_before = (
            REGISTRY.get_sample_value(
                "ml_redis_failures_total", {"reason": "timeout", "environment": ENV}
            )
            or 0.0
        )
        server.pause()
        try:
            started = time.monotonic()
            assert await link.call(lambda r: r.get("k")) is None
            assert time.monotonic() - started < 1.0  # the 50 ms bound, not a hang
            assert await link.call(lambda r: r.get("k")) is None
            assert state_of(link.breaker) is BreakerState.OPEN
            started = time.monotonic()
            assert await link.call(lambda r: r.get("k")) is None  # open: no wait at all
            assert time.monotonic() - started < 0.05
        finally:
            server.resume()
        failures = REGISTRY.get_sample_value(
            "ml_redis_failures_total", {"reason": "timeout", "environment": ENV}
        )
        assert failures is not None and failures >= failures_before + 2
        await link.close()

    asyncio.run(scenario())


def test_a_cancelled_probe_lets_the_next_call_probe(tmp_path):
    """A request cancelled while its call was the half-open probe must not leave the
    breaker half-open for ever."""
    server = RedisServer(tmp_path).start()

    async def main() -> None:
        link = RedisLink(server.url, ENV, 50, CircuitBreaker(1, 0.05))
        server.pause()
        assert await link.call(lambda client: client.ping()) is None  # opens
        await asyncio.sleep(0.06)
        probe = asyncio.ensure_future(link.call(lambda client: client.ping()))
        await asyncio.sleep(0.01)
        probe.cancel()  # the probe's request went away
        with pytest.raises(asyncio.CancelledError):
            await probe
        server.resume()
        assert await link.call(lambda client: client.ping()) is True  # probed again, closed
        assert state_of(link.breaker) is BreakerState.CLOSED
        await link.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()
