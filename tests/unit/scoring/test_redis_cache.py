"""The Redis tier of the prediction cache, against a real redis-server: shared across
scorers (as across workers and replicas), bit-identical, never stale, and never in the way
when Redis is dead or frozen."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.redis_cache import MAX_PENDING, PREFIX, RedisCache
from api.redis_link import CircuitBreaker, RedisLink
from engine.cache.keys import CacheKeyer
from engine.cache.memory import MemoryCache
from engine.scoring.model import load_model
from engine.scoring.result import Reason, ScoreResult
from engine.scoring.scorer import Scorer
from tests.redis_server import RedisServer

ENV = "unit-redis-cache"
SECRET = b"s" * 32
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def auto(trained, keyring):
    report = trained("auto")
    return report, load_model(report.path, keyring)


@pytest.fixture
def server(tmp_path):
    redis = RedisServer(tmp_path).start()
    yield redis
    redis.stop()


def link_to(server: RedisServer, timeout_ms: float = 500.0) -> RedisLink:
    """A link with room for a loaded test machine; the fault tests ask for 50 ms."""
    return RedisLink(server.url, ENV, timeout_ms, CircuitBreaker(3, 0.3))


def is_up(link: RedisLink) -> bool:
    """The breaker's state now (a call, so a type checker does not carry it over)."""
    return link.up


def scorer_with(config, model, remote, memory: MemoryCache | None = None) -> Scorer:
    scorer = Scorer(
        config, clock=lambda: NOW, cache=memory, keyer=CacheKeyer(SECRET), remote=remote
    )
    scorer.install(model)
    return scorer


def test_values_round_trip_bit_for_bit_and_batches_use_one_mget(server):
    async def main() -> None:
        link = link_to(server)
        cache = RedisCache(link, ttl=60)
        reasons = [Reason("age", 0.1 + 0.2, "up"), Reason("zip", -1e-300, "down")]
        cache.put(b"k" * 16, (0.1 + 0.2, reasons))
        cache.put(b"j" * 16, (5e-324, None))
        await cache.drain()
        assert await cache.get(b"k" * 16) == (0.1 + 0.2, reasons)
        assert await cache.get_many([b"j" * 16, b"x" * 16]) == [(5e-324, None), None]
        ttl = await link.client.pttl(PREFIX + b"k" * 16)
        assert 0 < ttl <= 60_000
        await link.client.set(PREFIX + b"bad" * 6, b"\xc1 not msgpack")
        assert await cache.get(b"bad" * 6) is None  # another layout reads as a miss
        stats = cache.take_stats()
        assert (stats.hits, stats.misses, stats.unreadable, stats.stored) == (2, 1, 1, 2)
        await link.close()

    asyncio.run(main())


def test_two_scorers_share_entries_and_answers_equal_the_uncached(auto, demo_config, server):
    report, model = auto
    leads = [dict(lead) for lead in report.holdout_leads[:30]]
    plain = scorer_with(demo_config, model, None)

    async def main() -> None:
        first_link, second_link = link_to(server), link_to(server)
        first = scorer_with(demo_config, model, RedisCache(first_link, 60))
        second = scorer_with(demo_config, model, RedisCache(second_link, 60), MemoryCache(100, 60))
        for explain in (False, True):
            for lead in leads:
                expected = plain.score("auto", lead, explain=explain)
                assert await first.score_async("auto", lead, explain=explain) == expected
            assert first.take_cache_counts()["auto"] == (0, len(leads))
            await first.remote.drain()  # type: ignore[union-attr]
            for lead in leads:  # another worker, another replica: Redis has them all
                expected = plain.score("auto", lead, explain=explain)
                assert await second.score_async("auto", lead, explain=explain) == expected
            assert second.take_cache_counts()["auto"] == (len(leads), 0)
            # Batches: memory (tiered) first, then one MGET, then predicted; same answers.
            fresh = [dict(lead, age=int(lead.get("age") or 40) + 1) for lead in leads[:5]]
            mixed = leads[:10] + fresh
            expected_batch = plain.score_batch("auto", mixed, explain=explain)
            assert await second.score_batch_async("auto", mixed, explain=explain) == expected_batch
            assert second.take_cache_counts()["auto"] == (10, 5)
        await first_link.close()
        await second_link.close()

    asyncio.run(main())


def test_an_invalid_lead_in_a_batch_fails_alone(auto, demo_config, server):
    report, model = auto
    leads: list = [dict(report.holdout_leads[0]), "not an object", dict(report.holdout_leads[1])]

    async def main() -> None:
        link = link_to(server)
        scorer = scorer_with(demo_config, model, RedisCache(link, 60))
        results = await scorer.score_batch_async("auto", leads)
        assert [type(r).__name__ for r in results] == ["ScoreResult", "LeadFailure", "ScoreResult"]
        only_bad: list = ["x"]
        assert await scorer.score_batch_async("auto", only_bad) != []  # no round trip
        await link.close()

    asyncio.run(main())


def test_a_new_model_version_never_reads_an_old_entry(auto, demo_config, server):
    report, model = auto
    lead = dict(report.holdout_leads[0])
    other = object.__new__(type(model))
    for name in model.__slots__:
        setattr(other, name, getattr(model, name))
    other.version = "9.9.9"

    async def main() -> None:
        link = link_to(server)
        scorer = scorer_with(demo_config, model, RedisCache(link, 60))
        await scorer.score_async("auto", lead)
        await scorer.remote.drain()  # type: ignore[union-attr]
        scorer.install(other)
        result = await scorer.score_async("auto", lead)
        assert result.model_version == "9.9.9"
        assert scorer.take_cache_counts()["auto"] == (0, 2)
        await link.close()

    asyncio.run(main())


def test_a_dead_or_frozen_redis_costs_a_bounded_wait_never_an_answer(auto, demo_config, server):
    report, model = auto
    leads = [dict(lead) for lead in report.holdout_leads[:40]]
    plain = scorer_with(demo_config, model, None)

    async def score_all(scorer: Scorer) -> float:
        """Every lead scored right; returns the slowest call in seconds."""
        slowest = 0.0
        for lead in leads:
            started = time.perf_counter()
            assert await scorer.score_async("auto", lead) == plain.score("auto", lead)
            slowest = max(slowest, time.perf_counter() - started)
        return slowest

    async def main() -> None:
        link = link_to(server, timeout_ms=50)
        cache = RedisCache(link, 60)
        scorer = scorer_with(demo_config, model, cache)
        server.pause()  # SIGSTOP: connections hang rather than fail
        try:
            slowest = await score_all(scorer)
        finally:
            server.resume()
        assert slowest < 1.0  # the 50 ms timeout, then the open breaker answers at once
        assert not is_up(link) and link.problem
        stats = cache.take_stats()
        assert stats.unavailable == len(leads)
        server.kill()
        assert await score_all(scorer) < 1.0
        server.start()  # back, empty: the breaker's probe closes it again
        await asyncio.sleep(0.4)
        await score_all(scorer)
        assert is_up(link)
        await link.close()

    asyncio.run(main())


def test_the_write_queue_is_bounded(server):
    async def main() -> None:
        link = link_to(server)
        cache = RedisCache(link, 60)
        for n in range(MAX_PENDING + 5):
            cache.put(n.to_bytes(16, "big"), (0.5, None))
        await cache.drain()
        stats = cache.take_stats()
        assert stats.dropped == 5 and stats.stored == MAX_PENDING
        assert await link.client.dbsize() == MAX_PENDING
        await link.close()

    asyncio.run(main())


class ReloadDuringLookup:
    """A remote tier that answers "miss" after a reload swapped the model and freed the
    old one, as ``api.runtime`` does between two requests while this one waits on Redis
    (a real Redis cannot be made to interleave at that exact point)."""

    def __init__(self, replacement) -> None:
        self.scorer: Scorer | None = None  # set once the scorer exists
        self.replacement = replacement

    async def get(self, key: bytes) -> object | None:
        self._reload()
        return None

    async def get_many(self, keys) -> list[object | None]:
        self._reload()
        return [None] * len(keys)

    def put(self, key: bytes, value: object) -> None:
        pass

    def _reload(self) -> None:
        assert self.scorer is not None
        previous = self.scorer.install(self.replacement)
        if previous is not None and previous is not self.replacement:
            previous.close()


def test_a_reload_during_the_lookup_scores_with_the_new_version(auto, demo_config, trained,
                                                                keyring):  # fmt: skip
    report, _ = auto
    leads = [dict(lead) for lead in report.holdout_leads[:5]]
    plain = scorer_with(demo_config, load_model(report.path, keyring), None)

    async def main() -> None:
        for batch in (False, True):
            old, new = load_model(report.path, keyring), load_model(report.path, keyring)
            new.version = "9.9.9"
            remote = ReloadDuringLookup(new)
            scorer = scorer_with(demo_config, old, remote)
            remote.scorer = scorer
            if batch:
                results = await scorer.score_batch_async("auto", leads)
                expected = plain.score_batch("auto", leads)
                assert all(isinstance(r, ScoreResult) for r in [*results, *expected])
                assert [r.model_version for r in results] == ["9.9.9"] * len(leads)  # type: ignore[union-attr]
                assert [r.score for r in results] == [r.score for r in expected]  # type: ignore[union-attr]
            else:
                result = await scorer.score_async("auto", leads[0])
                assert result.model_version == "9.9.9"  # not the freed version
                assert result.score == plain.score("auto", leads[0]).score
            new.close()

    asyncio.run(main())
