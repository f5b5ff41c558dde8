"""Every request on the service port timed, by route and status class, at hot-path cost.

``RequestRecorder`` is what ``api.gateway`` calls once per request: it keeps the
in-flight count, adds the duration to a buffered ``ml_http_request_duration_seconds``
child (``api.metrics.BufferedHistogram``: a dict lookup, a bisect and two additions on
the request path; the shared files are written at each watcher tick) and counts a slow
request (``ml_slow_requests_total``, ``MONITORING_CONFIG``'s ``thresholds.latency_ms``).

Label values stay bounded: ``route`` is one of the application's route paths or
``other``, and only listed routes are remembered by their exact path, so a client
inventing paths cannot grow any table here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from api import metrics

OTHER_ROUTE = "other"
# A slow-request warning at most this often per worker; the rest are counted in it.
SLOW_LOG_INTERVAL = 1.0

log = logging.getLogger("ml_service.requests")


def status_class(status: int) -> str:
    """``2xx`` for 200..299 and so on; anything outside 100..599 is a server error."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "5xx"


class RequestRecorder:
    """Per-worker request metrics (see the module docstring).

    Args:
        routes: The application's route paths (the only ``route`` labels besides
            ``other``).
        environment: The ``environment`` label.
        slow_seconds: Requests slower than this are slow.
        log_slow: Whether a slow request logs a warning (``MONITORING_CONFIG.alerts``).
    """

    def __init__(
        self,
        routes: Iterable[str],
        environment: str,
        slow_seconds: float,
        log_slow: bool,
        template: Callable[[str], str | None] = lambda path: None,
    ) -> None:
        self.routes = frozenset(routes)
        # A path not listed as such may match a templated route (its label, e.g.
        # /api/v1/models/{vertical}/monitor); such paths are resolved at every request,
        # never remembered, since the client chooses them.
        self._template = template
        self.environment = environment
        self.slow_seconds = slow_seconds
        self.log_slow = log_slow
        self.in_flight = 0
        self._histograms: dict[tuple[str, str], metrics.BufferedHistogram] = {}
        # (path, status) of listed routes -> its histogram: the hot path's one lookup.
        self._by_request: dict[tuple[str, int], metrics.BufferedHistogram] = {}
        self._slow: dict[str, metrics.BufferedCounter] = {}
        self._in_flight_reported = -1
        self._slow_unlogged = 0
        self._next_slow_log = 0.0

    def observe(self, path: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        histogram = self._by_request.get((path, status))
        if histogram is None:
            histogram = self.histogram(path, status)
        histogram.observe(seconds)
        if seconds > self.slow_seconds:
            self.slow_request(path, status, seconds)

    def histogram(self, path: str, status: int) -> metrics.BufferedHistogram:
        """The buffered histogram of ``path`` and ``status``'s class (created at 0).

        The scoring handlers hold theirs for 200 and record into it directly (with their
        per-vertical latency: ``api.scoring_metrics``), the hot path's shortest way.
        """
        listed = path in self.routes
        route = path if listed else (self._template(path) or OTHER_ROUTE)
        key = (route, status_class(status))
        histogram = self._histograms.get(key)
        if histogram is None:
            child = metrics.REQUEST_DURATION.labels(route, key[1], self.environment)
            histogram = self._histograms[key] = metrics.BufferedHistogram(child)
        if listed and 100 <= status <= 599:
            self._by_request[(path, status)] = histogram
        return histogram

    def slow_request(self, path: str, status: int, seconds: float) -> None:
        """Count (and maybe log) a request slower than ``slow_seconds``."""
        route = path if path in self.routes else (self._template(path) or OTHER_ROUTE)
        counter = self._slow.get(route)
        if counter is None:
            counter = self._slow[route] = metrics.BufferedCounter(
                metrics.SLOW_REQUESTS.labels(route, self.environment)
            )
        counter.inc()
        if not self.log_slow:
            return
        self._slow_unlogged += 1
        now = time.monotonic()
        if now >= self._next_slow_log:
            self._next_slow_log = now + SLOW_LOG_INTERVAL
            log.warning(
                "slow request",
                extra={
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "threshold_ms": round(self.slow_seconds * 1000, 3),
                    "slow_requests": self._slow_unlogged,  # this one and those not logged
                },
            )
            self._slow_unlogged = 0

    def flush(self) -> None:
        """Write the buffered values to the shared files (every watcher tick)."""
        for histogram in list(self._histograms.values()):
            histogram.flush()
        for counter in list(self._slow.values()):
            counter.flush()
        if self.in_flight != self._in_flight_reported:
            self._in_flight_reported = self.in_flight
            metrics.REQUESTS_IN_FLIGHT.labels(self.environment).set(self.in_flight)
