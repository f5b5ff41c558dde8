"""This process's resource use, read from /proc, reported under a process label."""

from __future__ import annotations

import os
import time

from prometheus_client import REGISTRY

from api import process_stats
from api.process_stats import ProcessReporter

ENV = "unit-process"


def test_readings_describe_this_process():
    rss = process_stats.resident_bytes()
    assert rss is not None and rss > 1_000_000  # a Python process with numpy loaded
    fds = process_stats.open_fds()
    assert fds is not None and fds >= 3
    with open(os.devnull) as _:
        assert process_stats.open_fds() == fds + 1
    started = process_stats.start_time()
    assert time.time() - 24 * 3600 < started <= time.time()
    assert process_stats.cpu_seconds() > 0


def value(name: str, process: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"process": process, "environment": ENV})


def test_reporter_counts_cpu_as_a_counter_and_throttles():
    reporter = ProcessReporter("worker-7", ENV, interval=3600.0)
    assert value("ml_process_start_time_seconds", "worker-7") == process_stats.start_time()
    reporter.sample()
    first = value("ml_process_cpu_seconds_total", "worker-7")
    assert first is not None and first > 0
    assert (value("ml_process_resident_memory_bytes", "worker-7") or 0) > 1_000_000
    assert (value("ml_process_open_fds", "worker-7") or 0) >= 3
    sum(i * i for i in range(300_000))  # spend some CPU
    reporter.sample()  # within the interval: no new report
    assert value("ml_process_cpu_seconds_total", "worker-7") == first


def test_reporter_adds_only_what_was_used_since_its_last_report():
    reporter = ProcessReporter("worker-8", ENV, interval=0.0)
    reporter.sample()
    first = value("ml_process_cpu_seconds_total", "worker-8") or 0.0
    sum(i * i for i in range(2_000_000))
    reporter.sample()
    second = value("ml_process_cpu_seconds_total", "worker-8") or 0.0
    assert second > first
    assert abs(second - process_stats.cpu_seconds()) < 0.05  # the total, not a sum of totals
