"""The per-request recorder: durations by route and status class, slow requests."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from api.request_metrics import OTHER_ROUTE, RequestRecorder, status_class

ENV = "unit-requests"
ROUTES = ("/api/v1/score", "/health")


def count(route: str, cls: str) -> float:
    value = REGISTRY.get_sample_value(
        "ml_http_request_duration_seconds_count",
        {"route": route, "status_class": cls, "environment": ENV},
    )
    return value or 0.0


def slow(route: str) -> float:
    value = REGISTRY.get_sample_value(
        "ml_slow_requests_total", {"route": route, "environment": ENV}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "2xx"),
        (204, "2xx"),
        (304, "3xx"),
        (404, "4xx"),
        (599, "5xx"),
        (0, "5xx"),
        (999, "5xx"),
    ],
)
def test_status_class(status, expected):
    assert status_class(status) == expected


def test_every_request_lands_in_its_route_and_class_at_the_next_flush():
    recorder = RequestRecorder(ROUTES, ENV, slow_seconds=10.0, log_slow=True)
    before = {key: count(*key) for key in [("/api/v1/score", "2xx"), ("/api/v1/score", "4xx")]}
    for _ in range(3):
        recorder.observe("/api/v1/score", 200, 0.001)
    recorder.observe("/api/v1/score", 422, 0.002)
    recorder.observe("/api/v1/score", 401, 0.0001)
    assert count("/api/v1/score", "2xx") == before[("/api/v1/score", "2xx")]  # buffered
    recorder.flush()
    assert count("/api/v1/score", "2xx") == before[("/api/v1/score", "2xx")] + 3
    assert count("/api/v1/score", "4xx") == before[("/api/v1/score", "4xx")] + 2


def test_unknown_paths_share_one_label_and_are_not_remembered():
    recorder = RequestRecorder(ROUTES, ENV, slow_seconds=10.0, log_slow=True)
    before = count(OTHER_ROUTE, "4xx")
    for i in range(500):
        recorder.observe(f"/made/up/{i}", 404, 0.0001)
    recorder.flush()
    assert count(OTHER_ROUTE, "4xx") == before + 500
    # Only listed routes are kept by exact path: a client's invented paths grow nothing.
    assert all(path in ROUTES for path, _ in recorder._by_request)
    assert len(recorder._histograms) == 1


def test_slow_requests_are_counted_and_logged_at_most_once_a_second(caplog):
    recorder = RequestRecorder(ROUTES, ENV, slow_seconds=0.05, log_slow=True)
    before = slow("/health")
    with caplog.at_level(logging.WARNING, logger="ml_service.requests"):
        recorder.observe("/health", 200, 0.01)  # fast
        for _ in range(5):
            recorder.observe("/health", 503, 0.2)
    recorder.flush()
    assert slow("/health") == before + 5
    lines = [r for r in caplog.records if r.getMessage() == "slow request"]
    assert len(lines) == 1  # the other four within the second are counted, not logged
    assert lines[0].route == "/health"
    assert lines[0].status == 503
    assert lines[0].duration_ms == 200.0
    assert lines[0].threshold_ms == 50.0


def test_alerts_off_counts_slow_requests_without_logging(caplog):
    recorder = RequestRecorder(ROUTES, ENV, slow_seconds=0.05, log_slow=False)
    before = slow("/api/v1/score")
    with caplog.at_level(logging.WARNING, logger="ml_service.requests"):
        recorder.observe("/api/v1/score", 200, 1.0)
    recorder.flush()
    assert slow("/api/v1/score") == before + 1
    assert not [r for r in caplog.records if r.getMessage() == "slow request"]


def test_in_flight_is_published_when_it_changes():
    recorder = RequestRecorder(ROUTES, ENV, slow_seconds=10.0, log_slow=True)
    recorder.in_flight = 3
    recorder.flush()
    gauge = REGISTRY.get_sample_value("ml_requests_in_flight", {"environment": ENV})
    assert gauge == 3
    recorder.in_flight = 0
    recorder.flush()
    assert REGISTRY.get_sample_value("ml_requests_in_flight", {"environment": ENV}) == 0
