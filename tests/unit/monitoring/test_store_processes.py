"""Real worker processes sharing one store file: nothing lost, nobody locked out.

The children are spawned (not forked), as gunicorn workers each open their own
connection; they start together behind a barrier so their transactions interleave.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.monitoring.sqlite_store import open_sqlite_store
from engine.monitoring.store import CountRow, Outcome, ScoredLead

CTX = multiprocessing.get_context("spawn")
WORKERS = 3
BATCHES = 150
NOW = 1_700_000_000.0
SEEDS_PER_WORKER = 40


def batch_ids(worker: int, batch: int) -> list[str]:
    size = 1 if batch % 3 == 0 else 25  # single-row transactions too: the worst contention
    return [f"w{worker}-b{batch}-{i}" for i in range(size)]


def scored(lead_id: str) -> ScoredLead:
    return ScoredLead(lead_id, "auto", "1.0.0", 0.5, True, NOW - 60)


def write_concurrently(path: str, worker: int, barrier: Any, results: Any) -> None:
    """One worker: leads, its own outcomes, seed outcomes and counts, then a neighbour's."""
    try:
        store, _ = open_sqlite_store(Path(path))
        statuses: Counter[str] = Counter()
        seeds = [f"seed-{worker}-{i}" for i in range(SEEDS_PER_WORKER)]
        barrier.wait()
        for batch in range(BATCHES):
            store.remember([scored(i) for i in batch_ids(worker, batch)])
            if batch:  # feedback for this worker's previous batch
                outcomes = [Outcome(i, True, NOW) for i in batch_ids(worker, batch - 1)]
                statuses.update(store.record_outcomes(outcomes, NOW))
            if batch < SEEDS_PER_WORKER:  # feedback for leads another process scored
                statuses.update(store.record_outcomes([Outcome(seeds[batch], False, NOW)], NOW))
            store.add_counts([CountRow("auto", "1.0.0", "champion", "age", batch % 3, [1, worker])])
        barrier.wait()  # every worker's leads are in: feedback may reach any worker
        neighbour = (worker + 1) % WORKERS
        last = [Outcome(i, True, NOW) for i in batch_ids(neighbour, BATCHES - 1)]
        statuses.update(store.record_outcomes(last, NOW))
        again = store.record_outcomes([Outcome(batch_ids(neighbour, 1)[0], False, NOW)], NOW)
        store.close()
        results.put((worker, dict(statuses), again, None))
    except BaseException:
        results.put((worker, {}, [], traceback.format_exc()))


def run(target: Any, args: list[tuple[Any, ...]]) -> list[Any]:
    results = CTX.Queue()
    processes = [CTX.Process(target=target, args=(*a, results)) for a in args]
    for process in processes:
        process.start()
    got = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return got


def test_concurrent_workers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.db"
    store, _ = open_sqlite_store(path)
    seeds = [f"seed-{w}-{i}" for w in range(WORKERS) for i in range(SEEDS_PER_WORKER)]
    store.remember([scored(i) for i in seeds])  # scored by "another worker" beforehand

    barrier = CTX.Barrier(WORKERS)
    got = run(write_concurrently, [(str(path), w, barrier) for w in range(WORKERS)])

    for worker, statuses, again, error in got:
        assert error is None, f"worker {worker} failed:\n{error}"
        own = sum(len(batch_ids(worker, b)) for b in range(BATCHES - 1))
        neighbour_last = len(batch_ids((worker + 1) % WORKERS, BATCHES - 1))
        assert statuses == {"recorded": own + SEEDS_PER_WORKER + neighbour_last}
        assert again == ["duplicate"]

    leads = len(seeds) + sum(len(batch_ids(w, b)) for w in range(WORKERS) for b in range(BATCHES))
    outside = sqlite3.connect(path)
    try:
        assert outside.execute("SELECT count(*) FROM leads").fetchone()[0] == leads
    finally:
        outside.close()
    labelled = store.labelled("auto", 0)
    assert len(labelled.converted) == leads  # every lead got exactly its outcome
    assert labelled.converted.count(False) == len(seeds)
    assert store.counts("auto", "1.0.0", "champion", "age", since=0) == [
        WORKERS * BATCHES,
        BATCHES * sum(range(WORKERS)),
    ]
    store.close()


def open_together(path: str, worker: int, start: Any, results: Any) -> None:
    """Open the store at the same moment as the others, then write one lead."""
    try:
        start.wait()
        store, report = open_sqlite_store(Path(path))
        store.remember([scored(f"opened-by-{worker}")])
        store.close()
        results.put((worker, report, None))
    except BaseException:
        results.put((worker, None, traceback.format_exc()))


@pytest.mark.parametrize("start_with", ["missing", "garbage"])
def test_workers_starting_together_create_or_recover_once(tmp_path: Path, start_with: str) -> None:
    path = tmp_path / "monitoring.db"
    if start_with == "garbage":
        path.write_bytes(b"\x00not sqlite\xff" * 5000)
    start = CTX.Barrier(WORKERS)
    got = run(open_together, [(str(path), w, start) for w in range(WORKERS)])

    assert [error for _, _, error in got] == [None] * WORKERS
    reports = [report for _, report, _ in got]
    assert sum(report.created for report in reports) == 1
    if start_with == "garbage":
        recovered = [report for report in reports if report.recovered]
        assert len(recovered) == 1 and recovered[0].problem is not None
        assert [report.problem for report in reports].count(None) == WORKERS - 1
        assert [p.name for p in tmp_path.glob("*.corrupt-*")] == [Path(recovered[0].moved_to).name]
    else:
        assert not any(report.recovered or report.problem for report in reports)
    store, report = open_sqlite_store(path)
    try:
        assert (report.created, report.recovered, report.problem) == (False, False, None)
        outside = sqlite3.connect(path)
        names = sorted(row[0] for row in outside.execute("SELECT lead_id FROM leads"))
        outside.close()
        assert names == [f"opened-by-{w}" for w in range(WORKERS)]
    finally:
        store.close()
