"""Prometheus metrics of the service, multiprocess-safe.

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is imported (gunicorn.conf.py
sets it in the master, so every worker inherits it); each worker then writes its values
to mmap'd files there, and the master aggregates them on every scrape
(``serve_metrics``). Every gauge declares its ``multiprocess_mode``. Labels stay low
cardinality: ``vertical`` is one of the configured verticals or ``unknown``, never a
caller's raw string.

Metrics:

- ``ml_scoring_latency_seconds{vertical,environment}``: server time to score one request
  (histogram; buckets resolve sub-millisecond latencies and the 500 ms target).
- ``ml_scoring_errors_total{error_type,vertical,environment}``: every failed request by
  error type (``invalid_json``, ``validation_error``, ``unauthorized``, ...).
- ``ml_leads_scored_total{vertical,environment}``: leads scored (batch leads included).
- ``ml_model_performance{vertical,metric,environment}``: holdout ``auc``, ``precision``
  and ``recall`` from the manifest of the version each live worker serves.
- ``ml_model_info{vertical,version,environment}``: 1 for a version some live worker
  serves, 0 for one it stopped serving.
- ``ml_auth_failures_total{reason,environment}``: refused requests by reason (``expired``,
  ``retired_key``, ``forbidden``, ...: the keys of ``api.auth.REASONS``).
- ``ml_credential_reloads_total{credential,outcome,environment}``: re-reads of the token
  keyring (``token_keys``) and the TLS certificate (``tls_certificate``) on reload; a
  ``failure`` keeps the previous one in force.
- ``ml_model_reloads_total{outcome,environment}``: worker reloads by ``success``/``failure``.
- ``ml_reload_generation{environment}``: the lowest reload generation any live worker
  serves (a worker lagging behind shows here).
- ``ml_model_rejections_total{vertical,reason,environment}``: model versions refused at a
  load (start, reload, rollback), once per worker and attempt; ``reason`` is one of
  ``engine.store.active.REASONS`` (``layout``, ``signature``, ``unknown_key``,
  ``manifest``, ``mismatch``, ``hash``, ``pointer``, ``load``).
- ``ml_model_active_unserved{vertical,environment}``: 1 while some live worker does not
  serve what the vertical's ``CURRENT`` names as it is on disk (refused, missing, not
  reloaded yet, or changed on disk since it was loaded); ``livemax``, so one worker is
  enough to raise it and a dead worker's value is dropped with it.
- ``ml_reload_hook_failures_total{environment}``: reload hooks (e.g. the token keyring
  re-read) that raised; the reload itself went on.
- ``ml_archive_records_total{outcome,environment}``: scored leads offered to the opt-in
  lead archive: ``written``, ``dropped`` (buffer full: the disk cannot keep up) or
  ``failed`` (a write error, logged). Absent when the archive is off.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

SCORING_LATENCY = Histogram(
    "ml_scoring_latency_seconds",
    "Server time to score one request, by vertical.",
    ["vertical", "environment"],
    buckets=LATENCY_BUCKETS,
)
SCORING_ERRORS = Counter(
    "ml_scoring_errors_total",
    "Failed requests by error type.",
    ["error_type", "vertical", "environment"],
)
LEADS_SCORED = Counter(
    "ml_leads_scored_total", "Leads scored, batch leads included.", ["vertical", "environment"]
)
MODEL_PERFORMANCE = Gauge(
    "ml_model_performance",
    "Holdout metrics of the model version served, from its manifest.",
    ["vertical", "metric", "environment"],
    multiprocess_mode="livemostrecent",
)
MODEL_INFO = Gauge(
    "ml_model_info",
    "1 for a model version a live worker serves.",
    ["vertical", "version", "environment"],
    multiprocess_mode="livemax",
)
AUTH_FAILURES = Counter(
    "ml_auth_failures_total",
    "Requests refused by authentication or authorisation, by reason.",
    ["reason", "environment"],
)
CREDENTIAL_RELOADS = Counter(
    "ml_credential_reloads_total",
    "Credential re-reads on reload (token_keys, tls_certificate), by outcome.",
    ["credential", "outcome", "environment"],
)
RELOADS = Counter(
    "ml_model_reloads_total", "Model reloads done by workers.", ["outcome", "environment"]
)
ARCHIVE_RECORDS = Counter(
    "ml_archive_records_total",
    "Scored leads offered to the lead archive, by outcome.",
    ["outcome", "environment"],
)
RELOAD_GENERATION = Gauge(
    "ml_reload_generation",
    "Reload generation served; the minimum over live workers.",
    ["environment"],
    multiprocess_mode="livemin",
)
MODEL_REJECTIONS = Counter(
    "ml_model_rejections_total",
    "Model versions refused at a load, by vertical and reason.",
    ["vertical", "reason", "environment"],
)
MODEL_UNSERVED = Gauge(
    "ml_model_active_unserved",
    "1 while a live worker does not serve what CURRENT names (as it is on disk).",
    ["vertical", "environment"],
    multiprocess_mode="livemax",
)
RELOAD_HOOK_FAILURES = Counter(
    "ml_reload_hook_failures_total", "Reload hooks that raised.", ["environment"]
)


class BufferedHistogram:
    """Observations kept in process memory and added to a histogram child on ``flush``.

    A multiprocess ``observe`` writes to mmap'd files under a lock (~2.7 µs); buffering
    makes the hot path a bisect and two additions (~0.3 µs), and ``flush`` (every
    reload-watcher tick, ~50 ms) adds whole buckets at once. Scrapes lag by one tick.
    """

    def __init__(self, child: Any) -> None:
        # prometheus_client's Histogram keeps per-bucket values and a sum value; check
        # they are there so a library change fails here, loudly, not silently.
        if not (
            hasattr(child, "_buckets")
            and hasattr(child, "_sum")
            and hasattr(child, "_upper_bounds")
        ):
            raise TypeError("this prometheus_client Histogram has no _buckets/_sum")
        self._child = child
        self._bounds = tuple(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._total = 0.0
        self._pending = False

    def observe(self, value: float) -> None:
        """Record one observation (same bucket rule as prometheus: ``value <= bound``)."""
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._total += value
        self._pending = True

    def flush(self) -> None:
        """Add the buffered observations to the shared histogram."""
        if not self._pending:
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._total, self._pending = self._total, 0.0, False
        self._child._sum.inc(total)
        for bucket, count in zip(self._child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


class BufferedCounter:
    """Increments kept in process memory and added to a counter child on ``flush``."""

    def __init__(self, child: Any) -> None:
        self._child = child
        self._pending = 0

    def inc(self, amount: int = 1) -> None:
        """Count ``amount``."""
        self._pending += amount

    def flush(self) -> None:
        """Add the buffered count to the shared counter."""
        if self._pending:
            pending, self._pending = self._pending, 0
            self._child.inc(pending)


def vertical_label(vertical: object, known: Iterable[str]) -> str:
    """Return ``vertical`` if configured, else ``unknown`` (bounded label values)."""
    return vertical if isinstance(vertical, str) and vertical in known else "unknown"


def serve_metrics(port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` aggregated over all worker processes (call in the master).

    A ``MultiProcessCollector`` reads every process's files at each scrape, so the
    registry always reflects live workers and the ones marked dead.
    """
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=address, registry=registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (call from gunicorn's ``child_exit``)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
