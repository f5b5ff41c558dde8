"""The prediction cache on a real service: same answers, hits counted, never stale."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, metric_value

pytestmark = pytest.mark.slow
LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())


def test_repeated_leads_hit_and_answers_do_not_change(store, tmp_path):
    server = ServiceProcess(
        store.env(CACHE_CONFIG='{"enable": true, "ttl": 600, "max_size": 100}'), tmp_path
    )
    server.start()
    try:
        client = server.client()
        body = {"vertical": "auto", "lead_data": LEAD, "explain": True}
        first = client.request("POST", "/api/v1/score", body=body, token=store.scorer)
        assert first.status == 200
        for _ in range(20):
            again = client.request("POST", "/api/v1/score", body=body, token=store.scorer)
            assert again.json["score"] == first.json["score"]
            assert again.json["reasons"] == first.json["reasons"]
        client.close()
        deadline = time.monotonic() + 5
        while True:
            text = server.metrics()
            try:
                hits = metric_value(text, "ml_cache_lookups_total", vertical="auto", result="hit")
            except KeyError:
                hits = 0
            if hits >= 19 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # One miss per worker at most, the rest hits (both workers may have served).
        assert hits >= 19
        assert metric_value(text, "ml_cache_lookups_total", vertical="auto", result="miss") <= 2
        assert metric_value(text, "ml_cache_entries", tier="memory") >= 1
    finally:
        server.stop()


def test_a_bad_cache_config_stops_the_service_naming_it(store, tmp_path):
    server = ServiceProcess(store.env(CACHE_CONFIG='{"backend": "disk"}'), tmp_path)
    with pytest.raises(RuntimeError, match="exited early") as caught:
        server.start(timeout=30)
    assert "CACHE_CONFIG: backend must be one of" in str(caught.value)
