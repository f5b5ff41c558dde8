"""Demand shared through a real redis-server: two "replicas" (a FleetDemand and its
DemandSync each) see the fleet's total; Redis killed, restarted empty or frozen costs
them the fleet view, never an error or a long wait, and the view comes back."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.fleet_demand import DemandSync
from api.redis_link import CircuitBreaker, RedisLink
from engine.pricing.demand import FleetDemand
from tests.redis_server import RedisServer

ENV = "unit-fleet-demand"
WINDOW = 300  # 5 s Redis buckets
T0 = 1_700_000_000.0


class Clock:
    """The replicas' shared epoch clock (in step, as NTP keeps real hosts)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Replica:
    def __init__(
        self, url: str, clock: Clock, interval: float = 1.0, timeout_ms: float = 500
    ) -> None:
        # 500 ms: a loaded test machine must not turn a healthy Redis into a "failure";
        # the tests of a frozen Redis ask for the service's 50 ms.
        self.clock = clock
        self.link = RedisLink(url, ENV, timeout_ms=timeout_ms, breaker=CircuitBreaker(3, 0.2))
        self.demand = FleetDemand(WINDOW, {"life": 60})
        self.sync = DemandSync(
            self.link, self.demand, {"auto": WINDOW, "life": 60}, interval, clock=clock
        )

    def leads(self, count: int, vertical: str = "auto") -> None:
        for _ in range(count):
            self.demand.record(vertical, self.clock.now)

    def rate(self, vertical: str = "auto") -> float:
        return self.demand.rate(vertical, self.clock.now)

    async def close(self) -> None:
        await self.link.close()


def per_minute(leads: int, window: int = WINDOW) -> float:
    return leads * 60.0 / window


async def sync_until_ok(*replicas: Replica, seconds: float = 5.0) -> None:
    """Sync each replica until Redis answers (the breaker lets a probe through)."""
    deadline = time.monotonic() + seconds
    for replica in replicas:
        while not await replica.sync.sync_once():
            assert time.monotonic() < deadline, "redis did not come back"
            await asyncio.sleep(0.05)


@pytest.fixture
def server(tmp_path):
    redis = RedisServer(tmp_path).start()
    yield redis
    redis.stop()


def test_two_replicas_see_the_fleet_total(server):
    async def scenario() -> None:
        clock = Clock()
        a, b = Replica(server.url, clock), Replica(server.url, clock)
        a.leads(30)
        b.leads(50)
        b.leads(6, "life")
        assert a.rate() == per_minute(30)  # alone until a sync
        assert await a.sync.sync_once() and await b.sync.sync_once()
        assert await a.sync.sync_once()  # a reads what b pushed after a's first sync
        for replica in (a, b):
            assert replica.rate() == per_minute(80)
            assert replica.rate("life") == per_minute(6, 60)
        # A lead after the sync counts at once on the replica that saw it.
        clock.now += 1
        assert a.demand.record("auto", clock.now) == per_minute(80)
        assert a.rate() == per_minute(81) and b.rate() == per_minute(80)
        # Leads leave the fleet window as they leave the local one.
        clock.now += WINDOW + 5
        assert await a.sync.sync_once()
        assert a.rate() == 0.0
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_redis_killed_then_restarted_empty_the_backlog_is_pushed(server):
    async def scenario() -> None:
        clock = Clock()
        a, b = Replica(server.url, clock), Replica(server.url, clock)
        a.leads(10)
        b.leads(2)
        await sync_until_ok(a, b, a)
        assert a.rate() == b.rate() == per_minute(12)

        server.kill()
        a.leads(7)  # pending when Redis died
        for _ in range(5):  # fails, then the breaker is open: no error either way
            assert not await a.sync.sync_once()
            assert not await b.sync.sync_once()
        assert not a.demand.is_fresh("auto", clock.now)
        assert a.rate() == per_minute(17) and b.rate() == per_minute(2)  # local
        clock.now += 30
        a.leads(3)  # recorded while Redis is down
        b.leads(4)

        server.start()  # empty: the 12 pushed before are gone
        await asyncio.sleep(0.25)  # the breaker's reset period: a probe may go out
        await sync_until_ok(a, b, a)
        assert a.demand.is_fresh("auto", clock.now) and b.demand.is_fresh("auto", clock.now)
        # The backlog was pushed: a's 7 + 3 and b's 4 make the fleet's 14 ...
        assert b.rate() == per_minute(14)  # more than b's own 6
        assert a.rate() == per_minute(20)  # ... but never below a's own 20
        b.leads(20)
        await sync_until_ok(b, a)
        assert a.rate() == b.rate() == per_minute(34)
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_the_backlog_keeps_only_the_window(server):
    async def scenario() -> None:
        clock = Clock()
        a, b = Replica(server.url, clock), Replica(server.url, clock)
        server.kill()
        a.leads(5)
        assert not await a.sync.sync_once()
        clock.now += WINDOW  # Redis stays down for a whole window
        a.leads(2)
        assert not await a.sync.sync_once()
        server.start()
        await asyncio.sleep(0.25)
        await sync_until_ok(a, b)
        assert b.rate() == per_minute(2)  # the 5 older leads left the window: not pushed
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_a_frozen_redis_costs_a_bounded_wait_and_counts_at_least_once(server):
    async def scenario() -> None:
        clock = Clock()
        a, b = Replica(server.url, clock, timeout_ms=50), Replica(server.url, clock)
        a.leads(10)
        await sync_until_ok(a, b)
        assert b.rate() == per_minute(10)
        server.pause()
        try:
            a.leads(5)
            started = time.monotonic()
            assert not await a.sync.sync_once()
            assert time.monotonic() - started < 1.0  # the link's 50 ms, not a hang
            for _ in range(3):
                assert not await a.sync.sync_once()
            assert a.rate() == per_minute(15)  # local
        finally:
            server.resume()
        await asyncio.sleep(0.25)
        await sync_until_ok(a, b)
        # The 5 leads are pushed again; the pipeline in flight when Redis froze may also
        # have run when it thawed: at least once, and at most one batch twice.
        assert per_minute(15) <= b.rate() <= per_minute(20)
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_the_loop_syncs_and_stop_pushes_the_rest(server):
    async def scenario() -> None:
        clock = Clock()
        a = Replica(server.url, clock, interval=0.05)
        b = Replica(server.url, clock)
        a.sync.start()
        a.sync.start()  # a second start does nothing
        a.leads(12)
        deadline = time.monotonic() + 5
        while b.rate() != per_minute(12):
            assert time.monotonic() < deadline, "the loop did not push"
            await asyncio.sleep(0.05)
            await b.sync.sync_once()
        a.leads(3)
        await a.sync.stop()  # the last leads are pushed, not lost
        assert await b.sync.sync_once()
        assert b.rate() == per_minute(15)
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_keys_expire_and_a_window_is_bounded(server):
    async def scenario() -> None:
        clock = Clock()
        a = Replica(server.url, clock)
        for _ in range(WINDOW * 2):  # two windows, one lead a second
            a.leads(1)
            clock.now += 1
        assert await a.sync.sync_once()
        keys = await a.link.call(lambda r: r.keys("ml-service:demand:*"))
        assert keys is not None and 0 < len(keys) <= 60  # only the window's buckets
        ttl = await a.link.call(lambda r: r.ttl(keys[0]))
        assert ttl is not None and 0 < ttl <= WINDOW + 5
        await a.close()

    asyncio.run(scenario())


def test_a_rejected_command_loses_nothing_else(server):
    async def scenario() -> None:
        clock = Clock()
        a, b = Replica(server.url, clock), Replica(server.url, clock)
        # A foreign value of the wrong type where a "life" bucket lives.
        width = a.demand.layout("life")[0]
        key = f"ml-service:demand:{{life}}:{width}:{int(clock.now) // width}"
        assert await a.link.call(lambda r: r.rpush(key, "x")) == 1
        a.leads(4)
        a.leads(2, "life")
        assert await a.sync.sync_once()  # Redis answered: auto is shared, life kept
        assert await b.sync.sync_once()
        assert b.rate() == per_minute(4)
        assert a.demand.take_pending() == {"life": {int(clock.now): 2}}
        await a.close()
        await b.close()

    asyncio.run(scenario())


def test_configuration_mistakes_are_refused(server):
    async def scenario() -> None:
        link = RedisLink(server.url, ENV)
        demand = FleetDemand(WINDOW, stale_after=3.0)
        with pytest.raises(ValueError, match="interval"):
            DemandSync(link, demand, {"auto": WINDOW}, interval=3.0)
        with pytest.raises(ValueError, match="auto"):
            DemandSync(link, demand, {"auto": 60})
        await link.close()

    asyncio.run(scenario())
