"""The SQLite monitoring store on real files: semantics, persistence, recovery."""

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
from engine.monitoring.store import (
    CountRow,
    MonitoringStore,
    Outcome,
    ScoredLead,
    epoch_minute,
)

DAY = 86400.0
NOW = 1_700_000_000.0


def conforms(store: SqliteMonitoringStore) -> MonitoringStore:
    """mypy (run on the tests) fails here if the store drifts from the Protocol."""
    return store


def lead(
    lead_id: str,
    score: float = 0.5,
    at: float = NOW - 60,
    vertical: str = "auto",
    version: str = "1.0.0",
    shadow_version: str | None = None,
    shadow_score: float | None = None,
) -> ScoredLead:
    return ScoredLead(
        lead_id, vertical, version, score, score >= 0.5, at, shadow_version, shadow_score
    )


def row(
    name: str,
    minute: int,
    counts: list[int],
    vertical: str = "auto",
    version: str = "1.0.0",
    role: str = "champion",
) -> CountRow:
    return CountRow(vertical, version, role, name, minute, counts)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "monitoring" / "monitoring.db"


@pytest.fixture
def store(db: Path):
    store, _ = open_sqlite_store(db, retention_seconds=30 * DAY, counts_retention_seconds=7 * DAY)
    yield store
    store.close()


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


def test_remember_upserts_until_an_outcome_fixes_the_scoring(store) -> None:
    store.remember([lead("a", 0.2), lead("b", 0.3), lead("a", 0.4)])  # last one in a batch wins
    store.remember([lead("b", 0.9, shadow_version="2.0.0", shadow_score=0.7)])  # re-scored
    assert store.record_outcomes([Outcome("a", True, NOW), Outcome("b", False, NOW)], NOW) == [
        "recorded",
        "recorded",
    ]
    # Scored again after the outcome: the outcome keeps the scoring it belongs to.
    store.remember([lead("a", 0.99, version="9.9.9", at=NOW - 5)])
    got = store.labelled("auto", 0)
    assert got.scores == [0.4, 0.9]
    assert got.versions == ["1.0.0", "1.0.0"]
    assert got.converted == [True, False]
    assert got.shadow_versions == [None, "2.0.0"]
    assert got.shadow_scores == [None, 0.7]
    assert store.record_outcomes([Outcome("a", False, NOW)], NOW) == ["duplicate"]


def test_remember_keeps_ids_as_given(store, db: Path) -> None:
    ids = ["x" * 128, "lead-ä-😀", "  spaced  ", "a'; DROP TABLE leads; --"]
    store.remember([lead(i) for i in ids])
    assert store.record_outcomes([Outcome(i, True, NOW) for i in ids], NOW) == ["recorded"] * 4
    assert store.record_outcomes([Outcome("X" * 128, True, NOW)], NOW) == ["unknown"]
    assert lead_count(db) == 4


def test_outcome_statuses_in_order_with_duplicates_in_one_batch(store) -> None:
    store.remember([lead("a"), lead("b"), lead("c")])
    statuses = store.record_outcomes(
        [
            Outcome("a", True, NOW),
            Outcome("nobody", True, NOW),
            Outcome("a", False, NOW),  # duplicate within the batch
            Outcome("b", False, NOW),
        ],
        NOW,
    )
    assert statuses == ["recorded", "unknown", "duplicate", "recorded"]
    assert store.record_outcomes([Outcome("b", True, NOW), Outcome("c", True, NOW)], NOW) == [
        "duplicate",
        "recorded",
    ]
    # The first outcome stands.
    assert store.labelled("auto", 0).converted == [True, False, True]
    assert store.record_outcomes([], NOW) == []


def test_an_outcome_after_the_retention_is_unknown(db: Path) -> None:
    store, _ = open_sqlite_store(db, retention_seconds=30 * DAY)
    try:
        store.remember([lead("old", at=NOW - 30 * DAY - 1), lead("edge", at=NOW - 30 * DAY)])
        assert store.record_outcomes(
            [Outcome("old", True, NOW), Outcome("edge", True, NOW)], NOW
        ) == ["unknown", "recorded"]
        # The same outcome a day earlier would have been in time.
        assert store.record_outcomes([Outcome("old", True, NOW - DAY)], NOW - DAY) == ["recorded"]
    finally:
        store.close()


def test_an_outcome_batch_is_one_transaction(store) -> None:
    store.remember([lead("a"), lead("b")])
    broken = Outcome(lead_id=object(), converted=True, outcome_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        store.record_outcomes([Outcome("a", True, NOW), broken], NOW)
    # Nothing of the failed batch was kept: "a" can still get its (first) outcome.
    assert store.record_outcomes([Outcome("a", False, NOW)], NOW) == ["recorded"]


def test_labelled_selects_one_vertical_with_outcomes_in_the_window(store) -> None:
    store.remember(
        [
            lead("t300", 0.3, at=300.0),
            lead("t100", 0.1, at=100.0),
            lead("t200", 0.2, at=200.0),
            lead("t250-no-outcome", 0.25, at=250.0),
            lead("home-150", 0.15, at=150.0, vertical="home"),
        ]
    )
    store.record_outcomes(
        [Outcome(i, True, 400.0) for i in ("t100", "t200", "t300", "home-150")], 400.0
    )
    assert store.labelled("auto", 0).scores == [0.1, 0.2, 0.3]  # ordered by scored_at
    assert store.labelled("auto", 0).scored_at == [100.0, 200.0, 300.0]
    assert store.labelled("auto", 100.0, 300.0).scores == [0.1, 0.2]  # [since, until)
    assert store.labelled("auto", 100.5).scores == [0.2, 0.3]
    assert store.labelled("home", 0).scores == [0.15]
    empty = store.labelled("auto", 301.0)
    assert empty.scores == [] and empty.versions == [] and empty.shadow_scores == []
    assert store.labelled("life", 0).converted == []


# -- counts ----------------------------------------------------------------------------


def test_counts_are_summed_across_flushes_and_minutes(store) -> None:
    m = epoch_minute(NOW)
    store.add_counts([row("age", m, [1, 2, 3]), row("age", m + 1, [10, 0, 0])])
    store.add_counts([row("age", m, [1, 1, 1]), row("age", m, [0, 0, 5])])  # twice in a batch
    store.add_counts([row("age", m - 1, [100, 100, 100])])
    store.add_counts([row("age", m, [1, 1, 1], role="challenger", version="2.0.0")])
    store.add_counts([row("__score__", m, [7])])
    assert store.counts("auto", "1.0.0", "champion", "age", since=m * 60.0) == [12, 3, 9]
    # A since inside a minute includes that whole minute.
    assert store.counts("auto", "1.0.0", "champion", "age", since=m * 60.0 - 1) == [112, 103, 109]
    assert store.counts("auto", "1.0.0", "champion", "age", since=(m + 1) * 60.0) == [10, 0, 0]
    assert store.counts("auto", "1.0.0", "champion", "age", since=(m + 2) * 60.0) is None
    assert store.counts("auto", "2.0.0", "challenger", "age", since=0) == [1, 1, 1]
    assert store.counts("auto", "1.0.0", "champion", "__score__", since=0) == [7]
    assert store.counts("home", "1.0.0", "champion", "age", since=0) is None


def test_counts_of_unequal_length_sum_over_the_longer(store) -> None:
    store.add_counts([row("make", 5, [1, 1]), row("make", 5, [1, 1, 1, 1]), row("make", 6, [2])])
    assert store.counts("auto", "1.0.0", "champion", "make", since=0) == [4, 2, 1, 1]


def test_large_counts_survive(store) -> None:
    store.add_counts([row("x", 1, [2**40, 0]), row("x", 1, [2**40, 3])])
    assert store.counts("auto", "1.0.0", "champion", "x", since=0) == [2**41, 3]


def test_versions_with_counts_since(store) -> None:
    m = epoch_minute(NOW)
    store.add_counts(
        [
            row("age", m - 10, [1], version="0.9.0"),
            row("age", m, [1]),
            row("age", m, [1], version="2.0.0", role="challenger"),
            row("age", m, [1], vertical="home", version="3.0.0"),
        ]
    )
    assert store.versions_with_counts("auto", since=(m - 10) * 60.0) == [
        ("0.9.0", "champion"),
        ("1.0.0", "champion"),
        ("2.0.0", "challenger"),
    ]
    assert store.versions_with_counts("auto", since=m * 60.0) == [
        ("1.0.0", "champion"),
        ("2.0.0", "challenger"),
    ]
    assert store.versions_with_counts("auto", since=(m + 1) * 60.0) == []
    assert store.versions_with_counts("home", since=0) == [("3.0.0", "champion")]


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


def test_a_closed_store_refuses_calls(store) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.remember([lead("a")])


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


def test_an_outcome_reaches_the_lead_through_another_connection(db: Path) -> None:
    scorer, _ = open_sqlite_store(db)
    feedback, _ = open_sqlite_store(db)
    try:
        scorer.remember([lead("a")])
        assert feedback.record_outcomes([Outcome("a", True, NOW)], NOW) == ["recorded"]
        assert scorer.labelled("auto", 0).converted == [True]
    finally:
        scorer.close()
        feedback.close()


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
