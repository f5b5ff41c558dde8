"""The embedded monitoring store: one SQLite file in WAL mode shared by a machine's workers.

Every worker process opens its own connection with ``open_sqlite_store`` *after* the
fork (a SQLite connection must never cross a fork; the store refuses to be used from a
process other than the one that opened it) and uses it from one background thread, never
from the event loop. Calls are serialised by a lock, so any thread may call.

Why WAL: readers never block the writer and the writer never blocks readers, and a
commit appends to the write-ahead log instead of rewriting pages in place. With
``synchronous=NORMAL`` a commit does not wait for the disk; the log is synced when it is
checkpointed into the database. A process crash loses nothing committed; a power loss or
an OS crash may lose the last transactions before the latest sync, and never corrupts
the file. Writers of several processes take turns on one write lock; every write
transaction starts with ``BEGIN IMMEDIATE`` and waits up to ``BUSY_TIMEOUT_MS`` for it
(a deferred transaction that read first could fail at once in WAL mode, whatever the
timeout), so concurrent workers queue instead of failing with "database is locked".

Schema (version ``SCHEMA_VERSION``, kept in ``PRAGMA user_version``; the file is marked
as ours by ``PRAGMA application_id``):

- ``leads``: one row per ``lead_id`` (primary key): vertical, version, score, accepted,
  scored_at, shadow version and score, and once known ``converted`` and ``outcome_at``.
  Indexed by ``(vertical, scored_at)`` (windows and pruning), plus a partial index of the
  same over the leads with an outcome, so the performance windows read only labelled
  rows however few leads get outcomes. A rowid table, not ``WITHOUT ROWID``: rows are
  stored in the order they were written, which is nearly time order, so windows and
  pruning read and free neighbouring pages; only the ``lead_id`` index takes the random
  inserts of random ids, and its entries are small.
- ``counts``: one row per ``(vertical, version, role, name, minute)`` with the counts as
  a blob of native int64 (``array('q')``); a flush adds to the row element by element in
  the ``ON CONFLICT`` clause (a Python function registered on the connection), rows of
  unequal length are summed over the longer. Indexed by ``(vertical, minute, version,
  role)`` for ``versions_with_counts`` and pruning.

Opening checks the file: not a database, corrupt (``PRAGMA quick_check``), or not of our
application id and schema version, and the file (with its ``-wal`` and ``-shm``) is moved
aside to ``<name>.corrupt-<UTC timestamp>`` and a fresh store created: the report says
what was wrong and where it went. A missing or empty (zero-byte) file is created, by one
process holding the exclusive lock (below). Opening never raises for a bad file; it
raises only when the store cannot exist at all there (the directory cannot be created or
written, the disk is full, a read-only file): ``OSError`` or ``sqlite3.Error``.

Moving a database aside while another process has it open would corrupt the new one
(SQLite deletes ``<name>-wal`` by name when its last connection closes), so processes
coordinate through ``<name>.lock`` beside the file: every open store holds a shared
``flock`` on it for its lifetime, and a bad file is moved only under the exclusive lock,
that is, when no store has it open. When the workers of a starting service all find the
file bad, each releases its lock and one of them moves the file; the others see the new
file and use it. A worker that finds the file bad while others have it open (a restarted
worker among running ones) waits ``RECOVERY_WAIT_SECONDS`` for them, then opens the bad
file as it is and reports the problem with ``recovered=False``; the next start of the
service, with every worker stopped, recovers it. Never delete or move the file by hand
while the service runs: a running worker keeps writing to the file it opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.monitoring.store import (
    CountRow,
    LabelledScores,
    OpenReport,
    Outcome,
    OutcomeStatus,
    ScoredLead,
    epoch_minute,
)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4D4C4D53  # "MLMS" (ML service Monitoring Store) in the file header
BUSY_TIMEOUT_MS = 10_000
RECOVERY_WAIT_SECONDS = 15.0
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL is truncated to this after a checkpoint
PRUNE_CHUNK = 5_000  # rows per delete transaction, so other writers get their turns

# Error codes that mean the file itself is bad (not the disk, permissions or a lock).
_BAD_FILE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_SCHEMA = (
    """CREATE TABLE leads (
        lead_id TEXT PRIMARY KEY NOT NULL,
        vertical TEXT NOT NULL,
        version TEXT NOT NULL,
        score REAL NOT NULL,
        accepted INTEGER NOT NULL,
        scored_at REAL NOT NULL,
        shadow_version TEXT,
        shadow_score REAL,
        converted INTEGER,
        outcome_at REAL
    )""",
    "CREATE INDEX leads_by_time ON leads (vertical, scored_at)",
    """CREATE INDEX leads_labelled ON leads (vertical, scored_at)
        WHERE converted IS NOT NULL""",
    """CREATE TABLE counts (
        vertical TEXT NOT NULL,
        version TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        minute INTEGER NOT NULL,
        counts BLOB NOT NULL,
        PRIMARY KEY (vertical, version, role, name, minute)
    ) WITHOUT ROWID""",
    "CREATE INDEX counts_by_minute ON counts (vertical, minute, version, role)",
)
_TABLES = frozenset({"leads", "counts"})

# A re-scored lead replaces its scoring, unless an outcome was recorded against it.
_REMEMBER = """
    INSERT INTO leads (lead_id, vertical, version, score, accepted, scored_at,
                       shadow_version, shadow_score)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (lead_id) DO UPDATE SET
        vertical = excluded.vertical, version = excluded.version, score = excluded.score,
        accepted = excluded.accepted, scored_at = excluded.scored_at,
        shadow_version = excluded.shadow_version, shadow_score = excluded.shadow_score
    WHERE leads.converted IS NULL
"""
_RECORD_OUTCOME = """
    UPDATE leads SET converted = ?, outcome_at = ?
    WHERE lead_id = ? AND converted IS NULL AND scored_at >= ?
"""
_ADD_COUNTS = """
    INSERT INTO counts (vertical, version, role, name, minute, counts)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (vertical, version, role, name, minute) DO UPDATE SET
        counts = ml_add_counts(counts, excluded.counts)
"""
# ``converted IS NOT NULL`` lets the planner use the partial index of labelled leads.
_LABELLED = """
    SELECT version, score, converted, scored_at, shadow_version, shadow_score FROM leads
    WHERE vertical = ? AND converted IS NOT NULL AND scored_at >= ? AND scored_at < ?
    ORDER BY scored_at
"""
# Distinct verticals by index seeks (one per vertical), not a scan of every row.
_LEAD_VERTICALS = """
    WITH RECURSIVE v(vertical) AS (
        SELECT MIN(vertical) FROM leads
        UNION ALL
        SELECT (SELECT MIN(vertical) FROM leads WHERE vertical > v.vertical)
        FROM v WHERE v.vertical IS NOT NULL
    ) SELECT vertical FROM v WHERE vertical IS NOT NULL
"""
_COUNT_VERTICALS = _LEAD_VERTICALS.replace("leads", "counts")
_PRUNE_LEADS = """
    DELETE FROM leads WHERE rowid IN (
        SELECT rowid FROM leads WHERE vertical = ? AND scored_at < ? LIMIT ?)
"""
_PRUNE_COUNTS = """
    DELETE FROM counts WHERE (vertical, version, role, name, minute) IN (
        SELECT vertical, version, role, name, minute FROM counts
        WHERE vertical = ? AND minute < ? LIMIT ?)
"""


class SqliteMonitoringStore:
    """``MonitoringStore`` on one SQLite file; see the module docstring.

    Create it with ``open_sqlite_store``. Attributes: ``path``, ``retention_seconds``,
    ``counts_retention_seconds``, ``journal_mode`` (``"wal"`` unless the file system
    cannot share memory between processes, where SQLite keeps its rollback journal).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock_fd: int,
        path: Path,
        retention_seconds: float,
        counts_retention_seconds: float,
        journal_mode: str,
    ) -> None:
        self.path = path
        self.retention_seconds = retention_seconds
        self.counts_retention_seconds = counts_retention_seconds
        self.journal_mode = journal_mode
        self._connection: sqlite3.Connection | None = connection
        self._lock_fd = lock_fd
        self._pid = os.getpid()
        self._lock = threading.Lock()

    # -- leads and outcomes ----------------------------------------------------------

    def remember(self, leads: Sequence[ScoredLead]) -> None:
        """Store scored leads in one transaction (see ``MonitoringStore.remember``)."""
        if not leads:
            return
        rows = [
            (
                lead.lead_id,
                lead.vertical,
                lead.version,
                lead.score,
                int(lead.accepted),
                lead.scored_at,
                lead.shadow_version,
                lead.shadow_score,
            )
            for lead in leads
        ]
        with self._write() as connection:
            connection.executemany(_REMEMBER, rows)

    def record_outcomes(self, outcomes: Sequence[Outcome], now: float) -> list[OutcomeStatus]:
        """Record outcomes in one transaction; one status per outcome, in order."""
        if not outcomes:
            return []
        oldest = now - self.retention_seconds
        statuses: list[OutcomeStatus] = []
        with self._write() as connection:
            for outcome in outcomes:
                updated = connection.execute(
                    _RECORD_OUTCOME,
                    (int(outcome.converted), outcome.outcome_at, outcome.lead_id, oldest),
                ).rowcount
                if updated:
                    statuses.append("recorded")
                    continue
                # Not updated: find out why (the rare path, so one more statement).
                row = connection.execute(
                    "SELECT scored_at FROM leads WHERE lead_id = ?", (outcome.lead_id,)
                ).fetchone()
                statuses.append("unknown" if row is None or row[0] < oldest else "duplicate")
        return statuses

    def labelled(self, vertical: str, since: float, until: float | None = None) -> LabelledScores:
        """Return the leads of ``vertical`` with an outcome scored in ``[since, until)``."""
        end = math.inf if until is None else until
        with self._read() as connection:
            rows = connection.execute(_LABELLED, (vertical, since, end)).fetchall()
        return LabelledScores(
            versions=[row[0] for row in rows],
            scores=[row[1] for row in rows],
            converted=[bool(row[2]) for row in rows],
            scored_at=[row[3] for row in rows],
            shadow_versions=[row[4] for row in rows],
            shadow_scores=[row[5] for row in rows],
        )

    # -- histogram counts ------------------------------------------------------------

    def add_counts(self, rows: Sequence[CountRow]) -> None:
        """Add each row's counts to its key's stored counts, in one transaction."""
        if not rows:
            return
        values = [
            (row.vertical, row.version, row.role, row.name, row.minute, _pack(row.counts))
            for row in rows
        ]
        with self._write() as connection:
            connection.executemany(_ADD_COUNTS, values)

    def counts(
        self, vertical: str, version: str, role: str, name: str, since: float
    ) -> list[int] | None:
        """Return the element-wise sum of a key's counts from the minute of ``since`` on."""
        with self._read() as connection:
            blobs = connection.execute(
                "SELECT counts FROM counts WHERE vertical = ? AND version = ? AND role = ?"
                " AND name = ? AND minute >= ?",
                (vertical, version, role, name, epoch_minute(since)),
            ).fetchall()
        if not blobs:
            return None
        total = array("q")
        for (blob,) in blobs:
            total = _add(total, _unpack(blob))
        return total.tolist()

    def versions_with_counts(self, vertical: str, since: float) -> list[tuple[str, str]]:
        """Return the sorted ``(version, role)`` pairs of ``vertical`` counted from ``since``."""
        with self._read() as connection:
            rows = connection.execute(
                # Without statistics the planner would walk the vertical's whole primary
                # key; the minute index reads only the window.
                "SELECT DISTINCT version, role FROM counts INDEXED BY counts_by_minute"
                " WHERE vertical = ? AND minute >= ? ORDER BY version, role",
                (vertical, epoch_minute(since)),
            ).fetchall()
        return [(version, role) for version, role in rows]

    # -- upkeep ----------------------------------------------------------------------

    def prune(self, now: float) -> int:
        """Drop leads and counts older than their retentions; return the rows removed.

        Deletes in transactions of at most ``PRUNE_CHUNK`` rows, so a large first prune
        does not hold the write lock for long; the file keeps its size and reuses the
        freed pages.
        """
        oldest_lead = now - self.retention_seconds
        oldest_minute = epoch_minute(now - self.counts_retention_seconds)
        removed = 0
        with self._read() as connection:
            lead_verticals = [row[0] for row in connection.execute(_LEAD_VERTICALS)]
            count_verticals = [row[0] for row in connection.execute(_COUNT_VERTICALS)]
        for vertical in lead_verticals:
            removed += self._delete_in_chunks(_PRUNE_LEADS, (vertical, oldest_lead))
        for vertical in count_verticals:
            removed += self._delete_in_chunks(_PRUNE_COUNTS, (vertical, oldest_minute))
        return removed

    def close(self) -> None:
        """Close the connection and release the lock file (idempotent)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            connection.close()
            os.close(self._lock_fd)

    # -- internals -------------------------------------------------------------------

    def _delete_in_chunks(self, statement: str, parameters: tuple[str, float]) -> int:
        removed = 0
        while True:
            with self._write() as connection:
                deleted = connection.execute(statement, (*parameters, PRUNE_CHUNK)).rowcount
            removed += deleted
            if deleted < PRUNE_CHUNK:
                return removed

    def _usable(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"monitoring store {self.path} is closed")
        if os.getpid() != self._pid:
            raise RuntimeError(
                "monitoring store used in a forked process: open one with open_sqlite_store"
                " in each worker after the fork"
            )
        return self._connection

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._usable()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._usable()
            # IMMEDIATE takes the write lock now, waiting for it under the busy timeout.
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.rollback()
                raise
            connection.execute("COMMIT")


def open_sqlite_store(
    path: Path,
    retention_seconds: float = 30 * 86400,
    counts_retention_seconds: float = 7 * 86400,
) -> tuple[SqliteMonitoringStore, OpenReport]:
    """Open (creating, checking and if need be recreating) the store at ``path``.

    Args:
        path: The SQLite file; its directory is created if missing.
        retention_seconds: How long a scored lead is kept (from ``scored_at``); an
            outcome for an older lead is ``unknown``.
        counts_retention_seconds: How long per-minute counts are kept.

    Returns:
        The store (for this process only) and what opening it found.

    Raises:
        ValueError: A retention is not positive.
        OSError: The directory or the lock file cannot be created or opened.
        sqlite3.Error: The store cannot be created or written at all (permissions, a
            full disk); never for a corrupt, foreign or truncated file, which is moved
            aside and replaced.
    """
    if not retention_seconds > 0 or not counts_retention_seconds > 0:
        raise ValueError("retentions must be positive")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        connection, report = _open_checked(path, lock_fd)
    except BaseException:
        os.close(lock_fd)  # also releases the flock
        raise
    try:
        journal_mode = _configure(connection, tolerate_bad_file=report.problem is not None)
    except BaseException:
        connection.close()
        os.close(lock_fd)
        raise
    store = SqliteMonitoringStore(
        connection, lock_fd, path, retention_seconds, counts_retention_seconds, journal_mode
    )
    return store, report


def _open_checked(path: Path, lock_fd: int) -> tuple[sqlite3.Connection, OpenReport]:
    """Return a connection to a checked store at ``path``, holding the shared lock."""
    deadline: float | None = None
    while True:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        checked = _identity(path)
        if checked is None or checked[2]:  # missing or empty: created by one process alone
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            deadline = deadline or time.monotonic() + RECOVERY_WAIT_SECONDS
            if _wait_alone(lock_fd, path, checked, deadline) is None:
                continue  # another process created it meanwhile: check it
            # Alone, or (the file deleted under running workers) as alone as it gets.
            connection, created = _fresh(path)
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            return connection, OpenReport(created, False, None, None)
        connection = _connect(path)
        try:
            problem = _check(connection)
        except BaseException:
            connection.close()
            raise
        if problem is None:
            return connection, OpenReport(False, False, None, None)
        connection.close()
        # Only a process that has the file to itself may move it (module docstring).
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        deadline = deadline or time.monotonic() + RECOVERY_WAIT_SECONDS
        alone = _wait_alone(lock_fd, path, checked, deadline)
        if alone is None:
            continue  # another process replaced the file meanwhile: check the new one
        if not alone:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            if _identity(path) != checked:  # recovered by another while we took the lock
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                continue
            return _connect(path), OpenReport(False, False, problem, None)
        moved_to = _move_aside(path)
        connection, created = _fresh(path)
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        return connection, OpenReport(created, True, problem, moved_to)


def _fresh(path: Path) -> tuple[sqlite3.Connection, bool]:
    """Connect to ``path`` and create the schema (whether it created anything)."""
    connection = _connect(path)
    try:
        return connection, _initialise(connection)
    except BaseException:
        connection.close()
        raise


Identity = tuple[int, int, bool]  # device, inode, empty


def _identity(path: Path) -> Identity | None:
    """Which file is at ``path`` (None: none), and whether it is still empty."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size == 0


def _wait_alone(lock_fd: int, path: Path, checked: Identity | None, deadline: float) -> bool | None:
    """Take the exclusive lock on the file checked: True; others keep it open: False.

    None when the file at ``path`` is no longer the one checked (another process moved
    it aside or created it), without the lock.
    """
    while True:
        if _identity(path) != checked:
            return None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
            continue
        if _identity(path) != checked:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
            return None
        return True


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit (isolation_level=None): transactions are explicit, BEGIN IMMEDIATE.
    # check_same_thread=False: the store's own lock serialises threads.
    return sqlite3.connect(
        path,
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )


def _check(connection: sqlite3.Connection) -> str | None:
    """Return what is wrong with an existing, non-empty file (None: a good store)."""
    try:
        app_id, version = _header(connection)
        if app_id != APPLICATION_ID or version != SCHEMA_VERSION:
            return (
                f"not a monitoring store of schema {SCHEMA_VERSION}"
                f" (application_id {app_id:#x}, user_version {version})"
            )
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if missing := sorted(_TABLES - tables):
            return f"schema incomplete: no table {', '.join(missing)}"
        found = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if found != ["ok"]:
            return "integrity check failed: " + "; ".join(found[:3])
        return None
    except sqlite3.DatabaseError as exc:
        if exc.sqlite_errorcode & 0xFF in _BAD_FILE_CODES:
            return f"{exc} ({exc.sqlite_errorname})"
        raise


def _header(connection: sqlite3.Connection) -> tuple[int, int]:
    app_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    return int(app_id), int(version)


def _initialise(connection: sqlite3.Connection) -> bool:
    """Create the schema in a missing or empty file; False if another process just did.

    The schema is written with the rollback journal, straight into the database file,
    and only then is the file switched to WAL. Created in WAL mode, the schema would sit
    in the log with the database file still empty, and SQLite, opening an empty database
    file, deletes the log it finds beside it: a sibling opening the store at that moment
    would erase it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                created = (
                    _header(connection) == (0, 0)
                    and not connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
                )
                if created:
                    for statement in _SCHEMA:
                        connection.execute(statement)
                    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.rollback()
            break
        except sqlite3.OperationalError as exc:
            # Only without the exclusive lock (see _open_checked) can two processes race
            # here; the rollback journal then answers one of them "locked" at once.
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    _set_wal(connection)
    return created


def _configure(connection: sqlite3.Connection, *, tolerate_bad_file: bool) -> str:
    """Set this connection's pragmas and functions; return the journal mode in force."""
    connection.create_function("ml_add_counts", 2, _add_blobs, deterministic=True)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    try:
        return _set_wal(connection)
    except sqlite3.DatabaseError as exc:
        # A bad file left in place (others have it open): its calls will fail and be
        # reported; opening must not.
        if tolerate_bad_file and exc.sqlite_errorcode & 0xFF in _BAD_FILE_CODES:
            return "unknown"
        raise


def _set_wal(connection: sqlite3.Connection) -> str:
    """Switch to WAL (a no-op when the file is in WAL already); return the mode in force.

    Switching needs the file to itself for a moment, and SQLite answers "database is
    locked" at once instead of waiting when another process reads it just then (several
    workers creating the store together), so this retries within the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _move_aside(path: Path) -> str:
    """Rename the file and its ``-wal``/``-shm`` to ``<name>.corrupt-<stamp>[-wal|-shm]``.

    The log keeps its pairing with the database under the new name, so opening the
    moved file for a post-mortem replays it.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 1
    while any(Path(f"{target}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
        attempt += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{attempt}")
    # Log and index first: a crash in between leaves the bad database, found again.
    for suffix in ("-wal", "-shm", ""):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").rename(f"{target}{suffix}")
    return str(target)


def _pack(counts: Sequence[int]) -> bytes:
    return array("q", counts).tobytes()


def _unpack(blob: bytes) -> array[int]:
    values = array("q")
    values.frombytes(blob)
    return values


def _add(total: array[int], more: array[int]) -> array[int]:
    """Add ``more`` into ``total`` element by element, over the longer of the two."""
    if len(more) > len(total):
        total, more = more, total
    for index, value in enumerate(more):
        total[index] += value
    return total


def _add_blobs(stored: bytes, added: bytes) -> bytes:
    """The ``ml_add_counts`` SQL function: element-wise sum of two count blobs."""
    return _add(_unpack(stored), _unpack(added)).tobytes()
