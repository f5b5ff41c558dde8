"""The SQLite monitoring store on real files: semantics, persistence, recovery.

The semantics every store shares are in ``store_contract`` (``TestSqliteStoreContract``);
what is particular to the file (transactions, chunked pruning, restarts, forks, bad files)
is here.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from engine.monitoring import sqlite_store
from engine.monitoring.sqlite_store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SqliteMonitoringStore,
    open_sqlite_store,
)
from engine.monitoring.store import MonitoringStore, Outcome, epoch_minute
from tests.unit.monitoring.store_contract import DAY, NOW, StoreContract, lead, row


def conforms(store: SqliteMonitoringStore) -> MonitoringStore:
    """mypy (run on the tests) fails here if the store drifts from the Protocol."""
    return store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "monitoring" / "monitoring.db"


@pytest.fixture
def store(db: Path):
    store, _ = open_sqlite_store(db, retention_seconds=30 * DAY, counts_retention_seconds=7 * DAY)
    yield store
    store.close()


@pytest.fixture
def make_store(db: Path):
    """Handles on one store file (see ``store_contract``)."""
    opened: list[SqliteMonitoringStore] = []

    def make(
        retention_seconds: float = 30 * DAY, counts_retention_seconds: float = 7 * DAY
    ) -> SqliteMonitoringStore:
        store, _ = open_sqlite_store(db, retention_seconds, counts_retention_seconds)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class TestSqliteStoreContract(StoreContract):
    """The ``MonitoringStore`` contract on a SQLite file."""


def lead_count(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM leads").fetchone()[0])
    finally:
        connection.close()


# -- opening ---------------------------------------------------------------------------


def test_a_missing_file_and_its_directory_are_created_as_a_wal_store(db: Path) -> None:
    assert not db.parent.exists()
    store, report = open_sqlite_store(db)
    try:
        assert (report.created, report.recovered, report.problem, report.moved_to) == (
            True,
            False,
            None,
            None,
        )
        assert db.is_file()
        assert store.journal_mode == "wal"
        outside = sqlite3.connect(db)
        try:
            assert outside.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert outside.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            assert outside.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        finally:
            outside.close()
    finally:
        store.close()
    store, again = open_sqlite_store(db)
    store.close()
    assert (again.created, again.recovered, again.problem) == (False, False, None)


def test_an_empty_file_becomes_a_store(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.touch()
    store, report = open_sqlite_store(db)
    assert report.created and not report.recovered and report.problem is None
    store.remember([lead("a")])
    store.close()
    assert lead_count(db) == 1


def test_an_unusable_directory_raises(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("x")
    with pytest.raises(OSError):
        open_sqlite_store(tmp_path / "not-a-directory" / "monitoring.db")


def test_retentions_must_be_positive(db: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        open_sqlite_store(db, retention_seconds=0)


# -- leads and outcomes ----------------------------------------------------------------


def test_an_outcome_batch_is_one_transaction(store) -> None:
    store.remember([lead("a"), lead("b")])
    broken = Outcome(lead_id=object(), converted=True, outcome_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        store.record_outcomes([Outcome("a", True, NOW), broken], NOW)
    # Nothing of the failed batch was kept: "a" can still get its (first) outcome.
    assert store.record_outcomes([Outcome("a", False, NOW)], NOW) == ["recorded"]


# -- upkeep ----------------------------------------------------------------------------


def test_prune_drops_what_is_past_each_retention(db: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "PRUNE_CHUNK", 3)  # several delete transactions
    store, _ = open_sqlite_store(db, retention_seconds=10 * DAY, counts_retention_seconds=DAY)
    try:
        old = [lead(f"old-{i}", at=NOW - 11 * DAY + i) for i in range(7)]
        young = [lead(f"young-{i}", at=NOW - 9 * DAY) for i in range(2)]
        store.remember([*old, *young, lead("home-old", vertical="home", at=NOW - 20 * DAY)])
        store.record_outcomes([Outcome("old-0", True, NOW - 11 * DAY)], NOW - 11 * DAY)
        store.record_outcomes([Outcome("young-0", True, NOW)], NOW)
        m = epoch_minute(NOW)
        store.add_counts(
            [row("age", m - 60 * 24 - 1, [1]), row("age", m - 60 * 24, [2]), row("age", m, [4])]
        )
        assert store.prune(NOW) == 7 + 1 + 1
        assert lead_count(db) == 2
        assert store.labelled("auto", 0).scored_at == [NOW - 9 * DAY]
        assert store.counts("auto", "1.0.0", "champion", "age", since=0) == [6]
        assert store.record_outcomes([Outcome("old-1", True, NOW)], NOW) == ["unknown"]
        assert store.prune(NOW) == 0
    finally:
        store.close()


def test_everything_survives_a_restart(db: Path) -> None:
    store, _ = open_sqlite_store(db)
    store.remember([lead("a", 0.7, shadow_version="2.0.0", shadow_score=0.6), lead("b", 0.1)])
    store.record_outcomes([Outcome("a", True, NOW)], NOW)
    store.add_counts([row("age", 10, [1, 2])])
    store.close()

    store, report = open_sqlite_store(db)
    try:
        assert (report.created, report.recovered, report.problem) == (False, False, None)
        got = store.labelled("auto", 0)
        assert (got.scores, got.converted, got.shadow_scores) == ([0.7], [True], [0.6])
        assert store.record_outcomes([Outcome("a", False, NOW), Outcome("b", False, NOW)], NOW) == [
            "duplicate",
            "recorded",
        ]
        store.add_counts([row("age", 10, [1, 2])])
        assert store.counts("auto", "1.0.0", "champion", "age", since=0) == [2, 4]
    finally:
        store.close()


def test_a_store_is_not_usable_across_fork(store) -> None:
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection must be refused
        try:
            store.remember([lead("from-child")])
        except RuntimeError as exc:
            os._exit(0 if "after the fork" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.remember([lead("from-parent")])
    assert store.record_outcomes([Outcome("from-parent", True, NOW)], NOW) == ["recorded"]


def test_threads_share_one_store(store, db: Path) -> None:
    def write(worker: int) -> None:
        for batch in range(20):
            store.remember([lead(f"{worker}-{batch}-{i}") for i in range(10)])
            store.add_counts([row("age", 1, [1])])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lead_count(db) == 4 * 20 * 10
    assert store.counts("auto", "1.0.0", "champion", "age", since=0) == [80]


# -- bad files -------------------------------------------------------------------------


def filled_store(db: Path, leads: int = 3000) -> None:
    store, _ = open_sqlite_store(db)
    store.remember([lead(f"lead-{i:06d}-{'x' * 30}", at=NOW + i) for i in range(leads)])
    store.close()


def assert_recovered(db: Path, report, bad: bytes, problem: str) -> None:
    assert report.recovered and report.created
    assert report.problem is not None and problem in report.problem
    moved = Path(report.moved_to)
    assert moved.parent == db.parent and moved.name.startswith(f"{db.name}.corrupt-")
    assert moved.read_bytes() == bad  # the bad file is kept for a post-mortem, untouched
    assert db.read_bytes() != bad


def test_a_garbage_file_is_moved_aside_and_replaced(db: Path) -> None:
    db.parent.mkdir(parents=True)
    garbage = os.urandom(50_000)
    db.write_bytes(garbage)
    store, report = open_sqlite_store(db)
    try:
        assert_recovered(db, report, garbage, "not a database")
        store.remember([lead("a")])
        assert store.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
    finally:
        store.close()
    store, again = open_sqlite_store(db)  # the fresh store is a good one
    store.close()
    assert (again.created, again.recovered, again.problem) == (False, False, None)


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_a_truncated_store_is_moved_aside_and_replaced(db: Path, keep: float) -> None:
    filled_store(db)
    whole = db.read_bytes()
    truncated = whole[: int(len(whole) * keep)]
    db.write_bytes(truncated)
    store, report = open_sqlite_store(db)
    try:
        assert_recovered(db, report, truncated, "malformed")
        assert lead_count(db) == 0
    finally:
        store.close()


def test_damaged_pages_fail_the_integrity_check(db: Path) -> None:
    filled_store(db)
    data = bytearray(db.read_bytes())
    page = 4096
    middle = len(data) // page // 2 * page
    data[middle : middle + 2 * page] = os.urandom(2 * page)
    db.write_bytes(bytes(data))
    store, report = open_sqlite_store(db)
    store.close()
    assert report.recovered and report.problem is not None and report.moved_to is not None
    assert Path(report.moved_to).read_bytes() == bytes(data)


def test_a_database_of_another_schema_is_moved_aside(db: Path) -> None:
    db.parent.mkdir(parents=True)
    other = sqlite3.connect(db)
    other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    other.commit()
    other.close()
    foreign = db.read_bytes()
    store, report = open_sqlite_store(db)
    store.close()
    assert_recovered(db, report, foreign, "not a monitoring store")


def test_a_store_of_a_newer_schema_is_moved_aside(db: Path) -> None:
    filled_store(db, leads=10)
    newer = sqlite3.connect(db)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    before = db.read_bytes()
    store, report = open_sqlite_store(db)
    store.close()
    assert_recovered(db, report, before, f"user_version {SCHEMA_VERSION + 1}")


def test_a_bad_file_in_use_by_others_is_reported_not_moved(db: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "RECOVERY_WAIT_SECONDS", 0.3)
    filled_store(db)
    running, _ = open_sqlite_store(db)  # a worker that has the file open
    data = bytearray(db.read_bytes())
    data[8192 : 8192 + 8192] = os.urandom(8192)
    db.write_bytes(bytes(data))
    late, report = open_sqlite_store(db)  # a worker started while it runs
    assert (report.recovered, report.moved_to) == (False, None)
    assert report.problem is not None
    assert db.read_bytes() == bytes(data)  # left in place: moving it would break `running`
    assert not list(db.parent.glob("*.corrupt-*"))
    late.close()
    running.close()
    # Once nobody has it open, the next start recovers it.
    store, report = open_sqlite_store(db)
    store.close()
    assert report.recovered and report.moved_to is not None
