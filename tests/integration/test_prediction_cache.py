"""The prediction cache on a real service: same answers, hits counted, never stale."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, metric_value
from tests.redis_server import RedisServer

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


def test_the_redis_tier_is_shared_by_instances(store, tmp_path):
    """Instance B answers a lead that instance A scored from Redis, bit for bit, and
    ``/ready`` reports Redis without changing the status when it goes away."""
    redis = RedisServer(tmp_path).start()
    secret = tmp_path / "cache.key"
    secret.write_bytes(b"c" * 32)
    config = json.dumps({"enable": True, "backend": "tiered", "secret_file": str(secret)})
    env = store.env(CACHE_CONFIG=config, REDIS_URL=redis.url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServiceProcess(env, tmp_path / "a").start()
    second = ServiceProcess(env, tmp_path / "b").start()
    try:
        body = {"vertical": "auto", "lead_data": LEAD, "explain": True}
        client = first.client()
        scored = client.request("POST", "/api/v1/score", body=body, token=store.scorer)
        assert scored.status == 200
        client.close()
        time.sleep(0.3)  # the write leaves A in the background
        client = second.client()
        again = client.request("POST", "/api/v1/score", body=body, token=store.scorer)
        assert again.json["score"] == scored.json["score"]
        assert again.json["reasons"] == scored.json["reasons"]
        ready = client.request("GET", "/ready")
        assert ready.status == 200 and ready.json["redis"] == "up"
        client.close()
        deadline = time.monotonic() + 5
        while True:
            text = second.metrics()
            try:
                hits = metric_value(text, "ml_cache_redis_operations_total", operation="get",
                                    result="hit")  # fmt: skip
            except KeyError:
                hits = 0
            if hits >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert hits == 1  # B never predicted this lead: A's entry came from Redis
        redis.kill()
        for n in range(12):  # new leads (memory misses) meet the dead Redis: breakers open
            lead = dict(LEAD, age=20 + n)
            client = second.client()
            reply = client.request(
                "POST", "/api/v1/score", body={"vertical": "auto", "lead_data": lead},
                token=store.scorer,
            )  # fmt: skip
            assert reply.status == 200
            client.close()
        seen = set()
        for _ in range(8):
            probe = second.client()
            ready = probe.request("GET", "/ready")
            probe.close()
            assert ready.status == 200 and ready.json["status"] == "ready"
            seen.add(ready.json["redis"])
        assert "down" in seen
    finally:
        first.stop()
        second.stop()
        redis.stop()


def test_a_shared_backend_needs_redis_and_a_secret(store, tmp_path):
    env = store.env(CACHE_CONFIG='{"enable": true, "backend": "redis"}')
    server = ServiceProcess(env, tmp_path)
    with pytest.raises(RuntimeError, match="exited early") as caught:
        server.start(timeout=30)
    assert "needs a secret_file" in str(caught.value)
