"""Resource use of this process (CPU, resident memory, open fds, start time) as metrics.

Prometheus's own ``ProcessCollector`` reports only the process that serves ``/metrics``
(the master), so every process reports itself into the multiprocess files under a
bounded ``process`` label: ``master``, or ``worker-<slot>`` for a worker (a replacement
takes its predecessor's slot). Workers sample at most once a second from their watcher
tick; the master samples at each scrape. Reads come from ``/proc`` (Linux); where it
is missing, memory and fds are simply not reported.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from api import metrics

_PROC = Path("/proc")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), in seconds."""
    times = os.times()
    return times.user + times.system


def resident_bytes() -> int | None:
    """Resident set size of this process, or None without ``/proc``."""
    try:
        fields = (_PROC / "self" / "statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE_SIZE


def open_fds() -> int | None:
    """Open file descriptors of this process, or None without ``/proc``."""
    try:
        return sum(1 for _ in (_PROC / "self" / "fd").iterdir())
    except OSError:
        return None


def start_time() -> float:
    """When this process started (Unix seconds); now, without ``/proc``."""
    try:
        stat = (_PROC / "self" / "stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in (_PROC / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return time.time()
    # Field 22 (starttime, in clock ticks since boot) follows the ")" that ends the name.
    after_name = stat.rpartition(")")[2].split()
    return boot + int(after_name[19]) / _TICKS


class ProcessReporter:
    """Writes this process's resource use under one ``process`` label.

    Args:
        process: ``master`` or ``worker-<slot>``.
        environment: The ``environment`` label.
        interval: Least seconds between two samples (``sample`` is cheap to call often).
    """

    def __init__(self, process: str, environment: str, interval: float = 1.0) -> None:
        self._cpu = metrics.PROCESS_CPU.labels(process, environment)
        self._rss = metrics.PROCESS_RSS.labels(process, environment)
        self._fds = metrics.PROCESS_FDS.labels(process, environment)
        metrics.PROCESS_START.labels(process, environment).set(start_time())
        self._interval = interval
        self._reported_cpu = 0.0
        self._next = 0.0

    def sample(self) -> None:
        """Report now, unless the last report is less than ``interval`` old."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        cpu = cpu_seconds()
        # The counter grows by what this process used since its last report, so a
        # slot's total keeps counting across replacements (the dead worker's share is
        # kept in the retired file: api.metrics_files).
        if cpu > self._reported_cpu:
            self._cpu.inc(cpu - self._reported_cpu)
            self._reported_cpu = cpu
        rss = resident_bytes()
        if rss is not None:
            self._rss.set(rss)
        fds = open_fds()
        if fds is not None:
            self._fds.set(fds)
