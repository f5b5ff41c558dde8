"""A shadow challenger on a real service: set, scored after each response, compared with
the champion on the same leads, cleared; a broken challenger never touches the answers.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.conftest import service_over_copy
from tests.integration.leads import synthetic_leads
from tests.integration.service import Client, metric_value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shadow_service(store, tmp_path_factory):
    """A service over a copy of the store (one test breaks the challenger's files)."""
    server = service_over_copy(
        store,
        tmp_path_factory.mktemp("shadow"),
        MONITORING_CONFIG=json.dumps({"quality_refresh_seconds": 1}),
    )
    yield server
    server.stop()


def set_shadow(client: Client, token: str, version: str | None) -> Any:
    body = {"vertical": "auto", "version": version}
    return client.request("POST", "/api/v1/models/shadow", body=body, token=token)


def test_a_challenger_is_compared_on_the_same_leads_and_never_answers(shadow_service, store):
    client = shadow_service.client()
    assert set_shadow(client, store.scorer, "1.1.0").status == 403
    reply = set_shadow(client, store.admin, "1.1.0")
    assert reply.status == 200, reply
    assert reply.json["shadow_version"] == "1.1.0" and reply.json["previous"] is None
    # Every worker loads it, moments after the reload it triggers: fresh connections
    # (either worker) until six in a row show it.
    streak, deadline = 0, time.monotonic() + 15
    while streak < 6:
        assert time.monotonic() < deadline, "not every worker loaded the challenger"
        fresh = shadow_service.client()
        listing = fresh.request("GET", "/api/v1/models", token=store.viewer)
        fresh.close()
        auto = next(m for m in listing.json["models"] if m["vertical"] == "auto")
        assert auto["loaded_version"] == "1.0.0"
        streak = streak + 1 if auto.get("shadow_version") == "1.1.0" else 0
    leads = synthetic_leads("auto", 400, 9)
    for start in range(0, 400, 50):
        chunk = [
            {"lead_data": lead, "lead_id": f"shadow-{start + k}"}
            for k, (lead, _) in enumerate(leads[start : start + 50])
        ]
        reply = client.request(
            "POST",
            "/api/v1/score/batch",
            body={"vertical": "auto", "leads": chunk},
            token=store.scorer,
        )
        assert reply.status == 200
        assert reply.json["model_version"] == "1.0.0"  # the champion answers, alone
        assert b"1.1.0" not in reply.raw  # nothing of the challenger reaches the caller
    time.sleep(0.3)  # a tick hands the leads to the store
    outcomes = [
        {"lead_id": f"shadow-{i}", "converted": converted} for i, (_, converted) in enumerate(leads)
    ]
    for start in range(0, 400, 50):
        reply = client.request(
            "POST",
            "/api/v1/feedback/batch",
            body={"outcomes": outcomes[start : start + 50]},
            token=store.scorer,
        )
        assert reply.status == 200 and reply.json["unknown"] == 0, reply
    # Sampled scores reach the store within a second or two (estimated AUC).
    deadline = time.monotonic() + 15
    while True:
        comparison = client.request("GET", "/api/v1/models/auto/compare", token=store.viewer)
        assert comparison.status == 200, comparison
        body = comparison.json
        if body["champion"]["sampled_leads"] and body["challenger"]["sampled_leads"]:
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
    print("COMPARISON", json.dumps(body))
    assert body["outcomes"] == 400
    assert body["champion"]["version"] == "1.0.0" and body["challenger"]["version"] == "1.1.0"
    for side in ("champion", "challenger"):
        auc = body[side]["realized_auc"]
        low, high = body[side]["auc_interval"]
        assert 0.5 < auc < 1 and low < auc < high
        assert 0.5 < body[side]["estimated_auc"] < 1
    agreement = body["agreement"]
    assert 0.5 < agreement["correlation"] <= 1  # two models of the same vertical
    assert 0 <= agreement["decision_agreement"] <= 1
    # The challenger's own figures reach Prometheus, labelled as such.
    deadline = time.monotonic() + 30
    while True:
        try:
            value = metric_value(
                shadow_service.metrics(),
                "ml_model_performance_leads",
                vertical="auto",
                role="challenger",
                kind="realized",
                window="24h",
            )
            if value == 400:
                break
        except KeyError:
            pass
        assert time.monotonic() < deadline, "no challenger figures exported"
        time.sleep(0.3)
    bad = client.request("GET", "/api/v1/models/auto/compare?window_hours=0", token=store.viewer)
    assert bad.status == 422 and bad.json["error"]["field"] == "window_hours"
    # Clearing it: no challenger any more, nothing to compare.
    cleared = set_shadow(client, store.admin, None)
    assert cleared.status == 200 and cleared.json["shadow_version"] is None
    assert cleared.json["previous"] == "1.1.0"
    assert client.request("GET", "/api/v1/models/auto/compare", token=store.viewer).status == 404
    client.close()


@pytest.mark.parametrize(
    ("version", "status", "kind"),
    [
        ("1.0.0", 409, "reload_failed"),  # the champion itself
        ("7.7.7", 409, "reload_failed"),  # not published
        ("latest", 422, "validation_error"),
    ],
)
def test_an_impossible_challenger_is_refused(shadow_service, store, version, status, kind):
    client = shadow_service.client()
    reply = set_shadow(client, store.admin, version)
    client.close()
    assert reply.status == status, reply
    assert reply.json["error"]["type"] == kind


def test_a_broken_challenger_never_touches_the_answers(shadow_service, store):
    client = shadow_service.client()
    assert set_shadow(client, store.admin, "1.1.0").status == 200
    model = shadow_service.models / "auto" / "v1.1.0" / "model.txt"
    original = model.read_bytes()
    model.chmod(0o644)
    model.write_bytes(original.replace(b"tree", b"Tree", 1))
    try:
        # A reload: every worker re-reads its pointers; the challenger now fails its hash.
        reload = client.request("POST", "/api/v1/models/reload", token=store.admin)
        assert reload.status == 200, reload
        lead = synthetic_leads("auto", 1, 3)[0][0]
        for _ in range(20):
            reply = client.request(
                "POST",
                "/api/v1/score",
                body={"vertical": "auto", "lead_data": lead},
                token=store.scorer,
            )
            assert reply.status == 200 and reply.json["model_version"] == "1.0.0"
        deadline = time.monotonic() + 10
        while True:
            try:
                failures = metric_value(
                    shadow_service.metrics(),
                    "ml_shadow_failures_total",
                    vertical="auto",
                    reason="hash",
                )
                break
            except KeyError:
                assert time.monotonic() < deadline, "the refused challenger was not counted"
                time.sleep(0.2)
        assert failures >= 1
        assert "shadow model refused" in shadow_service.log()
    finally:
        model.write_bytes(original)
        set_shadow(client, store.admin, None)
        client.close()
