"""Two instances over one model directory and one real Redis: a reload on A reaches B."""

from __future__ import annotations

import shutil
import time

import pytest

from engine.store import pointer
from engine.store.signing import Keyring
from tests.integration.service import ServiceProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow
LEAD = {"age": 35, "driving_years": 15, "vehicle_make": "Toyota", "usage_type": "commute"}


def served_versions(service: ServiceProcess, token: str, tries: int = 12) -> set[str]:
    """The auto versions answering on fresh connections (either worker may take each)."""
    seen = set()
    for _ in range(tries):
        client = service.client()
        reply = client.request(
            "POST", "/api/v1/score", body={"vertical": "auto", "lead_data": LEAD}, token=token
        )
        client.close()
        assert reply.status == 200, reply
        seen.add(reply.json["model_version"])
    return seen


def test_a_reload_on_one_instance_switches_the_other(store, tmp_path):
    redis = RedisServer(tmp_path).start()
    models = tmp_path / "models"
    shutil.copytree(store.root, models)
    pointer.activate(models, "auto", "1.0.0", Keyring.load(store.model_keys / "trusted"))
    env = store.env(MODEL_PATH=str(models), REDIS_URL=redis.url)
    first = (
        ServiceProcess(env, tmp_path / "a").start() if (tmp_path / "a").mkdir() is None else None
    )
    second = (
        ServiceProcess(env, tmp_path / "b").start() if (tmp_path / "b").mkdir() is None else None
    )
    assert first is not None and second is not None
    try:
        assert served_versions(second, store.scorer) == {"1.0.0"}
        time.sleep(1.0)  # both instances have polled the stamp once (their starting point)
        client = first.client()
        started = time.monotonic()
        reply = client.request(
            "POST", "/api/v1/models/reload", body={"versions": {"auto": "1.1.0"}}, token=store.admin
        )
        client.close()
        assert reply.status == 200, reply
        deadline = started + 2.0  # the bound
        # Twelve fresh connections all answered by the new version: every worker of B
        # (two workers: all twelve on one of them has a chance of 1 in 2,048).
        while served_versions(second, store.scorer, tries=12) != {"1.1.0"}:
            assert time.monotonic() < deadline, f"B did not follow within 2 s:\n{second.log()}"
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        print(f"FLEET RELOAD {elapsed:.3f} s")
        assert elapsed < 2.0
        # And back, the other way: a SIGHUP on B after moving the pointer reaches A.
        pointer.activate(models, "auto", "1.0.0", Keyring.load(store.model_keys / "trusted"))
        second.hup()
        deadline = time.monotonic() + 2.0
        while served_versions(first, store.scorer, tries=12) != {"1.0.0"}:
            assert time.monotonic() < deadline, f"A did not follow B's SIGHUP:\n{first.log()}"
            time.sleep(0.05)
        # Redis down during a reload, then back empty (no save): A publishes what Redis
        # missed once it is back, and B follows from the new starting point.
        redis.kill()
        time.sleep(0.6)
        client = first.client()
        reply = client.request(
            "POST", "/api/v1/models/reload", body={"versions": {"auto": "1.1.0"}}, token=store.admin
        )
        client.close()
        assert reply.status == 200, reply  # reloads stay local while Redis is away
        assert served_versions(first, store.scorer) == {"1.1.0"}
        assert served_versions(second, store.scorer) == {"1.0.0"}
        redis.start()
        deadline = time.monotonic() + 10
        while served_versions(second, store.scorer, tries=6) != {"1.1.0"}:
            assert time.monotonic() < deadline, f"B did not catch up:\n{second.log()}"
            time.sleep(0.1)
    finally:
        first.stop()
        second.stop()
        redis.stop()
