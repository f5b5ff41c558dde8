"""The Redis monitoring store against a real redis-server: the shared contract, replicas
sharing one Redis, atomic outcomes, expiries, and Redis killed, frozen or restarted.

Each test starts its own server (``tests.redis_server``: no persistence, so a restart is
empty). Stores run on a clock fixed at ``NOW`` unless a test needs real time: expiries
are relative to the store's clock, so nothing here waits for a real retention.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
import redis

from engine.monitoring import redis_store
from engine.monitoring.redis_store import (
    EXPIRY_GRACE_SECONDS,
    LAYOUT_VERSION,
    RedisMonitoringStore,
    open_redis_store,
)
from engine.monitoring.store import MonitoringStore, Outcome, StoreUnavailable, epoch_minute
from tests.redis_server import RedisServer
from tests.unit.monitoring.store_contract import DAY, NOW, StoreContract, lead, row

# A dead or frozen Redis may cost a call a few timeouts (connect, one retry), never more.
BOUNDED_SECONDS = 1.0


def conforms(store: RedisMonitoringStore) -> MonitoringStore:
    """mypy (run on the tests) fails here if the store drifts from the Protocol."""
    return store


@pytest.fixture
def server(tmp_path):
    started = RedisServer(tmp_path).start()
    yield started
    started.stop()


@pytest.fixture
def raw(server):
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


@pytest.fixture
def make_store(server):
    """Handles on one store, as separate workers or replicas open them."""
    opened: list[RedisMonitoringStore] = []

    def make(
        retention_seconds: float = 30 * DAY,
        counts_retention_seconds: float = 7 * DAY,
        **options,
    ) -> RedisMonitoringStore:
        options.setdefault("clock", lambda: NOW)
        store, _ = open_redis_store(
            server.url, retention_seconds, counts_retention_seconds, **options
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class TestRedisStoreContract(StoreContract):
    """The ``MonitoringStore`` contract on Redis."""


def timed(call, *args):
    """Run ``call(*args)``; return its result (or exception) and the seconds it took."""
    start = time.monotonic()
    try:
        result = call(*args)
    except Exception as exc:
        result = exc
    return result, time.monotonic() - start


# -- opening ---------------------------------------------------------------------------


def test_opening_marks_an_empty_redis_and_finds_the_mark_again(server, raw) -> None:
    first, report = open_redis_store(server.url)
    assert (report.created, report.recovered, report.problem, report.moved_to) == (
        True,
        False,
        None,
        None,
    )
    assert raw.get("ml-service:monitoring:layout") == str(LAYOUT_VERSION).encode()
    second, again = open_redis_store(server.url)
    assert (again.created, again.problem) == (False, None)
    first.close()
    second.close()


def test_a_mark_of_another_layout_is_reported_and_left_alone(server, raw) -> None:
    raw.set("ml-service:monitoring:layout", "99")
    store, report = open_redis_store(server.url, clock=lambda: NOW)
    try:
        assert not report.created and report.problem is not None and "99" in report.problem
        assert raw.get("ml-service:monitoring:layout") == b"99"
        store.remember([lead("a")])  # this layout's keys live beside the other's
        assert store.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
    finally:
        store.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        RedisMonitoringStore("redis://127.0.0.1:1/0", retention_seconds=0)
    with pytest.raises(ValueError, match="timeout_ms"):
        RedisMonitoringStore("redis://127.0.0.1:1/0", timeout_ms=0)


def test_a_store_opened_before_redis_starts_catches_up(tmp_path) -> None:
    server = RedisServer(tmp_path)  # its port is chosen, nothing listens yet
    store, report = open_redis_store(server.url, clock=lambda: NOW)
    try:
        assert not report.created and report.problem and "unavailable" in report.problem
        store.remember([lead("a"), lead("b")])
        store.add_counts([row("age", epoch_minute(NOW), [1, 2])])
        assert (store.backlog_leads, store.backlog_count_rows, store.backlog) == (2, 1, 3)
        with pytest.raises(StoreUnavailable):
            store.record_outcomes([Outcome("a", True, NOW)], NOW)
        server.start()
        try:
            assert store.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
            assert store.backlog == 0 and store.dropped == 0
            assert store.counts("auto", "1.0.0", "champion", "age", 0) == [1, 2]
        finally:
            server.stop()
    finally:
        store.close()


# -- replicas --------------------------------------------------------------------------


def test_two_replicas_share_leads_outcomes_and_counts(make_store) -> None:
    a, b = make_store(), make_store()
    a.remember([lead("x", 0.8), lead("y", 0.1)])
    b.remember([lead("z", 0.6, vertical="home")])
    assert b.record_outcomes([Outcome("x", True, NOW), Outcome("z", False, NOW)], NOW) == [
        "recorded",
        "recorded",
    ]
    assert a.record_outcomes([Outcome("x", False, NOW), Outcome("y", True, NOW)], NOW) == [
        "duplicate",
        "recorded",
    ]
    assert a.labelled("auto", 0).converted == b.labelled("auto", 0).converted == [True, True]
    assert a.labelled("home", 0).scores == [0.6]
    m = epoch_minute(NOW)
    a.add_counts([row("__score__", m, [1, 0, 2])])
    b.add_counts([row("__score__", m, [0, 5]), row("__score__", m, [1], version="2.0.0")])
    for replica in (a, b):
        assert replica.counts("auto", "1.0.0", "champion", "__score__", 0) == [1, 5, 2]
        assert replica.versions_with_counts("auto", 0) == [
            ("1.0.0", "champion"),
            ("2.0.0", "champion"),
        ]


def test_an_outcome_raced_by_replicas_is_recorded_once(make_store) -> None:
    ids = [f"lead-{i}" for i in range(300)]
    make_store().remember([lead(i) for i in ids])
    replicas = [make_store() for _ in range(6)]
    barrier = threading.Barrier(len(replicas))
    statuses: list[Counter[tuple[str, str]]] = [Counter() for _ in replicas]

    def report(n: int) -> None:
        mine = ids[:]
        random.Random(n).shuffle(mine)
        barrier.wait()
        for start in range(0, len(mine), 25):
            batch = [Outcome(i, n % 2 == 0, NOW) for i in mine[start : start + 25]]
            got = replicas[n].record_outcomes(batch, NOW)
            statuses[n].update(zip((o.lead_id for o in batch), got, strict=True))

    threads = [threading.Thread(target=report, args=(n,)) for n in range(len(replicas))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = sum(statuses, Counter())
    assert all(total[(i, "recorded")] == 1 for i in ids)
    assert all(total[(i, "duplicate")] == len(replicas) - 1 for i in ids)
    assert len(replicas[0].labelled("auto", 0).scores) == len(ids)


# -- faults ----------------------------------------------------------------------------


def test_a_killed_redis_fails_reads_and_outcomes_and_buffers_writes(server, make_store) -> None:
    store = make_store()
    store.remember([lead("before")])
    m = epoch_minute(NOW)
    server.kill()

    for write in (
        lambda: store.remember([lead("during", 0.2), lead("during-2")]),
        lambda: store.remember([lead("during", 0.3)]),  # re-scored: the last one wins
        lambda: store.add_counts([row("age", m, [1, 1]), row("age", m - 61, [2, 0])]),
    ):
        result, seconds = timed(write)
        assert result is None and seconds < BOUNDED_SECONDS
    assert (store.backlog_leads, store.backlog_count_rows) == (3, 2)
    for read in (
        lambda: store.record_outcomes([Outcome("before", True, NOW)], NOW),
        lambda: store.labelled("auto", 0),
        lambda: store.counts("auto", "1.0.0", "champion", "age", 0),
        lambda: store.versions_with_counts("auto", 0),
        lambda: store.prune(NOW),
    ):
        result, seconds = timed(read)
        assert isinstance(result, StoreUnavailable) and seconds < BOUNDED_SECONDS

    server.start()  # same port, empty: what was written before the kill is gone
    assert store.record_outcomes(
        [Outcome("before", True, NOW), Outcome("during", True, NOW)], NOW
    ) == ["unknown", "recorded"]
    assert store.labelled("auto", 0).scores == [0.3]
    assert store.counts("auto", "1.0.0", "champion", "age", 0) == [3, 1]
    assert store.versions_with_counts("auto", 0) == [("1.0.0", "champion")]
    assert (store.backlog, store.dropped) == (0, 0)


def test_a_frozen_redis_costs_a_bounded_wait_and_counts_land_once(server, make_store) -> None:
    store = make_store()
    m = epoch_minute(NOW)
    store.add_counts([row("age", m, [1, 0])])
    server.pause()
    try:
        # Sent to the frozen Redis: it runs them when it thaws, and they are sent again.
        result, seconds = timed(store.add_counts, [row("age", m, [10, 1])])
        assert result is None and seconds < BOUNDED_SECONDS
        result, seconds = timed(store.remember, [lead("a")])
        assert result is None and seconds < BOUNDED_SECONDS
        result, seconds = timed(store.record_outcomes, [Outcome("a", True, NOW)], NOW)
        assert isinstance(result, StoreUnavailable) and seconds < BOUNDED_SECONDS
        assert store.backlog == 2
    finally:
        server.resume()
    assert store.counts("auto", "1.0.0", "champion", "age", 0) == [11, 1]
    assert store.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
    assert store.backlog == 0


def test_the_backlog_is_bounded_and_drops_the_oldest(server, make_store) -> None:
    store = make_store(max_backlog_leads=5, max_backlog_count_rows=4)
    m = epoch_minute(NOW)
    server.kill()
    for i in range(8):
        store.remember([lead(f"lead-{i}")])
    for n in range(3):  # chunks of two rows: the oldest chunk goes
        store.add_counts([row("age", m, [n]), row("make", m, [n])])
    assert (store.backlog_leads, store.dropped_leads) == (5, 3)
    assert (store.backlog_count_rows, store.dropped_count_rows) == (4, 2)
    assert store.dropped == 5
    server.start()
    statuses = store.record_outcomes([Outcome(f"lead-{i}", True, NOW) for i in range(8)], NOW)
    assert statuses == ["unknown"] * 3 + ["recorded"] * 5
    assert store.counts("auto", "1.0.0", "champion", "age", 0) == [3]


def test_closing_tries_the_backlog_once_more_then_counts_it_dropped(server, make_store) -> None:
    store = make_store()
    server.kill()
    store.remember([lead("a")])
    store.add_counts([row("age", 1, [1])])
    store.close()
    assert (store.backlog, store.dropped_leads, store.dropped_count_rows) == (0, 1, 1)

    server.start()
    other = make_store()
    other.remember([lead("b")])
    server.kill()
    other.remember([lead("c")])
    server.start()  # empty again, but up: closing writes the backlog
    other.close()
    assert (other.backlog, other.dropped) == (0, 0)
    assert make_store().record_outcomes([Outcome("c", True, NOW)], NOW) == ["recorded"]


def test_a_write_redis_refuses_for_good_is_dropped_not_retried(raw, make_store) -> None:
    store = make_store()
    raw.set("ml-service:monitoring:v1:lead:squatter", "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.remember([lead("squatter"), lead("fine")])
    assert (store.backlog, store.dropped_leads) == (0, 2)
    store.remember([lead("next")])
    assert store.record_outcomes([Outcome("next", True, NOW)], NOW) == ["recorded"]


def test_scripts_forgotten_by_redis_are_loaded_again(raw, make_store) -> None:
    store = make_store()
    store.remember([lead("a")])
    raw.script_flush()
    store.remember([lead("b")])
    assert store.record_outcomes([Outcome("a", True, NOW), Outcome("b", True, NOW)], NOW) == [
        "recorded",
        "recorded",
    ]
    raw.script_flush()
    store.add_counts([row("age", 1, [1])])
    raw.script_flush()
    assert store.prune(NOW) == 1


# -- expiry and pruning ----------------------------------------------------------------


def test_keys_expire_by_the_store_clock(raw, make_store) -> None:
    store = make_store(retention_seconds=10 * DAY, counts_retention_seconds=DAY)
    store.remember([lead("fresh", at=NOW - 60), lead("stale", at=NOW - 11 * DAY)])
    store.record_outcomes([Outcome("fresh", True, NOW)], NOW)
    m = epoch_minute(NOW)
    store.add_counts([row("age", m, [1])])

    def ttl(key: str) -> float:
        return float(raw.pttl(f"ml-service:monitoring:v1:{key}")) / 1000

    grace = EXPIRY_GRACE_SECONDS
    assert ttl("lead:fresh") == pytest.approx(10 * DAY - 60 + grace, abs=1)
    assert ttl("lead:stale") == pytest.approx(grace, abs=1)
    assert ttl("labelled:auto") == pytest.approx(10 * DAY - 60 + grace, abs=1)
    hour_end = (m // 60 + 1) * 3600
    series = '["auto","1.0.0","champion","age"]'
    for key in (f"minutes:{series}:{m // 60}", f"hours:{series}", "versions:auto"):
        assert ttl(key) == pytest.approx(hour_end + DAY - NOW + grace, abs=1)
    assert ttl("verticals") == pytest.approx(10 * DAY - 60 + grace, abs=1)


def test_leads_expire_in_redis_without_a_prune(raw, make_store) -> None:
    store = make_store(retention_seconds=0.3, clock=time.time, expiry_grace_seconds=0.0)
    now = time.time()
    store.remember([lead("short-lived", at=now)])
    assert raw.exists("ml-service:monitoring:v1:lead:short-lived")
    time.sleep(0.5)
    assert not raw.exists("ml-service:monitoring:v1:lead:short-lived")
    assert store.record_outcomes([Outcome("short-lived", True, now)], now) == ["unknown"]


def test_a_labelled_lead_past_its_retention_is_scored_afresh(make_store) -> None:
    store = make_store(retention_seconds=10 * DAY)
    store.remember([lead("a", 0.1, at=NOW - 11 * DAY)])
    assert store.record_outcomes([Outcome("a", True, NOW - 11 * DAY)], NOW - 11 * DAY) == [
        "recorded"
    ]
    store.remember([lead("a", 0.9, at=NOW - 60)])  # its outcome is past the retention
    assert store.record_outcomes([Outcome("a", False, NOW)], NOW) == ["recorded"]
    assert store.labelled("auto", NOW - DAY).scores == [0.9]


def test_prune_counts_labelled_leads_and_minute_rows(monkeypatch, raw, make_store) -> None:
    monkeypatch.setattr(redis_store, "PRUNE_CHUNK", 3)  # several script calls
    store = make_store(retention_seconds=10 * DAY, counts_retention_seconds=DAY)
    old = [lead(f"old-{i}", at=NOW - 11 * DAY + i) for i in range(7)]
    store.remember([*old, lead("unlabelled-old", at=NOW - 12 * DAY), lead("young")])
    store.record_outcomes([Outcome(o.lead_id, True, NOW - 11 * DAY) for o in old], NOW - 11 * DAY)
    store.record_outcomes([Outcome("young", True, NOW)], NOW)
    m = epoch_minute(NOW)
    oldest = m - 1440  # the oldest minute kept
    minutes = [oldest - 200, oldest - 61, oldest - 2, oldest - 1, oldest, oldest + 1, m]
    store.add_counts([row("age", minute, [1, minute]) for minute in minutes])
    store.add_counts([row("__score__", oldest - 1, [5], vertical="home")])
    # Seven labelled leads, four minutes of "age" and one of the home vertical.
    assert store.prune(NOW) == 7 + 4 + 1
    kept = [minute for minute in minutes if minute >= oldest]
    for since in (0, oldest - 1, oldest, oldest + 1, m):
        expected = [minute for minute in kept if minute >= since]
        assert store.counts("auto", "1.0.0", "champion", "age", since * 60.0) == [
            len(expected),
            sum(expected),
        ]
    assert store.labelled("auto", 0).scored_at == [NOW - 60]
    assert store.versions_with_counts("home", 0) == []
    assert not raw.exists('ml-service:monitoring:v1:hours:["home","1.0.0","champion","__score__"]')
    assert raw.smembers("ml-service:monitoring:v1:series:home") == set()
    assert store.prune(NOW) == 0


# -- layout ----------------------------------------------------------------------------


def test_labelled_pages_through_runs_of_one_scored_at(monkeypatch, make_store) -> None:
    monkeypatch.setattr(redis_store, "LABELLED_PAGE", 7)
    TestRedisStoreContract().test_labelled_returns_every_lead_of_a_large_window_once(make_store())


def test_stores_under_other_prefixes_do_not_meet(raw, make_store) -> None:
    ours, theirs = make_store(), make_store(prefix="other-service:")
    ours.remember([lead("a")])
    assert theirs.record_outcomes([Outcome("a", True, NOW)], NOW) == ["unknown"]
    theirs.add_counts([row("age", 1, [1])])
    assert ours.counts("auto", "1.0.0", "champion", "age", 0) is None
    assert all(
        key.startswith((b"ml-service:monitoring:", b"other-service:")) for key in raw.scan_iter()
    )
