"""Write rates of the monitoring store (SQLite, WAL) against a naive baseline, one run.

Every figure is measured on its own copy of one prefilled store (``--prefill`` leads
scored over 30 days, one in 20 with an outcome), because what a write costs depends
on how big the table it goes into is: an insert of a random ``lead_id`` lands on a
random page of the id index. Contenders:

- remember: new scored leads (random uuid ids) in batches of 1, 100 and 1000, one
  transaction per batch, as the workers' flushes write them.
- record_outcomes: outcomes for stored leads in batches of 100.
- add_counts: per-minute histogram rows (60 keys per flush, 20 bins; ten flushes share
  each minute, so most rows are merged into an existing one).
- two processes: two spawned processes remembering batches of 100 at once (total
  records/s), as two workers of one machine do.

Baseline, measured in the same run on copies of the same store: what a naive
implementation does, one row per transaction with SQLite's defaults (rollback journal,
``synchronous=FULL``), the counts merged by a read and a write in Python. Each figure is
printed with its ratio to the baseline of the same kind of write. Last, the cost of
opening the prefilled store with its ``quick_check``, what each worker pays at start.

Put ``--dir`` on the disk the service's ``MONITORING_DB`` lives on.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.monitoring.sqlite_store import SqliteMonitoringStore, open_sqlite_store
from engine.monitoring.store import CountRow, Outcome, ScoredLead, epoch_minute

NOW = time.time()
DAY = 86400.0
BINS = 20
KEYS = 60  # a vertical's features and score histograms, champion and challenger
LABELLED_EVERY = 20  # one prefilled lead in 20 has an outcome


def lead_id(i: int) -> str:
    """The id of prefilled lead ``i``: random-looking like a uuid, yet reproducible."""
    return str(uuid.UUID(bytes=hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()))


def new_leads(n: int, seed: int) -> list[ScoredLead]:
    rng = random.Random(seed)
    return [
        ScoredLead(
            str(uuid.UUID(int=rng.getrandbits(128))),
            "auto",
            "1.2.0",
            rng.random(),
            rng.random() < 0.4,
            NOW,
        )
        for _ in range(n)
    ]


def count_rows(flushes: int) -> list[list[CountRow]]:
    base = epoch_minute(NOW)
    rng = random.Random(flushes)
    return [
        [
            CountRow(
                "auto",
                "1.2.0",
                "champion" if key % 2 else "challenger",
                f"feature_{key}",
                base + flush // 10,
                [rng.randrange(5) for _ in range(BINS)],
            )
            for key in range(KEYS)
        ]
        for flush in range(flushes)
    ]


def prefill(workdir: Path, leads: int) -> Path:
    """Build the store every contender starts from (closed, so one file, no WAL)."""
    store, _ = open_sqlite_store(workdir / "prefilled" / "m.db")
    rng = random.Random(0)
    step = 50_000
    for start in range(0, leads, step):
        store.remember(
            [
                ScoredLead(
                    lead_id(i),
                    "auto",
                    "1.1.0",
                    rng.random(),
                    rng.random() < 0.4,
                    NOW - 30 * DAY + 30 * DAY * i / leads,
                )
                for i in range(start, min(leads, start + step))
            ]
        )
        labelled = range(start, min(leads, start + step), LABELLED_EVERY)
        store.record_outcomes([Outcome(lead_id(i), i % 3 == 0, NOW) for i in labelled], NOW)
    store.close()
    return store.path


class Bench:
    """Copies of the prefilled store for each measurement."""

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

    def unlabelled_ids(self, n: int, seed: int) -> list[str]:
        """``n`` distinct prefilled leads without an outcome."""
        rng = random.Random(seed)
        picked: set[int] = set()
        while len(picked) < n:
            i = rng.randrange(self.leads)
            if i % LABELLED_EVERY:
                picked.add(i)
        return [lead_id(i) for i in picked]


def timed(count: int, write: Callable[[], None]) -> float:
    started = time.perf_counter()
    write()
    return count / (time.perf_counter() - started)


# -- the store -------------------------------------------------------------------------


def remember_rate(bench: Bench, batch: int, total: int) -> float:
    records = new_leads(total, seed=batch)
    chunks = [records[i : i + batch] for i in range(0, total, batch)]
    with bench.store() as store:

        def write() -> None:
            for chunk in chunks:
                store.remember(chunk)

        return timed(total, write)


def outcomes_rate(bench: Bench, total: int) -> float:
    outcomes = [Outcome(i, True, NOW) for i in bench.unlabelled_ids(total, seed=1)]
    chunks = [outcomes[i : i + 100] for i in range(0, total, 100)]
    with bench.store() as store:

        def write() -> None:
            for chunk in chunks:
                assert store.record_outcomes(chunk, NOW) == ["recorded"] * len(chunk)

        return timed(total, write)


def counts_rate(bench: Bench, flushes: int) -> float:
    batches = count_rows(flushes)
    with bench.store() as store:

        def write() -> None:
            for rows in batches:
                store.add_counts(rows)

        return timed(flushes * KEYS, write)


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

NAIVE_REMEMBER = (
    "INSERT OR REPLACE INTO leads (lead_id, vertical, version, score, accepted, scored_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def naive_remember(connection: sqlite3.Connection, records: list[ScoredLead]) -> None:
    for lead in records:
        connection.execute(
            NAIVE_REMEMBER,
            (lead.lead_id, lead.vertical, lead.version, lead.score, lead.accepted, NOW),
        )
        connection.commit()


def naive_remember_rate(bench: Bench, total: int) -> float:
    records = new_leads(total, seed=0)
    with bench.naive() as connection:
        return timed(total, lambda: naive_remember(connection, records))


def naive_outcomes_rate(bench: Bench, total: int) -> float:
    ids = bench.unlabelled_ids(total, seed=2)
    with bench.naive() as connection:

        def write() -> None:
            for i in ids:
                connection.execute(
                    "UPDATE leads SET converted = 1, outcome_at = ? WHERE lead_id = ?", (NOW, i)
                )
                connection.commit()

        return timed(total, write)


def naive_counts_rate(bench: Bench, flushes: int) -> float:
    rows = [row for batch in count_rows(flushes) for row in batch]
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


def store_two_rate(bench: Bench, per_process: int) -> float:
    path = bench.copy()
    open_sqlite_store(path)[0].close()
    return two_processes_rate(path, store_writer, per_process)


def naive_two_rate(bench: Bench, per_process: int) -> float:
    with bench.naive() as connection:
        path = Path(connection.execute("PRAGMA database_list").fetchone()[2])
    return two_processes_rate(path, naive_writer, per_process)


def leads_in(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM leads").fetchone()[0])
    finally:
        connection.close()


def open_seconds(bench: Bench) -> float:
    path = bench.copy()
    started = time.perf_counter()
    store, report = open_sqlite_store(path)
    seconds = time.perf_counter() - started
    store.close()
    assert report.problem is None and not report.created
    return seconds


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="leads in the store")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every write count")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()

    def n(count: int) -> int:
        return max(100, int(count * args.scale) // 100 * 100)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        source = prefill(workdir, args.prefill)
        size = source.stat().st_size / 1e6
        print(f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, files in {workdir}")
        print(
            f"prefilled store: {args.prefill:,} leads, {size:,.0f} MB"
            f" (built in {time.perf_counter() - started:.1f} s); median of {args.repeat} runs"
        )
        bench = Bench(workdir, source, args.prefill)

        def median(measure: Callable[[], float]) -> float:
            return statistics.median(measure() for _ in range(args.repeat))

        base = {
            "remember": median(lambda: naive_remember_rate(bench, n(500))),
            "outcomes": median(lambda: naive_outcomes_rate(bench, n(500))),
            "counts": median(lambda: naive_counts_rate(bench, max(1, n(600) // KEYS))),
            "two": median(lambda: naive_two_rate(bench, n(300))),
        }
        figures = [
            ("remember, batches of 1", "remember", lambda: remember_rate(bench, 1, n(3_000))),
            ("remember, batches of 100", "remember", lambda: remember_rate(bench, 100, n(50_000))),
            (
                "remember, batches of 1000",
                "remember",
                lambda: remember_rate(bench, 1000, n(100_000)),
            ),
            (
                "record_outcomes, batches of 100",
                "outcomes",
                lambda: outcomes_rate(bench, n(30_000)),
            ),
            (f"add_counts, flushes of {KEYS} rows", "counts", lambda: counts_rate(bench, n(1_000))),
            (
                "two processes remember, batches of 100",
                "two",
                lambda: store_two_rate(bench, n(30_000)),
            ),
        ]
        measured = [(label, kind, median(measure)) for label, kind, measure in figures]
        opening = median(lambda: open_seconds(bench))

    print()
    print(f"{'baseline: one row per transaction, synchronous=FULL':<52} {'rows/s':>11}")
    for kind, value in base.items():
        print(f"  {kind:<50} {value:>11,.0f}")
    print()
    heading = "monitoring store: WAL, synchronous=NORMAL, batches"
    print(f"{heading:<52} {'rows/s':>11} {'ratio':>7}")
    for label, kind, value in measured:
        print(f"  {label:<50} {value:>11,.0f} {value / base[kind]:>6.0f}x")
    print()
    print(
        f"open with quick_check ({args.prefill:,} leads, {size:,.0f} MB): {opening * 1000:,.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
