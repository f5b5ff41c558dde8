"""State shared through Redis by two independent instances (two gunicorn masters, one
model directory, one real Redis): demand counted over the fleet, and feedback and drift
in the Redis monitoring store."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.leads import synthetic_leads
from tests.integration.service import ServiceProcess, metric_value
from tests.integration.test_model_quality import feedback_until_known, traffic_until_drift
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow


def demand_factor(service: ServiceProcess, token: str, lead: dict) -> float:
    client = service.client()
    reply = client.request(
        "POST", "/api/v1/score", body={"vertical": "auto", "lead_data": lead}, token=token
    )
    client.close()
    assert reply.status == 200, reply
    return float(reply.json["market_factors"]["demand"])


def test_demand_is_counted_over_the_fleet(store, tmp_path):
    """Leads scored on A raise the demand factor B prices with; without Redis, B would see
    only its own (the demo's auto baseline is 120 leads a minute over 5 minutes)."""
    redis = RedisServer(tmp_path).start()
    env = store.env(REDIS_URL=redis.url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServiceProcess(env, tmp_path / "a").start()
    second = ServiceProcess(env, tmp_path / "b").start()
    leads = [lead for lead, _ in synthetic_leads("auto", 400, seed=5)]
    try:
        quiet = demand_factor(second, store.scorer, leads[0])
        assert quiet == pytest.approx(0.8, abs=0.01)  # the floor: no demand yet
        client = first.client()
        for _ in range(2):  # 800 leads on A: 160 a minute over the 5-minute window
            reply = client.request(
                "POST",
                "/api/v1/score/batch",
                body={"vertical": "auto", "leads": [{"lead_data": lead} for lead in leads]},
                token=store.scorer,
            )
            assert reply.status == 200 and reply.json["scored"] == len(leads)
        client.close()

        # Every worker of A pushes within a second; every worker of B reads within one.
        def factor(leads: int) -> float:
            return 1 + 0.5 * (leads / 5 / 120 - 1)  # the demo's auto pricing

        own = 1  # leads B scored itself: they count too
        deadline = time.monotonic() + 5
        while True:
            factors = {demand_factor(second, store.scorer, leads[1]) for _ in range(6)}
            own += 6
            if min(factors) >= factor(800) - 0.005 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert min(factors) >= factor(800) - 0.005, f"B priced with {factors}\n{second.log()}"
        assert max(factors) <= factor(800 + own) + 0.005
    finally:
        first.stop()
        second.stop()
        redis.stop()


def test_feedback_and_drift_are_shared_by_the_fleet(store, tmp_path):
    """A lead scored on A gets its outcome through B; drift of A's traffic is exported by
    B, which scored nothing; with Redis gone, feedback answers 503 and scoring goes on."""
    redis = RedisServer(tmp_path).start()
    key = tmp_path / "lead-id.key"
    key.write_bytes(b"k" * 32)
    env = store.env(
        REDIS_URL=redis.url,
        MONITORING_KEY=str(key),
        MONITORING_CONFIG=json.dumps({"store": "redis", "quality_refresh_seconds": 1}),
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServiceProcess(env, tmp_path / "a").start()
    second = ServiceProcess(env, tmp_path / "b").start()
    leads = [lead for lead, _ in synthetic_leads("health", 300, seed=9)]
    try:
        client = first.client()
        body = {"vertical": "health", "lead_data": leads[0], "lead_id": "fleet-1"}
        assert client.request("POST", "/api/v1/score", body=body, token=store.scorer).status == 200
        client.close()
        other = second.client()
        reply = feedback_until_known(other, store.scorer, "fleet-1", True)
        assert reply.status == 200 and reply.json["status"] == "recorded", reply
        again = other.request(
            "POST", "/api/v1/feedback", body={"lead_id": "fleet-1", "converted": False},
            token=store.scorer,
        )  # fmt: skip
        assert again.status == 409  # one outcome per lead, whichever replica hears it
        other.close()
        traffic_until_drift(first, store.scorer, leads, watch=second)
        assert metric_value(
            second.metrics(), "ml_model_drift", vertical="health", feature="__score__",
            role="champion",
        ) >= 0  # fmt: skip
        redis.kill()
        client = second.client()
        body = {"vertical": "health", "lead_data": leads[1], "lead_id": "fleet-2"}
        assert client.request("POST", "/api/v1/score", body=body, token=store.scorer).status == 200
        refused = client.request(
            "POST", "/api/v1/feedback", body={"lead_id": "fleet-1", "converted": True},
            token=store.scorer,
        )  # fmt: skip
        assert refused.status == 503, refused
        assert refused.json["error"]["type"] == "feedback_unavailable"
        client.close()
        # Back (empty): what was remembered meanwhile was kept and is written again.
        redis.start()
        client = second.client()
        reply = feedback_until_known(client, store.scorer, "fleet-2", False)
        client.close()
        assert reply.status == 200 and reply.json["status"] == "recorded", reply
        assert "Traceback" not in second.log()
    finally:
        first.stop()
        second.stop()
        redis.stop()
