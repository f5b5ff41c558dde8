"""The multiprocess metrics files: serving them from the master, retiring dead workers.

Every process writes its values to mmap'd files in ``PROMETHEUS_MULTIPROC_DIR``, named
``<type>_<pid>.db`` (gauges: ``gauge_<mode>_<pid>.db``), and the master's ``/metrics``
reads every file at each scrape. Left alone, each dead worker's counter and histogram
files would stay there for good (their totals must keep counting), so a service whose
workers are replaced would scrape slower and slower (client_python issues 204, 367).

So when a worker exits, ``retire_process`` (the master, from ``child_exit``):

1. drops its gauge files (``mark_process_dead``: every gauge here is a ``live*`` mode);
2. adds each of its counter and histogram values into ``counter_retired.db`` /
   ``histogram_retired.db`` (same keys, so the collector sums them like any process's
   file), then deletes its files.

The directory then holds the live processes' files and two retired files, however many
workers have come and gone. A scrape and a retirement never interleave (one lock in
the master), so no scrape sees a value both in the retired file and in the dead
worker's file, and counters never step back. If the master dies between steps 2's
write and delete, the dead worker is counted twice; but a new master wipes the
directory at start (``gunicorn.conf.py``), so that cannot outlive it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict as _MmapedDict
from prometheus_client.registry import Collector

RETIRED = "retired"
_FOLDED_TYPES = ("counter", "histogram")
# Scrapes (the HTTP server's thread) and retirements (the master's main loop) take turns.
_FILES_LOCK = threading.Lock()
# prometheus_client's own file format (untyped): one key -> (value, timestamp) per series.
MmapedDict: Any = _MmapedDict


def _directory(directory: Path | None) -> Path:
    return directory if directory is not None else Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


class _LockedCollector(Collector):
    """The multiprocess collector, run under the files lock, after a refresh callback."""

    def __init__(self, directory: Path, refresh: Callable[[], None] | None) -> None:
        self._inner = _multiprocess.MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
        self._refresh = refresh

    def collect(self) -> Iterable[Metric]:
        if self._refresh is not None:
            self._refresh()  # e.g. the master's own CPU and memory, as of this scrape
        with _FILES_LOCK:
            return list(self._inner.collect())  # type: ignore[no-untyped-call]


def metrics_registry(
    directory: Path | None = None,
    refresh: Callable[[], None] | None = None,
    extra: Iterable[Collector] = (),
) -> CollectorRegistry:
    """A registry that aggregates every process's files (``refresh`` runs per scrape).

    ``extra`` collectors export metrics of their own (names the files never hold).
    """
    registry = CollectorRegistry()
    registry.register(_LockedCollector(_directory(directory), refresh))
    for collector in extra:
        registry.register(collector)
    return registry


def serve_metrics(
    port: int,
    address: str = "0.0.0.0",
    refresh: Callable[[], None] | None = None,
    extra: Iterable[Collector] = (),
) -> None:
    """Serve ``/metrics`` aggregated over all processes (call in the master)."""
    registry = metrics_registry(refresh=refresh, extra=extra)
    start_http_server(port, addr=address, registry=registry)


def retire_process(pid: int, directory: Path | None = None) -> None:
    """Retire a dead process's files (call from gunicorn's ``child_exit``).

    Its gauges are dropped; its counters and histograms are added into the retired
    files and deleted (see the module docstring).
    """
    if directory is None and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = _directory(directory)
    with _FILES_LOCK:
        _multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
        for kind in _FOLDED_TYPES:
            dead = folder / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            values = MmapedDict.read_all_values_from_file(str(dead))
            retired = MmapedDict(str(folder / f"{kind}_{RETIRED}.db"))
            try:
                for key, value, timestamp, _position in values:
                    if value:
                        current, _ = retired.read_value(key)
                        retired.write_value(key, current + value, timestamp)
                    else:
                        retired.read_value(key)  # keep the series, at its value
            finally:
                retired.close()
            dead.unlink()
