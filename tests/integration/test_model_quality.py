"""Model quality on a real service: feedback from any worker, realized and estimated
performance and drift exported by the master, a store that survives restarts and
recovers from corruption.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from engine.monitoring.performance import realized
from tests.integration.leads import CONFIG, synthetic_leads
from tests.integration.service import Client, ServiceProcess, metric_value

pytestmark = pytest.mark.slow
MONITORING = json.dumps({"quality_refresh_seconds": 1})


@pytest.fixture(scope="module")
def quality_service(store, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quality")
    env = store.env(MONITORING_CONFIG=MONITORING, MONITORING_DB=str(workdir / "quality.db"))
    server = ServiceProcess(env, workdir)
    server.start()
    yield server
    server.stop()


def scrape_value(service: ServiceProcess, name: str, /, **labels: str) -> float:
    """Poll the master's /metrics until the sample exists (30 s at most); return it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return metric_value(service.metrics(), name, **labels)
        except KeyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def feedback_until_known(client: Client, token: str, lead_id: str, converted: bool) -> Any:
    """Post an outcome, retrying while the lead is not in the store yet (a tick away)."""
    deadline = time.monotonic() + 10
    while True:
        body = {"lead_id": lead_id, "converted": converted}
        reply = client.request("POST", "/api/v1/feedback", body=body, token=token)
        if reply.status != 404 or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)


def test_outcomes_recorded_by_any_worker_once(quality_service, store):
    clients = [quality_service.client() for _ in range(6)]
    lead = synthetic_leads("home", 1, 3)[0][0]
    ids = [f"home-{i}" for i in range(12)]
    for i, lead_id in enumerate(ids):
        body = {"vertical": "home", "lead_data": lead, "lead_id": lead_id}
        reply = clients[i % 6].request("POST", "/api/v1/score", body=body, token=store.scorer)
        assert reply.status == 200, reply
    # Outcomes go through other connections (so, mostly, other workers) than the scores.
    for i, lead_id in enumerate(ids):
        reply = feedback_until_known(clients[(i + 3) % 6], store.scorer, lead_id, i % 2 == 0)
        assert reply.status == 200, reply
        assert reply.json == {"lead_id": lead_id, "status": "recorded"}
    again = clients[0].request(
        "POST", "/api/v1/feedback", body={"lead_id": ids[0], "converted": False}, token=store.scorer
    )
    assert again.status == 409
    assert again.json["error"]["type"] == "duplicate_outcome"
    assert again.json["error"]["field"] == "lead_id"
    unknown = clients[1].request(
        "POST", "/api/v1/feedback", body={"lead_id": "never", "converted": True}, token=store.scorer
    )
    assert unknown.status == 404
    assert unknown.json["error"]["type"] == "unknown_lead"
    text = quality_service.metrics()
    assert metric_value(text, "ml_feedback_outcomes_total", status="recorded") >= 12
    assert metric_value(text, "ml_feedback_outcomes_total", status="duplicate") >= 1
    assert metric_value(text, "ml_feedback_outcomes_total", status="unknown") >= 1
    for client in clients:
        client.close()


def test_a_batch_of_outcomes_reports_each_status(quality_service, store):
    client = quality_service.client()
    lead = synthetic_leads("life", 1, 4)[0][0]
    leads = [{"lead_data": lead, "lead_id": f"life-b{i}"} for i in range(3)]
    reply = client.request(
        "POST",
        "/api/v1/score/batch",
        body={"vertical": "life", "leads": leads},
        token=store.scorer,
    )
    assert reply.status == 200
    assert feedback_until_known(client, store.scorer, "life-b0", True).status == 200
    outcomes = [
        {"lead_id": "life-b0", "converted": True},  # already recorded above
        {"lead_id": "life-b1", "converted": False, "outcome_at": "2026-01-02T03:04:05Z"},
        {"lead_id": "life-b1", "converted": True},  # the same lead twice in one batch
        {"lead_id": "no-such-lead", "converted": True},
        {"lead_id": "life-b2", "converted": True},
    ]
    reply = client.request(
        "POST", "/api/v1/feedback/batch", body={"outcomes": outcomes}, token=store.scorer
    )
    assert reply.status == 200, reply
    statuses = [r["status"] for r in reply.json["results"]]
    assert statuses == ["duplicate", "recorded", "duplicate", "unknown", "recorded"]
    assert (reply.json["recorded"], reply.json["unknown"], reply.json["duplicate"]) == (2, 1, 2)
    client.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "field"),
    [
        ("/api/v1/feedback", {"lead_id": "x"}, 422, "validation_error", "converted"),
        (
            "/api/v1/feedback",
            {"lead_id": "", "converted": True},
            422,
            "validation_error",
            "lead_id",
        ),
        (
            "/api/v1/feedback",
            {"lead_id": "x", "converted": True, "outcome_at": "2026-01-02T03:04:05"},
            422,
            "validation_error",
            "outcome_at",
        ),
        (
            "/api/v1/feedback",
            {"lead_id": "x", "converted": True, "outcome_at": "2999-01-01T00:00:00Z"},
            422,
            "validation_error",
            "outcome_at",
        ),
        (
            "/api/v1/feedback",
            {"lead_id": "a\u0000b", "converted": True},
            422,
            "validation_error",
            "lead_id",
        ),
        (
            "/api/v1/feedback",
            {"lead_id": "x", "converted": "yes"},
            422,
            "validation_error",
            "converted",
        ),
        ("/api/v1/feedback/batch", {"outcomes": []}, 422, "validation_error", "outcomes"),
        (
            "/api/v1/feedback/batch",
            {"outcomes": [{"lead_id": "x", "converted": True}] * 51},
            413,
            "payload_too_large",
            "outcomes",
        ),
        (
            "/api/v1/feedback/batch",
            {
                "outcomes": [
                    {"lead_id": "x", "converted": True, "outcome_at": "2026-01-02T03:04:05"}
                ]
            },
            422,
            "validation_error",
            "outcomes[0].outcome_at",
        ),
    ],
)
def test_bad_feedback_is_answered_precisely(service, store, path, body, status, kind, field):
    client = service.client()
    reply = client.request("POST", path, body=body, token=store.scorer)
    client.close()
    assert reply.status == status, reply
    assert reply.json["error"]["type"] == kind
    assert reply.json["error"]["field"] == field


def test_feedback_needs_the_scorer_role(service, store):
    client = service.client()
    body = {"lead_id": "x", "converted": True}
    assert client.request("POST", "/api/v1/feedback", body=body).status == 401
    assert client.request("POST", "/api/v1/feedback", body=body, token=store.viewer).status == 403
    client.close()


def test_realized_estimated_and_drift_reach_prometheus(quality_service, store):
    leads = synthetic_leads("health", 1400, 41)
    scores: dict[int, float] = {}  # by lead number (the lead_id's suffix)
    truths = [converted for _, converted in leads]

    def send(part: list[tuple[dict[str, Any], bool]], offset: int) -> None:
        client = quality_service.client()
        for start in range(0, len(part), 25):
            chunk = part[start : start + 25]
            body = {
                "vertical": "health",
                "leads": [
                    {"lead_data": lead, "lead_id": f"health-{offset + start + k}"}
                    for k, (lead, _) in enumerate(chunk)
                ],
            }
            reply = client.request("POST", "/api/v1/score/batch", body=body, token=store.scorer)
            assert reply.status == 200, reply
            for k, item in enumerate(reply.json["results"]):
                scores[offset + start + k] = item["result"]["score"]
            time.sleep(0.02)  # spread over ticks: the sampler takes a few leads per tick
        client.close()

    half = len(leads) // 2
    senders = [
        threading.Thread(target=send, args=(leads[:half], 0)),
        threading.Thread(target=send, args=(leads[half:], half)),
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert len(scores) == len(leads)
    # Outcomes of the first 600 leads, in batches.
    client = quality_service.client()
    outcomes = [{"lead_id": f"health-{i}", "converted": truths[i]} for i in range(600)]
    feedback_until_known(client, store.scorer, "health-599", truths[599])
    for start in range(0, 600, 50):
        reply = client.request(
            "POST",
            "/api/v1/feedback/batch",
            body={"outcomes": outcomes[start : start + 50]},
            token=store.scorer,
        )
        assert reply.status == 200
        assert reply.json["unknown"] == 0
    client.close()
    expected = realized(np.array([scores[i] for i in range(600)]), np.array(truths[:600]), 0.6)
    labels = {"vertical": "health", "role": "champion", "window": "24h"}

    def realized_leads() -> float:
        return scrape_value(
            quality_service, "ml_model_performance_leads", kind="realized", **labels
        )

    deadline = time.monotonic() + 30
    while realized_leads() < 600 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert realized_leads() == 600
    auc = scrape_value(
        quality_service, "ml_model_performance", kind="realized", metric="auc", **labels
    )
    assert expected.auc is not None and abs(auc - expected.auc) < 1e-9
    estimated = scrape_value(
        quality_service, "ml_model_performance", kind="estimated", metric="auc", **labels
    )
    assert 0.5 < estimated < 1
    assert (
        scrape_value(quality_service, "ml_model_performance_leads", kind="estimated", **labels) > 0
    )
    holdout = scrape_value(
        quality_service,
        "ml_model_performance",
        kind="holdout",
        metric="auc",
        vertical="health",
        window="holdout",
    )
    assert 0.5 < holdout <= 1
    # GET /api/v1/models shows the same figures (from the latest snapshot).
    client = quality_service.client()
    listing = client.request("GET", "/api/v1/models", token=store.viewer).json
    client.close()
    assert listing["quality_as_of"].endswith("Z")
    health = next(m for m in listing["models"] if m["vertical"] == "health")
    kinds = {(f["kind"], f["window"]) for f in health["performance"]}
    assert {("holdout", "holdout"), ("realized", "24h"), ("estimated", "168h")} <= kinds
    # Drift: once the window holds drift.MIN_LEADS sampled leads (the sampler takes at
    # most SAMPLES_PER_SECOND per worker), every feature and the score.
    traffic_until_drift(quality_service, store.scorer, [lead for lead, _ in leads])
    psi = scrape_value(
        quality_service, "ml_model_drift", vertical="health", feature="__score__", role="champion"
    )
    assert 0 <= psi < 1
    for feature in CONFIG.verticals["health"].feature_config.numerical:
        assert (
            metric_value(
                quality_service.metrics(), "ml_model_drift", vertical="health", feature=feature
            )
            >= 0
        )


def traffic_until_drift(
    service: ServiceProcess,
    token: str,
    leads: list[dict[str, Any]],
    watch: ServiceProcess | None = None,
) -> None:
    """Score ``leads`` round and round (four connections, so both workers take some)
    until the master of ``watch`` (default: the same service) exports the vertical's
    drift (bounded: 60 s)."""
    watched = watch or service
    done = threading.Event()
    deadline = time.monotonic() + 60

    def send(offset: int) -> None:
        client = service.client()
        index = offset
        while not done.is_set() and time.monotonic() < deadline:
            body = {"vertical": "health", "lead_data": leads[index % len(leads)]}
            assert client.request("POST", "/api/v1/score", body=body, token=token).status == 200
            index += 4
        client.close()

    senders = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for sender in senders:
        sender.start()
    try:
        while time.monotonic() < deadline:
            text = watched.metrics()
            if "ml_model_drift{" in text and 'vertical="health"' in text:
                break
            time.sleep(0.5)
    finally:
        done.set()
        for sender in senders:
            sender.join()


def test_the_store_survives_a_restart_and_a_corrupt_file(store, tmp_path):
    database = tmp_path / "monitoring.db"
    database.write_bytes(b"this is not a database" * 100)
    env = store.env(MONITORING_CONFIG=MONITORING, MONITORING_DB=str(database))
    first = ServiceProcess(env, tmp_path)
    first.start()
    try:
        assert "recreated" in first.log()
        assert (
            metric_value(first.metrics(), "ml_monitoring_store_opens_total", outcome="recovered")
            >= 1
        )
        assert list(tmp_path.glob("monitoring.db.corrupt-*")), "the bad file was moved aside"
        client = first.client()
        lead = synthetic_leads("auto", 1, 5)[0][0]
        body = {"vertical": "auto", "lead_data": lead, "lead_id": "kept-across-restart"}
        assert client.request("POST", "/api/v1/score", body=body, token=store.scorer).status == 200
        client.close()
        time.sleep(0.5)  # a tick hands the lead to the store
    finally:
        first.stop()  # graceful: what is buffered is written before the workers exit
    second = ServiceProcess(env, tmp_path)
    second.start()
    try:
        client = second.client()
        reply = client.request(
            "POST",
            "/api/v1/feedback",
            body={"lead_id": "kept-across-restart", "converted": True},
            token=store.scorer,
        )
        client.close()
        assert reply.status == 200, reply
    finally:
        second.stop()
