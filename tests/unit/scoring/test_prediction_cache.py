"""The prediction cache in the scorer: same answers, fewer predictions, never stale."""

from __future__ import annotations

import pytest

from engine.cache.keys import CacheKeyer
from engine.cache.memory import MemoryCache
from engine.scoring.model import load_model
from engine.scoring.scorer import Scorer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def auto(trained, keyring):
    report = trained("auto")
    return report, load_model(report.path, keyring)


def test_the_lru_is_bounded_honours_the_ttl_and_counts():
    clock = Clock()
    cache = MemoryCache(max_size=2, ttl=10, clock=clock)
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.get(b"a") == 1  # a is now the most recent
    cache.put(b"c", 3)  # evicts b, the least recently used
    assert cache.get(b"b") is None and cache.get(b"c") == 3 and len(cache) == 2
    clock.now += 11
    assert cache.get(b"a") is None and len(cache) == 1  # expired entries are dropped
    stats = cache.take_stats()
    assert (stats.hits, stats.misses, stats.evictions) == (2, 2, 1)
    assert cache.take_stats().hits == 0
    with pytest.raises(ValueError):
        MemoryCache(max_size=0, ttl=1)


def test_keys_separate_everything_that_changes_the_output():
    keyer = CacheKeyer(b"s" * 32)
    row = bytes(range(80))
    base = keyer.key("auto", "1.0.0", 0, row)
    assert base == keyer.key("auto", "1.0.0", 0, memoryview(row))
    assert len(base) == 16
    assert base != keyer.key("auto", "1.1.0", 0, row)  # a reload changes the version
    assert base != keyer.key("home", "1.0.0", 0, row)
    assert base != keyer.key("auto", "1.0.0", 3, row)  # explain asks for reasons
    assert base != keyer.key("auto", "1.0.0", 0, row[:-1] + b"\x00")
    assert base != CacheKeyer(b"t" * 32).key("auto", "1.0.0", 0, row)  # keyed
    with pytest.raises(ValueError):
        CacheKeyer(b"short")


def test_cached_answers_equal_uncached_ones_single_and_batch(auto, demo_config):
    report, model = auto
    leads = [dict(lead) for lead in report.holdout_leads[:50]]
    plain = Scorer(demo_config, clock=lambda: 1_800_000_000.0)
    cached_cache = MemoryCache(1000, 3600)
    cached = Scorer(demo_config, clock=lambda: 1_800_000_000.0, cache=cached_cache)
    plain.install(model)
    cached.install(model)
    for explain in (False, True):
        for lead in leads:
            expected = plain.score("auto", lead, explain=explain)
            assert cached.score("auto", lead, explain=explain) == expected  # miss
            assert cached.score("auto", lead, explain=explain) == expected  # hit
        batch = cached.score_batch("auto", leads, explain=explain)  # hits, from single rows
        assert batch == plain.score_batch("auto", leads, explain=explain)
    counts = cached.take_cache_counts()["auto"]
    assert counts[0] >= 150 and counts[1] <= 100  # hits, misses
    assert cached.take_cache_counts() == {}


def test_a_batch_predicts_only_its_misses_and_a_new_version_misses(auto, demo_config, trained):
    report, model = auto
    leads = [dict(lead) for lead in report.holdout_leads[:20]]
    cache = MemoryCache(1000, 3600)
    scorer = Scorer(demo_config, cache=cache)
    scorer.install(model)
    for lead in leads[:5]:
        scorer.score("auto", lead)
    scorer.take_cache_counts()
    scorer.score_batch("auto", leads)
    assert scorer.take_cache_counts()["auto"] == (5, 15)
    # The same model under another version string is another key: nothing stale.
    other = object.__new__(type(model))
    for name in model.__slots__:
        setattr(other, name, getattr(model, name))
    other.version = "9.9.9"
    scorer.install(other)
    scorer.score("auto", leads[0])
    assert scorer.take_cache_counts()["auto"] == (0, 1)
