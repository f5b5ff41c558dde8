"""The monitoring store, SQLite (a file per machine) and Redis (the fleet's), in one run.

Run: ``python bench/bench_feedback_store.py`` (about a minute on 2 CPUs). Flags:
``--no-redis``, ``--no-sqlite`` (one store only); ``--baseline`` (SQLite's design figures
of ``docs/quality.md`` too: a naive SQLite baseline, two processes writing at once, the
open with ``quick_check``; about 20 s more); ``--labelled-per-day``, ``--prefill``,
``--scale``, ``--repeat``; ``--dir`` to put the SQLite files on the disk of
``MONITORING_DB``. Redis needs ``redis-server`` (``apt-get install redis-server``); without
it the Redis figures are skipped with a message.

Measured on both stores, with the same leads and count rows, through the store's calls:

- Writes, in rows a second of one process, which is what a worker's store thread
  achieves: leads remembered in batches of 1, 100 and 1000 (a worker flushes what it
  scored every 50 ms tick: tens to hundreds of leads a batch), ``record_outcomes`` in
  batches of 100, and ``add_counts`` in flushes of 60 rows of 20 bins (drift bins) and of
  200 bins (a score histogram's width). Ten flushes share each minute, so most rows add
  to a stored row, as the workers' flushes do.
- The reads of the quality publisher, which one worker of every replica makes for each
  served model every 30 s: ``labelled()`` over 24 h and over 7 d of a vertical with
  ``--labelled-per-day`` leads with an outcome (10,000 by default, so 70,000 in 7 d, the
  size ``engine.monitoring.quality`` is written for), and ``counts()`` over 60 min (a
  feature's drift bins) and over 7 d (the score histogram), a week of counts stored with
  every minute filled. A read's figure is the median of ``READ_REPEAT`` after one untimed
  read: every 30 s, the publisher finds its pages warm. Both stores must answer alike.
- For Redis, Redis's own CPU a row or a read (``INFO`` ``used_cpu_user`` +
  ``used_cpu_sys`` before and after, less what the ``INFO`` probe itself costs), and the
  memory a row adds (``used_memory`` before and after, less ``mem_clients_normal``: a
  pipeline's buffers are the connection's, freed later, not the data's). These are what
  ``docs/capacity.md`` needs. Redis runs commands on one core, so one Redis carries 1 s
  over the CPU a lead costs, in leads a second; the leads kept in retention, times the
  bytes a lead, is its memory. The rows-a-second columns are not Redis's limit: on
  loopback they are the client's Python and its round trips.

Leads are shaped as the service stores them: a 22-character id (the base64url of a
16-byte HMAC, ``api.lead_keys``) and a shadow challenger's version and score, the larger
of a lead's two shapes, so the memory figures are upper bounds.

Where each store starts, and why. What a SQLite write costs depends on how big the table
is (a random ``lead_id`` lands on a random page of the id index), so every SQLite write
figure runs on its own copy of one store prefilled with ``--prefill`` leads (1 M by
default) scored over 30 days, one in 20 with an outcome. A Redis write costs the same at
any size (hash lookups), so each Redis write figure starts from an empty database
(``FLUSHDB``), which also isolates the memory it adds. The reads run on a store of each
kind holding the read data only: they read an index range (SQLite) or a sorted set and
two hashes (Redis), whose cost does not depend on the other leads. Redis runs as the
fleet tier runs it, without persistence (``bench/local_redis.py``), and the store gets
a long timeout: the service's 50 ms could push writes of a busy machine into the
store's backlog, where the timing would not see them (the run checks that nothing
waits there).

The ``--baseline`` figures: a naive SQLite store on copies of the same prefilled store
(one row a transaction with SQLite's defaults, rollback journal and
``synchronous=FULL``, the counts merged by a read and a write in Python), each figure
shown with its ratio to it; two spawned processes remembering at once (total rows/s),
as two workers of a machine do; and the time to open the prefilled store with its
``quick_check``, which every worker pays at start.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import redis
from local_redis import LocalRedis

from engine.monitoring.quality import SCORE_HISTOGRAM
from engine.monitoring.redis_store import RedisMonitoringStore, open_redis_store
from engine.monitoring.sqlite_store import SqliteMonitoringStore, open_sqlite_store
from engine.monitoring.store import (
    CountRow,
    MonitoringStore,
    Outcome,
    ScoredLead,
    epoch_minute,
)

NOW = time.time()
HOUR = 3600.0
DAY = 86400.0
BINS = 20  # a feature's drift bins
HIST_BINS = 200  # the score histogram's bins (engine.monitoring.performance.SCORE_BINS)
KEYS = 60  # a vertical's features and score histograms, champion and challenger
LABELLED_EVERY = 20  # one prefilled lead in 20 has an outcome
CHALLENGER = "1.3.0"  # the shadow challenger every lead carries a score of
READ_VERTICAL = "home"  # the read data's vertical (the writes go to "auto")
READ_VERSION = "1.1.0"
READ_REPEAT = 5
REDIS_TIMEOUT_MS = 5000.0  # the service's 50 ms is for serving; here nothing may time out
REDIS_WRITES_DB = 1  # the read data stays in database 0
TWO_PROCESSES = "two processes remember, batches of 100"  # SQLite only


# -- the data --------------------------------------------------------------------------


def stored_id(seed: bytes) -> str:
    """A lead id as the service stores it: base64url of 16 bytes of a keyed hash."""
    digest = hashlib.blake2b(seed, digest_size=16).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def lead_id(i: int) -> str:
    """The id of prefilled lead ``i``: random-looking, yet reproducible."""
    return stored_id(i.to_bytes(8, "little"))


def scored(
    lead: str, vertical: str, version: str, scored_at: float, rng: random.Random
) -> ScoredLead:
    return ScoredLead(
        lead, vertical, version, rng.random(), rng.random() < 0.4, scored_at, CHALLENGER,
        rng.random(),
    )  # fmt: skip


def new_leads(n: int, seed: int) -> list[ScoredLead]:
    rng = random.Random(seed)
    return [
        scored(stored_id(rng.getrandbits(128).to_bytes(16, "little")), "auto", "1.2.0", NOW, rng)
        for _ in range(n)
    ]


def count_rows(flushes: int, bins: int) -> list[list[CountRow]]:
    """``flushes`` flushes of ``KEYS`` rows of ``bins`` bins; ten flushes share a minute."""
    base = epoch_minute(NOW)
    rng = np.random.default_rng(flushes * bins)
    return [
        [
            CountRow(
                "auto",
                "1.2.0",
                "champion" if key % 2 else "challenger",
                f"feature_{key}",
                base + flush // 10,
                counts,
            )
            for key, counts in enumerate(rng.integers(0, 5, size=(KEYS, bins)).tolist())
        ]
        for flush in range(flushes)
    ]


@dataclass(frozen=True)
class ReadData:
    """What the quality publisher's reads find, written alike into both stores."""

    leads: list[ScoredLead]  # labelled, in READ_VERTICAL, over the last 7 days and an hour
    rows: list[CountRow]  # every minute of the last 7 days and an hour, two series

    @classmethod
    def build(cls, per_day: int) -> ReadData:
        """``per_day`` labelled leads a day, and every minute's counts, over 7 d and 1 h."""
        rng = random.Random(7)
        span = 7 * DAY + HOUR
        n = max(1, round(per_day * span / DAY))
        leads = [
            scored(
                stored_id(b"read" + i.to_bytes(8, "little")), READ_VERTICAL, READ_VERSION,
                NOW - span + span * (i + 0.5) / n, rng,
            )
            for i in range(n)
        ]  # fmt: skip
        last = epoch_minute(NOW)
        minutes = range(last - int(span // 60), last + 1)
        counts = np.random.default_rng(8)
        histograms = counts.integers(0, 20, size=(len(minutes), HIST_BINS)).tolist()
        features = counts.integers(0, 50, size=(len(minutes), BINS)).tolist()
        rows = [
            CountRow(READ_VERTICAL, READ_VERSION, "champion", name, minute, values)
            for minute, histogram, feature in zip(minutes, histograms, features, strict=True)
            for name, values in ((SCORE_HISTOGRAM, histogram), ("feature_0", feature))
        ]
        return cls(leads, rows)

    def write(self, store: MonitoringStore) -> None:
        """Write it all through the store's own calls, outcomes included."""
        for start in range(0, len(self.leads), 50_000):
            store.remember(self.leads[start : start + 50_000])
        outcomes = [Outcome(lead.lead_id, i % 3 == 0, NOW) for i, lead in enumerate(self.leads)]
        assert set(store.record_outcomes(outcomes, NOW)) == {"recorded"}
        for start in range(0, len(self.rows), 1000):
            store.add_counts(self.rows[start : start + 1000])

    def in_window(self, seconds: float) -> int:
        """How many of the leads ``labelled()`` returns over the last ``seconds``."""
        return sum(lead.scored_at >= NOW - seconds for lead in self.leads)


Read = tuple[str, Callable[[MonitoringStore], object]]


def reads(data: ReadData) -> list[Read]:
    """The quality publisher's reads of one served model, labelled with their sizes."""

    def labelled(seconds: float) -> Callable[[MonitoringStore], object]:
        return lambda store: len(store.labelled(READ_VERTICAL, NOW - seconds).scores)

    def counts(name: str, seconds: float) -> Callable[[MonitoringStore], object]:
        return lambda store: store.counts(
            READ_VERTICAL, READ_VERSION, "champion", name, NOW - seconds
        )

    return [
        (f"labelled(), 24 h ({data.in_window(DAY):,} leads)", labelled(DAY)),
        (f"labelled(), 7 d ({data.in_window(7 * DAY):,} leads)", labelled(7 * DAY)),
        (f"counts(), 60 min, {BINS} bins (a feature's drift)", counts("feature_0", HOUR)),
        (f"counts(), 7 d, {HIST_BINS} bins (score histogram)", counts(SCORE_HISTOGRAM, 7 * DAY)),
    ]


# -- what a figure is ------------------------------------------------------------------


class Usage(NamedTuple):
    """Redis's resources so far."""

    cpu: float  # seconds, user + system
    memory: int  # used_memory less the connections' buffers, bytes


class Measured(NamedTuple):
    """A write figure: rows/s, and for Redis its CPU (µs) and memory (bytes) per row."""

    rate: float
    cpu_us: float | None = None
    bytes_per_row: float | None = None


class ReadFigure(NamedTuple):
    """A read figure: median milliseconds, and for Redis its CPU milliseconds per read."""

    ms: float
    cpu_ms: float | None = None


class Backend(Protocol):
    """A store to measure: fresh stores, and Redis's resources (None for SQLite)."""

    def store(self) -> AbstractContextManager[MonitoringStore]:
        """A store in its starting state for one write figure."""
        ...

    def outcome_ids(self, store: MonitoringStore, n: int, seed: int) -> list[str]:
        """``n`` ids of stored leads without an outcome."""
        ...

    def usage(self) -> Usage | None:
        """Redis's resources so far; None for a store that is not Redis."""
        ...


def measure(
    backend: Backend,
    rows: int,
    prepare: Callable[[MonitoringStore], Callable[[], None]],
    memory: bool = True,
) -> Measured:
    """Time ``prepare(store)()`` (the setup ``prepare`` does is not timed)."""
    with backend.store() as store:
        write = prepare(store)
        before = backend.usage()
        started = time.perf_counter()
        write()
        elapsed = time.perf_counter() - started
        after = backend.usage()
    if before is None or after is None:
        return Measured(rows / elapsed)
    added = (after.memory - before.memory) / rows if memory else None
    return Measured(rows / elapsed, (after.cpu - before.cpu) / rows * 1e6, added)


def median(figures: Sequence[Measured]) -> Measured:
    """Each field's median over the runs."""

    def middle(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    rate = statistics.median(figure.rate for figure in figures)
    return Measured(
        rate,
        middle([figure.cpu_us for figure in figures]),
        middle([figure.bytes_per_row for figure in figures]),
    )


# -- the write figures, on either store ------------------------------------------------


def remember_rate(backend: Backend, batch: int, total: int) -> Measured:
    records = new_leads(total, seed=batch)
    chunks = [records[i : i + batch] for i in range(0, total, batch)]

    def prepare(store: MonitoringStore) -> Callable[[], None]:
        def write() -> None:
            for chunk in chunks:
                store.remember(chunk)

        return write

    return measure(backend, total, prepare)


def outcomes_rate(backend: Backend, total: int) -> Measured:
    def prepare(store: MonitoringStore) -> Callable[[], None]:
        outcomes = [Outcome(i, True, NOW) for i in backend.outcome_ids(store, total, seed=1)]
        chunks = [outcomes[i : i + 100] for i in range(0, total, 100)]

        def write() -> None:
            for chunk in chunks:
                assert store.record_outcomes(chunk, NOW) == ["recorded"] * len(chunk)

        return write

    return measure(backend, total, prepare)


def counts_rate(backend: Backend, flushes: int, bins: int) -> Measured:
    batches = count_rows(flushes, bins)

    def prepare(store: MonitoringStore) -> Callable[[], None]:
        def write() -> None:
            for rows in batches:
                store.add_counts(rows)

        return write

    # Most rows add to a stored row: the memory they add says nothing per row.
    return measure(backend, flushes * KEYS, prepare, memory=False)


# -- SQLite ----------------------------------------------------------------------------


# A row of the leads table, as the naive baseline and the prefill write it.
INSERT_LEAD = (
    "INSERT OR REPLACE INTO leads (lead_id, vertical, version, score, accepted, scored_at,"
    " shadow_version, shadow_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def lead_row(lead: ScoredLead) -> tuple[object, ...]:
    """The values of ``INSERT_LEAD``."""
    return (
        lead.lead_id, lead.vertical, lead.version, lead.score, lead.accepted, lead.scored_at,
        lead.shadow_version, lead.shadow_score,
    )  # fmt: skip


def prefill(workdir: Path, leads: int) -> Path:
    """Build the store every SQLite write figure starts from (closed: one file, no WAL).

    The store creates its file; the rows go in through a plain connection with a page
    cache that holds the whole id index, in one transaction: the rows ``remember`` and
    ``record_outcomes`` would write, in the same order, so the same tables and indexes,
    in half the time (the store's small cache rereads index pages for every random id).
    """
    path = workdir / "prefilled" / "m.db"
    open_sqlite_store(path)[0].close()
    rng = random.Random(0)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA cache_size = -1000000")  # KiB: 1 GB at most
        connection.execute("BEGIN")
        connection.executemany(
            INSERT_LEAD,
            (
                lead_row(scored(lead_id(i), "auto", "1.1.0", NOW - 30 * DAY * (1 - i / leads), rng))
                for i in range(leads)
            ),
        )
        connection.executemany(
            "UPDATE leads SET converted = ?, outcome_at = ? WHERE lead_id = ?",
            ((i % 3 == 0, NOW, lead_id(i)) for i in range(0, leads, LABELLED_EVERY)),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return path


class SqliteBench:
    """Copies of the prefilled SQLite store, one for each measurement."""

    def __init__(self, workdir: Path, source: Path, leads: int) -> None:
        self.workdir = workdir
        self.source = source
        self.leads = leads

    def copy(self) -> Path:
        """A fresh copy of the prefilled store's file."""
        target = Path(tempfile.mkdtemp(dir=self.workdir)) / "m.db"
        shutil.copyfile(self.source, target)
        return target

    @contextmanager
    def store(self) -> Iterator[SqliteMonitoringStore]:
        """The monitoring store on a fresh copy."""
        store, report = open_sqlite_store(self.copy())
        assert report.problem is None
        try:
            yield store
        finally:
            store.close()

    def outcome_ids(self, store: MonitoringStore, n: int, seed: int) -> list[str]:
        """``n`` prefilled leads without an outcome (``store`` is a copy of the prefill)."""
        return self.unlabelled_ids(n, seed)

    def unlabelled_ids(self, n: int, seed: int) -> list[str]:
        """``n`` distinct prefilled leads without an outcome (spread over the id index)."""
        rng = random.Random(seed)
        picked: set[int] = set()
        while len(picked) < n:
            i = rng.randrange(self.leads)
            if i % LABELLED_EVERY:
                picked.add(i)
        return [lead_id(i) for i in picked]

    def usage(self) -> None:
        """Not Redis: nothing to report."""
        return None

    @contextmanager
    def naive(self) -> Iterator[sqlite3.Connection]:
        """The same store written the naive way: rollback journal, synchronous=FULL."""
        connection = sqlite3.connect(self.copy(), timeout=30)  # implicit transactions
        connection.execute("PRAGMA journal_mode = DELETE")
        connection.execute("PRAGMA synchronous = FULL")
        try:
            yield connection
        finally:
            connection.close()


def timed(count: int, write: Callable[[], None]) -> float:
    started = time.perf_counter()
    write()
    return count / (time.perf_counter() - started)


def store_writer(path: str, total: int, barrier: Any, results: Any) -> None:
    store, _ = open_sqlite_store(Path(path))
    records = new_leads(total, seed=os.getpid())
    barrier.wait()
    started = time.monotonic()
    for i in range(0, total, 100):
        store.remember(records[i : i + 100])
    results.put((started, time.monotonic()))
    store.close()


# -- the naive baseline ----------------------------------------------------------------


def naive_remember(connection: sqlite3.Connection, records: list[ScoredLead]) -> None:
    for lead in records:
        connection.execute(INSERT_LEAD, lead_row(lead))
        connection.commit()


def naive_remember_rate(bench: SqliteBench, total: int) -> float:
    records = new_leads(total, seed=0)
    with bench.naive() as connection:
        return timed(total, lambda: naive_remember(connection, records))


def naive_outcomes_rate(bench: SqliteBench, total: int) -> float:
    ids = bench.unlabelled_ids(total, seed=2)
    with bench.naive() as connection:

        def write() -> None:
            for i in ids:
                connection.execute(
                    "UPDATE leads SET converted = 1, outcome_at = ? WHERE lead_id = ?", (NOW, i)
                )
                connection.commit()

        return timed(total, write)


def naive_counts_rate(bench: SqliteBench, flushes: int) -> float:
    rows = [row for batch in count_rows(flushes, BINS) for row in batch]
    with bench.naive() as connection:

        def write() -> None:
            for row in rows:
                key = (row.vertical, row.version, row.role, row.name, row.minute)
                found = connection.execute(
                    "SELECT counts FROM counts WHERE vertical = ? AND version = ? AND role = ?"
                    " AND name = ? AND minute = ?",
                    key,
                ).fetchone()
                total = array("q", row.counts)
                if found:
                    stored = array("q")
                    stored.frombytes(found[0])
                    total = array("q", [a + b for a, b in zip(stored, total, strict=True)])
                connection.execute(
                    "INSERT OR REPLACE INTO counts VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, total.tobytes()),
                )
                connection.commit()

        return timed(len(rows), write)


def naive_writer(path: str, total: int, barrier: Any, results: Any) -> None:
    connection = sqlite3.connect(path, timeout=30)
    connection.execute("PRAGMA synchronous = FULL")
    records = new_leads(total, seed=os.getpid())
    barrier.wait()
    started = time.monotonic()
    naive_remember(connection, records)
    results.put((started, time.monotonic()))
    connection.close()


# -- two processes ---------------------------------------------------------------------


def two_processes_rate(path: Path, writer: Callable[..., None], per_process: int) -> float:
    """Total records/s of two spawned writers started together; checks nothing was lost."""
    before = leads_in(path)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [
        context.Process(target=writer, args=(str(path), per_process, barrier, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    spans = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {process.exitcode}")
    assert leads_in(path) == before + 2 * per_process, "records were lost"
    started = min(span[0] for span in spans)
    ended = max(span[1] for span in spans)
    return float(2 * per_process / (ended - started))


def store_two_rate(bench: SqliteBench, per_process: int) -> float:
    path = bench.copy()
    open_sqlite_store(path)[0].close()
    return two_processes_rate(path, store_writer, per_process)


def naive_two_rate(bench: SqliteBench, per_process: int) -> float:
    with bench.naive() as connection:
        path = Path(connection.execute("PRAGMA database_list").fetchone()[2])
    return two_processes_rate(path, naive_writer, per_process)


def leads_in(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM leads").fetchone()[0])
    finally:
        connection.close()


def open_seconds(bench: SqliteBench) -> float:
    path = bench.copy()
    started = time.perf_counter()
    store, report = open_sqlite_store(path)
    seconds = time.perf_counter() - started
    store.close()
    assert report.problem is None and not report.created
    return seconds


# -- Redis -----------------------------------------------------------------------------


class RedisBench:
    """A private ``redis-server``: the read data in database 0, each write figure in 1."""

    def __init__(self, server: LocalRedis) -> None:
        self.server = server
        self.admin = redis.Redis(host="127.0.0.1", port=server.port, db=0)
        self.writes = redis.Redis(host="127.0.0.1", port=server.port, db=REDIS_WRITES_DB)
        # What one probe (INFO) costs Redis, taken off every window between two probes:
        # tens of µs, which would show in the CPU of a read.
        self._probes = 0
        self.probe_cpu = 0.0
        costs = []
        for _ in range(20):
            first = self.usage()
            costs.append(self.usage().cpu - first.cpu)
        self.probe_cpu = statistics.median(costs)

    def url(self, db: int) -> str:
        """The URL of database ``db``."""
        return f"redis://127.0.0.1:{self.server.port}/{db}"

    def info(self, *sections: str) -> dict[str, Any]:
        """Sections of ``INFO``, in one command."""
        reply: dict[str, Any] = self.admin.info(*sections)
        return reply

    def version(self) -> str:
        """The server's version."""
        return str(self.info("server")["redis_version"])

    @contextmanager
    def open(self, db: int) -> Iterator[RedisMonitoringStore]:
        """The store in database ``db``; checks that every write reached Redis."""
        store, report = open_redis_store(self.url(db), timeout_ms=REDIS_TIMEOUT_MS)
        assert report.problem is None, report.problem
        try:
            yield store
            # A write Redis did not take waits in the backlog, unseen by the timing.
            assert store.backlog == 0 and store.dropped == 0, "writes did not reach Redis"
        finally:
            store.close()

    @contextmanager
    def store(self) -> Iterator[RedisMonitoringStore]:
        """The store in an emptied database for the writes."""
        self.writes.flushdb()
        with self.open(REDIS_WRITES_DB) as store:
            yield store

    def outcome_ids(self, store: MonitoringStore, n: int, seed: int) -> list[str]:
        """Remember ``n`` new leads first (Redis holds no prefilled leads); their ids."""
        leads = new_leads(n, seed=1000 + seed)
        store.remember(leads)
        return [lead.lead_id for lead in leads]

    def usage(self) -> Usage:
        """Redis's CPU so far, less what the probes cost, and the memory of its data."""
        info = self.info("memory", "cpu")
        self._probes += 1
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return Usage(
            cpu - self._probes * self.probe_cpu,
            int(info["used_memory"]) - int(info["mem_clients_normal"]),
        )


# -- running ---------------------------------------------------------------------------


class WriteFigure(NamedTuple):
    """One write, measured on each store."""

    label: str
    kind: str  # the naive baseline it is compared with
    run: Callable[[Backend], Measured]


@dataclass
class Results:
    """One store's figures, by label."""

    writes: dict[str, Measured] = field(default_factory=dict)
    reads: dict[str, ReadFigure] = field(default_factory=dict)
    answers: dict[str, object] = field(default_factory=dict)  # what the reads returned
    baseline: dict[str, float] = field(default_factory=dict)  # SQLite, --baseline only
    opening: float | None = None  # SQLite, --baseline only: seconds


def scaled(args: argparse.Namespace, count: int) -> int:
    """``count`` times ``--scale``, in hundreds."""
    return max(100, int(count * args.scale) // 100 * 100)


def write_figures(args: argparse.Namespace) -> list[WriteFigure]:
    def n(count: int) -> int:
        return scaled(args, count)

    return [
        WriteFigure("remember, batches of 1", "remember", lambda b: remember_rate(b, 1, n(3_000))),
        WriteFigure(
            "remember, batches of 100", "remember", lambda b: remember_rate(b, 100, n(30_000))
        ),
        WriteFigure(
            "remember, batches of 1000", "remember", lambda b: remember_rate(b, 1000, n(30_000))
        ),
        WriteFigure(
            "record_outcomes, batches of 100", "outcomes", lambda b: outcomes_rate(b, n(30_000))
        ),
        WriteFigure(
            f"add_counts, flushes of {KEYS} rows, {BINS} bins",
            "counts",
            lambda b: counts_rate(b, n(30_000) // KEYS, BINS),
        ),
        WriteFigure(
            f"add_counts, flushes of {KEYS} rows, {HIST_BINS} bins",
            "counts",
            lambda b: counts_rate(b, n(6_000) // KEYS, HIST_BINS),
        ),
    ]


def run_writes(backend: Backend, args: argparse.Namespace) -> dict[str, Measured]:
    return {
        figure.label: median([figure.run(backend) for _ in range(args.repeat)])
        for figure in write_figures(args)
    }


def run_reads(
    results: Results, store: MonitoringStore, data: ReadData, usage: Callable[[], Usage | None]
) -> None:
    """Each read's figure, and what it returned (both stores must return the same)."""
    for label, read in reads(data):
        results.answers[label] = read(store)  # untimed: the publisher's pages are warm
        times = []
        before = usage()
        for _ in range(READ_REPEAT):
            started = time.perf_counter()
            read(store)
            times.append(time.perf_counter() - started)
        after = usage()
        cpu_ms = None if before is None or after is None else (after.cpu - before.cpu) * 1000
        results.reads[label] = ReadFigure(
            statistics.median(times) * 1000, None if cpu_ms is None else cpu_ms / READ_REPEAT
        )


def run_sqlite(workdir: Path, data: ReadData, args: argparse.Namespace) -> Results:
    """Every SQLite figure (with ``--baseline``, the naive baseline's and the open's too)."""
    started = time.perf_counter()
    source = prefill(workdir, args.prefill)
    size = source.stat().st_size / 1e6
    print(
        f"SQLite {sqlite3.sqlite_version}: writes on copies of a store of {args.prefill:,}"
        f" leads, {size:,.0f} MB (built in {time.perf_counter() - started:.1f} s);"
        f" reads on a store of the read data; files in {workdir}",
        flush=True,
    )
    bench = SqliteBench(workdir, source, args.prefill)
    results = Results()

    def n(count: int) -> int:
        return scaled(args, count)

    def middle(measure: Callable[[], float]) -> float:
        return statistics.median(measure() for _ in range(args.repeat))

    if args.baseline:
        results.baseline = {
            "remember": middle(lambda: naive_remember_rate(bench, n(500))),
            "outcomes": middle(lambda: naive_outcomes_rate(bench, n(500))),
            "counts": middle(lambda: naive_counts_rate(bench, max(1, n(600) // KEYS))),
            "two": middle(lambda: naive_two_rate(bench, n(300))),
        }
    results.writes = run_writes(bench, args)
    if args.baseline:
        results.writes[TWO_PROCESSES] = Measured(middle(lambda: store_two_rate(bench, n(20_000))))
        results.opening = middle(lambda: open_seconds(bench))
    store, _ = open_sqlite_store(workdir / "reads" / "m.db")
    try:
        data.write(store)
        run_reads(results, store, data, bench.usage)
    finally:
        store.close()
    return results


def run_redis(workdir: Path, data: ReadData, args: argparse.Namespace) -> Results | None:
    """Every Redis figure; None, with a message, when ``redis-server`` is missing."""
    try:
        server = LocalRedis(workdir)
    except FileNotFoundError as exc:
        print(f"Redis: skipped, {exc} is not installed", flush=True)
        return None
    try:
        bench = RedisBench(server)
        started = time.perf_counter()
        with bench.open(0) as store:
            data.write(store)
        print(
            f"Redis {bench.version()} on loopback, no persistence: writes each in an empty"
            f" database; reads on the read data ({bench.info('memory')['used_memory_human']},"
            f" written in {time.perf_counter() - started:.1f} s); a probe of Redis's CPU"
            f" costs it {bench.probe_cpu * 1e6:.0f} µs, taken off",
            flush=True,
        )
        results = Results()
        results.writes = run_writes(bench, args)
        with bench.open(0) as store:
            run_reads(results, store, data, bench.usage)
        return results
    finally:
        server.stop()


# -- the tables ------------------------------------------------------------------------


def cell(value: float | None, width: int, digits: int = 0) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width},.{digits}f}"


def print_writes(sqlite: Results, redis_results: Results, rows: list[WriteFigure]) -> None:
    base = sqlite.baseline
    if base:
        print(f"{'SQLite naive baseline: a transaction a row, synchronous=FULL':<60} {'rows/s':>9}")
        for kind, value in base.items():
            print(f"  {kind:<58} {value:>9,.0f}")
        print()
    naive = f" {'x naive':>7}" if base else ""
    print(
        f"{'writes':<44} {'SQLite/s':>9}{naive} {'Redis/s':>9} {'CPU µs':>7} {'/core':>9}"
        f" {'B/row':>6}"
    )
    labels = [(figure.label, figure.kind) for figure in rows]
    if TWO_PROCESSES in sqlite.writes:
        labels.append((TWO_PROCESSES, "two"))
    for label, kind in labels:
        lite, red = sqlite.writes.get(label), redis_results.writes.get(label)
        ratio = ""
        if base:
            ratio = f" {cell(lite.rate / base[kind] if lite else None, 6)}x"
        cpu = red.cpu_us if red else None
        print(
            f"  {label:<42} {cell(lite.rate if lite else None, 9)}{ratio}"
            f" {cell(red.rate if red else None, 9)} {cell(cpu, 7, 1)}"
            f" {cell(1e6 / cpu if cpu else None, 9)}"
            f" {cell(red.bytes_per_row if red else None, 6)}"
        )
    print(
        "  SQLite/s, Redis/s: rows a second one process writes"
        + ("; x naive: SQLite over its naive baseline" if base else "")
        + "\n  CPU µs: Redis's own CPU a row; /core: rows a second one Redis core carries at"
        " that cost\n  B/row: Redis memory a row adds"
    )


def print_reads(sqlite: Results, redis_results: Results, labels: list[str]) -> None:
    heading = "reads (the quality publisher's, a model, every 30 s)"
    print(f"{heading:<52} {'SQLite ms':>9} {'Redis ms':>9} {'CPU ms':>7}")
    for label in labels:
        lite, red = sqlite.reads.get(label), redis_results.reads.get(label)
        print(
            f"  {label:<50} {cell(lite.ms if lite else None, 9, 1)}"
            f" {cell(red.ms if red else None, 9, 1)}"
            f" {cell(red.cpu_ms if red else None, 7, 2)}"
        )
    print(f"  median of {READ_REPEAT} reads; CPU ms: Redis's own CPU a read")


def print_capacity(results: Results) -> None:
    """What one Redis core and Redis's memory carry, from the batches of 100."""
    leads = results.writes.get("remember, batches of 100")
    outcomes = results.writes.get("record_outcomes, batches of 100")
    if not leads or leads.cpu_us is None or leads.bytes_per_row is None:
        return
    print(
        f"Redis, leads remembered in batches of 100: {leads.cpu_us:.1f} µs of Redis CPU a"
        f" lead: one Redis core carries {1e6 / leads.cpu_us:,.0f} leads/s"
    )
    if outcomes and outcomes.cpu_us is not None:
        both = leads.cpu_us + outcomes.cpu_us / LABELLED_EVERY
        print(
            f"  with an outcome for one lead in {LABELLED_EVERY}"
            f" ({outcomes.cpu_us:.1f} µs each): {1e6 / both:,.0f} leads/s a core"
        )
    print(
        f"Redis memory: {leads.bytes_per_row:,.0f} B a remembered lead:"
        f" {leads.bytes_per_row * 10e6 / 1e9:.1f} GB for 10 M leads in retention"
    )
    if outcomes and outcomes.bytes_per_row is not None:
        print(f"  and {outcomes.bytes_per_row:,.0f} B more for each lead with an outcome")


def main() -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="leads in SQLite")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every write count")
    parser.add_argument("--repeat", type=int, default=3, help="runs per write figure (median)")
    parser.add_argument(
        "--labelled-per-day", type=int, default=10_000, help="leads with an outcome a day"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="SQLite also: the naive baseline, two processes, the open (about 20 s more)",
    )
    parser.add_argument("--no-redis", action="store_true", help="measure SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="measure Redis only")
    args = parser.parse_args()

    started = time.perf_counter()
    data = ReadData.build(args.labelled_per_day)
    print(
        f"{os.cpu_count()} CPUs; median of {args.repeat} runs a write figure; read data:"
        f" {len(data.leads):,} labelled leads in {READ_VERTICAL!r}"
        f" ({args.labelled_per_day:,} a day), {len(data.rows):,} count rows (a week)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        workdir = Path(tmp)
        sqlite = None if args.no_sqlite else run_sqlite(workdir, data, args)
        redis_results = None if args.no_redis else run_redis(workdir, data, args)
    if sqlite and redis_results:
        assert sqlite.answers == redis_results.answers, "the stores' reads answered differently"
    print()
    print_writes(sqlite or Results(), redis_results or Results(), write_figures(args))
    print()
    print_reads(sqlite or Results(), redis_results or Results(), [r for r, _ in reads(data)])
    if redis_results:
        print()
        print_capacity(redis_results)
    if sqlite and sqlite.opening is not None:
        print()
        print(
            f"SQLite open with quick_check ({args.prefill:,} leads): {sqlite.opening * 1000:.0f} ms"
        )
    print()
    print(f"whole run: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
