"""The master's /metrics aggregates every worker (prometheus multiprocess mode)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.integration.service import metric_value

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())


def scrape_until(service, check, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        text = service.metrics()
        try:
            if check(text):
                return text
        except KeyError:
            pass
        if time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_scrape_aggregates_all_workers(service, store):
    before = service.metrics()

    def value(text, name, **labels):
        try:
            return metric_value(text, name, **labels)
        except KeyError:
            return 0.0

    scored_before = value(before, "ml_leads_scored_total", vertical="health", environment="test")
    errors_before = value(
        before,
        "ml_scoring_errors_total",
        error_type="validation_error",
        vertical="health",
        environment="test",
    )
    unknown_before = value(
        before,
        "ml_scoring_errors_total",
        error_type="unknown_vertical",
        vertical="unknown",
        environment="test",
    )
    clients = [service.client() for _ in range(6)]  # spread over both workers
    for i in range(60):
        reply = clients[i % 6].request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "health", "lead_data": {"age": 30 + i % 40}},
        )
        assert reply.status == 200
    for client in clients[:3]:
        client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "health", "lead_data": {"age": -1}},
        )
        client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "x" * 50, "lead_data": {}},
        )
    text = scrape_until(
        service,
        lambda t: (
            value(t, "ml_leads_scored_total", vertical="health", environment="test")
            >= scored_before + 60
        ),
    )
    assert (
        value(text, "ml_leads_scored_total", vertical="health", environment="test")
        == scored_before + 60
    )
    assert (
        value(
            text,
            "ml_scoring_errors_total",
            error_type="validation_error",
            vertical="health",
            environment="test",
        )
        == errors_before + 3
    )
    assert (
        value(
            text,
            "ml_scoring_errors_total",
            error_type="unknown_vertical",
            vertical="unknown",
            environment="test",
        )
        == unknown_before + 3
    )
    assert "x" * 50 not in text  # raw caller strings never become label values
    count = value(text, "ml_scoring_latency_seconds_count", vertical="health", environment="test")
    fast = value(
        text, "ml_scoring_latency_seconds_bucket", vertical="health", le="0.5", environment="test"
    )
    assert count >= 60 and fast == count  # every request under the 500 ms target
    assert 'le="0.0001"' in text and 'le="0.00025"' in text
    # Holdout figures come from the quality snapshot (worker slot 0, exported by the master).
    text = scrape_until(
        service, lambda t: "ml_model_performance{" in t and 'kind="holdout"' in t, timeout=10
    )
    for metric in ("auc", "precision", "recall"):
        holdout = value(
            text,
            "ml_model_performance",
            vertical="home",
            kind="holdout",
            role="champion",
            metric=metric,
            environment="test",
        )
        assert 0 <= holdout <= 1
    assert value(text, "ml_model_info", vertical="home", version="1.0.0", environment="test") == 1
    for client in clients:
        client.close()
    # Both workers wrote samples: the multiprocess files of two pids exist.
    files = {p.name.rsplit("_", 1)[-1] for p in (service.run_dir / "metrics").glob("counter_*.db")}
    assert len(files) >= 2
