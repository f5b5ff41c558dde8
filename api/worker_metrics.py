"""The metrics a worker keeps besides its routes': requests, resources, liveness.

``start`` runs once in each worker's lifespan startup, after its models are loaded:
it builds the worker's ``RequestRecorder`` (``api.request_metrics``) for the gateway,
counts the worker's start in its slot, marks it live, starts reporting its CPU, memory
and fds (``api.process_stats``, at most once a second from the watcher tick), and puts
the cache lookup series at 0 so dashboards and rules see them before any cache exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from api import metrics
from api.process_stats import ProcessReporter
from api.request_metrics import RequestRecorder
from api.service import Service
from engine.store.active import REASONS as REFUSAL_REASONS

CACHE_RESULTS = ("hit", "miss")
RELOAD_OUTCOMES = ("success", "failure")
# The scoring routes' status classes that alerts divide: present from the start.
SCORING_ROUTES = ("/api/v1/score", "/api/v1/score/batch")
WATCHED_STATUSES = (200, 400, 500)


def worker_process_label(slot: int) -> str:
    """The ``process`` label of the worker in ``slot``."""
    return f"worker-{slot}"


def start(
    service: Service,
    route_paths: Iterable[str],
    template: Callable[[str], str | None] = lambda path: None,
) -> RequestRecorder:
    """Set up this worker's metrics and return its request recorder.

    Args:
        service: The worker's service.
        route_paths: The route paths (``route`` labels).
        template: The templated route a path matches (``api.access.AccessTable.template``).
    """
    settings = service.settings
    env = settings.environment
    runtime = service.runtime
    monitoring = settings.monitoring
    recorder = RequestRecorder(
        route_paths, env, monitoring.slow_request_seconds, monitoring.alerts, template
    )
    process = worker_process_label(runtime.slot)
    reporter = ProcessReporter(process, env)
    reporter.sample()
    runtime.tick_hooks.extend((recorder.flush, reporter.sample))
    metrics.WORKER_STARTS.labels(process, env).inc()
    metrics.WORKERS_LIVE.labels(env).set(1)
    _create_event_series(service, recorder)
    return recorder


def _create_event_series(service: Service, recorder: RequestRecorder) -> None:
    """Create the rare events' series at 0 (see the module docstring)."""
    env = service.settings.environment
    for outcome in RELOAD_OUTCOMES:
        metrics.RELOADS.labels(outcome, env)
    metrics.RELOAD_HOOK_FAILURES.labels(env)
    for vertical in service.verticals:
        for reason in REFUSAL_REASONS:
            metrics.MODEL_REJECTIONS.labels(vertical, reason, env)
        for result in CACHE_RESULTS:
            metrics.CACHE_LOOKUPS.labels(vertical, result, env)
    for route in SCORING_ROUTES:
        for status in WATCHED_STATUSES:
            recorder.histogram(route, status)
