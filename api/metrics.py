"""Prometheus metrics of the service, multiprocess-safe.

``PROMETHEUS_MULTIPROC_DIR`` must be set before this module is imported (gunicorn.conf.py
sets it in the master, so every worker inherits it); each worker then writes its values
to mmap'd files there, and the master aggregates them on every scrape
(``api.metrics_files``). Every gauge declares its ``multiprocess_mode``. Labels stay low
cardinality: ``vertical`` is one of the configured verticals or ``unknown``, never a
caller's raw string.

Metrics:

- ``ml_scoring_latency_seconds{vertical,environment}``: server time to score one request
  (histogram; buckets resolve sub-millisecond latencies and the 500 ms target).
- ``ml_scoring_errors_total{error_type,vertical,environment}``: every failed request by
  error type (``invalid_json``, ``validation_error``, ``unauthorized``, ...).
- ``ml_leads_scored_total{vertical,environment}``: leads scored (batch leads included).
- ``ml_model_performance``, ``ml_model_performance_leads``, ``ml_model_drift``: model
  quality (holdout, realized, estimated; drift), exported by the master from the
  snapshot the worker in slot 0 computes (``api.quality``), not from these files.
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
- ``ml_http_request_duration_seconds{route,status_class,environment}``: every request the
  application sees, failures included (auth refusals, 4xx, 5xx), from the gateway's
  first look to the response handed to the transport (what the HTTP layer refuses
  before, e.g. malformed HTTP, only counts as an error); ``route`` is the route's path or
  ``other``, ``status_class`` ``2xx``..``5xx``. The latency alert uses this one on the
  scoring routes, so a slow failure pages (``ml_scoring_latency_seconds`` keeps the
  seed's meaning: successful scoring by vertical).
- ``ml_slow_requests_total{route,environment}``: requests slower than
  ``MONITORING_CONFIG``'s ``thresholds.latency_ms`` (``api.monitoring_config``).
- ``ml_leads_accepted_total{vertical,environment}``: scored leads at or above their
  vertical's threshold; acceptance rate = accepted / scored.
- ``ml_lead_price{vertical,environment}``: prices quoted (histogram, in the vertical's
  currency).
- ``ml_batch_size{vertical,environment}``: leads per batch request (histogram).
- ``ml_requests_in_flight{environment}``: requests being served, summed over live
  workers (each worker sets its count at every watcher tick, ~50 ms).
- ``ml_model_loaded{vertical,environment}``: 1 when every live worker has a model for the
  vertical (``livemin``: one worker without is enough to show 0).
- ``ml_process_cpu_seconds_total``, ``ml_process_resident_memory_bytes``,
  ``ml_process_open_fds``, ``ml_process_start_time_seconds`` ``{process,environment}``:
  resource use of the master (``process="master"``) and of each worker slot
  (``worker-<slot>``: a replacement takes its predecessor's slot, so the label set is
  bounded and the CPU counter of a slot keeps growing across replacements).
- ``ml_worker_starts_total{process,environment}``: worker processes started per slot (1
  after a clean start; each replacement adds one).
- ``ml_workers_live{environment}`` (one per live worker, summed) and
  ``ml_workers_configured{environment}`` (the master's ``WORKERS``).
- ``ml_alert_threshold{name,environment}``: the alert rules' thresholds from
  ``MONITORING_CONFIG`` (absent when its ``alerts`` is false).
- ``ml_cache_lookups_total{vertical,result,environment}``: prediction-cache lookups by
  ``hit``/``miss`` (at 0 when ``CACHE_CONFIG`` enables no cache);
  ``ml_cache_evictions_total{tier}`` and ``ml_cache_entries{tier}`` (``api.prediction_cache``);
  ``ml_cache_redis_operations_total{operation,result}``: the Redis tier's gets (``hit``,
  ``miss``, ``unavailable``: Redis not asked or not answering, ``unreadable``) and sets
  (``stored``, ``dropped``).
- ``ml_redis_up{environment}`` (``livemin``: 0 while any worker's circuit breaker is
  open) and ``ml_redis_failures_total{reason}`` (``api.redis_link``).

Dead workers: every gauge is a ``live*`` mode, so ``mark_process_dead`` drops a dead
worker's gauges; its counters and histograms are folded into one retired file
(``api.metrics_files``), so totals stay monotonic and scrape cost does not grow with
replacements.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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
REQUEST_DURATION = Histogram(
    "ml_http_request_duration_seconds",
    "Server time of every request on the service port, by route and status class.",
    ["route", "status_class", "environment"],
    buckets=LATENCY_BUCKETS,
)
SLOW_REQUESTS = Counter(
    "ml_slow_requests_total",
    "Requests slower than MONITORING_CONFIG thresholds.latency_ms, by route.",
    ["route", "environment"],
)
LEADS_ACCEPTED = Counter(
    "ml_leads_accepted_total",
    "Scored leads whose score reached the vertical's threshold.",
    ["vertical", "environment"],
)
PRICE_BUCKETS = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300)
LEAD_PRICE = Histogram(
    "ml_lead_price",
    "Prices quoted for scored leads, in the vertical's currency.",
    ["vertical", "environment"],
    buckets=PRICE_BUCKETS,
)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
BATCH_SIZE = Histogram(
    "ml_batch_size",
    "Leads per batch scoring request.",
    ["vertical", "environment"],
    buckets=BATCH_SIZE_BUCKETS,
)
REQUESTS_IN_FLIGHT = Gauge(
    "ml_requests_in_flight",
    "Requests being served (sampled every watcher tick), summed over live workers.",
    ["environment"],
    multiprocess_mode="livesum",
)
MODEL_LOADED = Gauge(
    "ml_model_loaded",
    "1 when every live worker has a model for the vertical.",
    ["vertical", "environment"],
    multiprocess_mode="livemin",
)
PROCESS_CPU = Counter(
    "ml_process_cpu_seconds_total",
    "CPU time (user + system) of the master and of each worker slot.",
    ["process", "environment"],
)
PROCESS_RSS = Gauge(
    "ml_process_resident_memory_bytes",
    "Resident memory of the master and of each worker slot.",
    ["process", "environment"],
    multiprocess_mode="livemax",
)
PROCESS_FDS = Gauge(
    "ml_process_open_fds",
    "Open file descriptors of the master and of each worker slot.",
    ["process", "environment"],
    multiprocess_mode="livemax",
)
PROCESS_START = Gauge(
    "ml_process_start_time_seconds",
    "Start time (Unix seconds) of the master and of each worker slot's process.",
    ["process", "environment"],
    multiprocess_mode="livemax",
)
WORKER_STARTS = Counter(
    "ml_worker_starts_total",
    "Worker processes started in each slot (each replacement adds one).",
    ["process", "environment"],
)
WORKERS_LIVE = Gauge(
    "ml_workers_live", "Live workers serving.", ["environment"], multiprocess_mode="livesum"
)
WORKERS_CONFIGURED = Gauge(
    "ml_workers_configured",
    "Workers the master is configured to run.",
    ["environment"],
    multiprocess_mode="livemax",
)
ALERT_THRESHOLD = Gauge(
    "ml_alert_threshold",
    "Alert rule thresholds from MONITORING_CONFIG (absent when its alerts is false).",
    ["name", "environment"],
    multiprocess_mode="livemax",
)
MONITORING_STORE_OPENS = Counter(
    "ml_monitoring_store_opens_total",
    "Worker connections to the monitoring store: opened, created, recovered, failed.",
    ["outcome", "environment"],
)
FEEDBACK_LEADS = Counter(
    "ml_feedback_leads_total",
    "Scored leads with a lead_id remembered for their outcome (or dropped: store behind).",
    ["outcome", "environment"],
)
FEEDBACK_OUTCOMES = Counter(
    "ml_feedback_outcomes_total",
    "Outcomes received by status: recorded, unknown (never scored or expired), duplicate.",
    ["status", "environment"],
)
SHADOW_FAILURES = Counter(
    "ml_shadow_failures_total",
    "Shadow challenger failures by vertical and reason (load refusals, leads it rejects).",
    ["vertical", "reason", "environment"],
)
REDIS_UP = Gauge(
    "ml_redis_up",
    "1 while the Redis circuit breaker is closed, 0 while it is open (local fallback).",
    ["environment"],
    multiprocess_mode="livemin",
)
REDIS_FAILURES = Counter(
    "ml_redis_failures_total",
    "Redis calls that failed (timeout, error); the caller used its local state.",
    ["reason", "environment"],
)
CACHE_EVICTIONS = Counter(
    "ml_cache_evictions_total",
    "Prediction cache entries evicted to stay within max_size, by tier.",
    ["tier", "environment"],
)
CACHE_ENTRIES = Gauge(
    "ml_cache_entries",
    "Prediction cache entries held, summed over live workers, by tier.",
    ["tier", "environment"],
    multiprocess_mode="livesum",
)
CACHE_REDIS_OPERATIONS = Counter(
    "ml_cache_redis_operations_total",
    "Prediction cache operations on the Redis tier: get hit/miss/unavailable/unreadable, "
    "set stored/dropped.",
    ["operation", "result", "environment"],
)
CACHE_LOOKUPS = Counter(
    "ml_cache_lookups_total",
    "Prediction cache lookups by result (hit, miss).",
    ["vertical", "result", "environment"],
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

    def observe(self, value: float) -> None:
        """Record one observation (same bucket rule as prometheus: ``value <= bound``)."""
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._total += value

    def observe_with(self, other: BufferedHistogram, value: float) -> None:
        """Record ``value`` here and in ``other`` (same bounds): one bisect for both."""
        index = bisect.bisect_left(self._bounds, value)
        self._counts[index] += 1
        self._total += value
        other._counts[index] += 1
        other._total += value

    @property
    def bounds(self) -> tuple[float, ...]:
        """The upper bounds of the buckets (``+Inf`` last)."""
        return self._bounds

    def flush(self) -> None:
        """Add the buffered observations to the shared histogram."""
        if not any(self._counts):
            return
        counts, self._counts = self._counts, [0] * len(self._bounds)
        total, self._total = self._total, 0.0
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
