"""Retiring a dead process's metrics files: totals kept, gauges dropped, files bounded.

Real processes write real multiprocess files (prometheus_client in each), and the
master's registry (``api.metrics_files.metrics_registry``) reads them back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.metrics_files import metrics_registry, retire_process

WRITER = """
import os, sys
from prometheus_client import Counter, Gauge, Histogram
amount = float(sys.argv[1])
Counter("jobs", "jobs", ["kind"]).labels("a").inc(amount)
Counter("idle", "never incremented", ["kind"]).labels("a")
Histogram("took_seconds", "took", buckets=(0.1, 1.0)).observe(amount / 10)
Gauge("live", "live", multiprocess_mode="livesum").set(1)
print(os.getpid())
"""


def write(directory: Path, amount: float) -> int:
    """Run one real process that writes metrics into ``directory``; return its pid."""
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(amount)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def sample(directory: Path, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics_registry(directory).get_sample_value(name, labels or {})


def test_retiring_keeps_totals_drops_gauges_and_bounds_the_files(tmp_path):
    pids = [write(tmp_path, amount) for amount in (1, 2, 3)]
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 6
    assert sample(tmp_path, "live") == 3
    assert sample(tmp_path, "took_seconds_count") == 3

    retire_process(pids[0], tmp_path)
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 6
    assert sample(tmp_path, "took_seconds_count") == 3
    assert sample(tmp_path, "took_seconds_bucket", {"le": "0.1"}) == 1  # 0.1 <= 0.1
    assert sample(tmp_path, "took_seconds_sum") == pytest.approx(0.6)
    assert sample(tmp_path, "live") == 2  # the dead process's gauge is gone
    assert sample(tmp_path, "idle_total", {"kind": "a"}) == 0  # a series at 0 stays
    assert not list(tmp_path.glob(f"*_{pids[0]}.db"))

    for pid in pids[1:]:
        retire_process(pid, tmp_path)
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 6
    assert sample(tmp_path, "live") is None
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_retired.db",
        "histogram_retired.db",
    ]

    # Another generation of processes: still two retired files, totals still add up.
    for pid in [write(tmp_path, 10) for _ in range(3)]:
        retire_process(pid, tmp_path)
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 36
    assert sample(tmp_path, "took_seconds_count") == 6
    assert len(list(tmp_path.glob("*.db"))) == 2


def test_retiring_an_unknown_pid_changes_nothing(tmp_path):
    write(tmp_path, 4)
    before = sorted(p.name for p in tmp_path.glob("*.db"))
    retire_process(999_999_999, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.db")) == before
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 4


def test_scrapes_during_retirements_never_see_a_counter_step_back(tmp_path):
    pids = [write(tmp_path, 1) for _ in range(12)]
    seen: list[float] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            seen.append(sample(tmp_path, "jobs_total", {"kind": "a"}) or 0.0)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for pid in pids:
            retire_process(pid, tmp_path)
    finally:
        stop.set()
        scraper.join()
    # The counter stays exactly 12 while files move from dead processes to the
    # retired file: never counted twice, never missing.
    assert seen and set(seen) == {12.0}
    assert sample(tmp_path, "jobs_total", {"kind": "a"}) == 12
