"""Every endpoint and every client-error class, against the real gunicorn service."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.auth import issue_token
from engine.store.signing import SigningKey, generate_keypair

LEAD = json.loads((Path(__file__).parents[2] / "examples" / "leads" / "auto.json").read_text())


@pytest.fixture
def client(service):
    client = service.client()
    yield client
    client.close()


def test_health_and_ready(client):
    assert client.request("GET", "/health").json == {"status": "ok"}
    head = client.request("HEAD", "/health")  # a head with no body: still answered
    assert head.status == 200 and head.raw == b""
    assert client.request("GET", "/health").json == {"status": "ok"}  # same connection
    ready = client.request("GET", "/ready")
    assert ready.status == 200 and ready.json["status"] == "ready"
    assert set(ready.json["versions"]) == {"auto", "home", "health", "life"}


def test_score_returns_every_field(client, store):
    reply = client.request(
        "POST",
        "/api/v1/score",
        token=store.scorer,
        body={"vertical": "auto", "lead_data": LEAD, "lead_id": "L-1"},
    )
    assert reply.status == 200, reply
    body = reply.json
    assert set(body) == {
        "score",
        "confidence",
        "price",
        "market_factors",
        "model_version",
        "accepted",
        "currency",
        "vertical",
        "lead_id",
    }
    assert 0 < body["score"] < 1 and 0 <= body["confidence"] <= 1 and body["price"] > 0
    assert body["lead_id"] == "L-1" and body["vertical"] == "auto"
    assert body["accepted"] == (body["score"] >= 0.65)
    assert reply.headers["content-type"] == "application/json"


def test_explain_adds_reasons(client, store):
    reply = client.request(
        "POST",
        "/api/v1/score",
        token=store.scorer,
        body={"vertical": "auto", "lead_data": LEAD, "explain": True},
    )
    reasons = reply.json["reasons"]
    assert 1 <= len(reasons) <= 3 and {r["direction"] for r in reasons} <= {"up", "down"}


def test_a_numeric_category_scores_like_its_csv_text(client, store):
    # The training CSV holds categories as text; a JSON client may send a number.
    replies = [
        client.request(
            "POST",
            "/api/v1/score",
            token=store.scorer,
            body={"vertical": "auto", "lead_data": {**LEAD, "usage_type": usage}},
        )
        for usage in ("commute", 7, "7.0", 7.0)
    ]
    assert [r.status for r in replies] == [200] * 4, replies
    # An unseen numeric category is missing, exactly like the unseen text "7.0".
    scored = [(r.json["score"], r.json["confidence"]) for r in replies]
    assert scored[1] == scored[2] == scored[3]
    assert replies[1].json["confidence"] < replies[0].json["confidence"]


def test_admin_may_score_too(client, store):
    reply = client.request(
        "POST",
        "/api/v1/score",
        token=store.admin,
        body={"vertical": "life", "lead_data": {"age": 40}},
    )
    assert reply.status == 200 and reply.json["vertical"] == "life"


def test_batch_isolates_bad_leads(client, store):
    leads = [
        {"lead_data": LEAD, "lead_id": "a"},
        {"lead_data": {"age": "x"}, "lead_id": "b"},
        {"lead_data": {**LEAD, "age": 40}},
    ]
    reply = client.request(
        "POST", "/api/v1/score/batch", token=store.scorer, body={"vertical": "auto", "leads": leads}
    )
    assert reply.status == 200, reply
    body = reply.json
    assert (body["scored"], body["failed"]) == (2, 1)
    first, second, third = body["results"]
    assert first["index"] == 0 and first["lead_id"] == "a" and "score" in first["result"]
    assert second["error"] == {
        "type": "validation_error",
        "message": "must be a number, not a string",
        "field": "leads[1].lead_data.age",
    }
    assert third["result"]["model_version"] == body["model_version"]
    single = client.request(
        "POST", "/api/v1/score", token=store.scorer, body={"vertical": "auto", "lead_data": LEAD}
    ).json
    assert first["result"]["score"] == single["score"]


def test_models_listing(client, store):
    reply = client.request("GET", "/api/v1/models", token=store.viewer)
    assert reply.status == 200
    models = {m["vertical"]: m for m in reply.json["models"]}
    assert set(models) == {"auto", "home", "health", "life"}
    assert models["auto"]["available_versions"] == ["1.0.0", "1.1.0"]
    assert models["auto"]["loaded_version"] == models["auto"]["active_version"]
    assert 0.5 < models["home"]["metrics"]["auc"] <= 1
    assert len(reply.json["workers"]) == 2


def test_openapi_document(client):
    reply = client.request("GET", "/docs/api")
    assert reply.status == 200
    doc = reply.json
    assert doc["openapi"].startswith("3.1")
    assert {
        "/api/v1/score",
        "/api/v1/score/batch",
        "/api/v1/models",
        "/api/v1/models/reload",
        "/api/v1/models/rollback",
        "/health",
        "/ready",
    } <= set(doc["paths"])
    assert {"ScoreRequest", "ScoreResponse", "ErrorResponse"} <= set(doc["components"]["schemas"])


def score(client, token, body=None, raw=None, headers=None):
    return client.request("POST", "/api/v1/score", body=body, raw=raw, token=token, headers=headers)


@pytest.mark.parametrize(
    ("send", "status", "kind", "field"),
    [
        (
            dict(raw=b'{"vertical": "auto", ', headers={"Content-Type": "application/json"}),
            400,
            "invalid_json",
            None,
        ),
        (
            dict(
                raw=b"vertical=auto", headers={"Content-Type": "application/x-www-form-urlencoded"}
            ),
            415,
            "unsupported_media_type",
            None,
        ),
        (dict(raw=b'{"vertical": "auto"}', headers={}), 415, "unsupported_media_type", None),
        (
            dict(
                raw=b'{"lead_data": {"a": "' + b"x" * 9000 + b'"}}',
                headers={"Content-Type": "application/json"},
            ),
            413,
            "payload_too_large",
            None,
        ),
        (dict(body={"lead_data": {}}), 422, "validation_error", "vertical"),
        (dict(body={"vertical": "auto", "lead_data": []}), 422, "validation_error", "lead_data"),
        (
            dict(body={"vertical": "auto", "lead_data": {}, "explian": True}),
            422,
            "validation_error",
            "explian",
        ),
        (dict(body={"vertical": 7, "lead_data": {}}), 422, "validation_error", "vertical"),
        (
            dict(body={"vertical": "auto", "lead_data": {**LEAD, "age": 150}}),
            422,
            "validation_error",
            "lead_data.age",
        ),
        (
            dict(body={"vertical": "auto", "lead_data": {**LEAD, "vehicle_make": {"name": 3}}}),
            422,
            "validation_error",
            "lead_data.vehicle_make",
        ),
        (
            dict(body={"vertical": "auto", "lead_data": {"driving_years": 3}}),
            422,
            "validation_error",
            "lead_data.age",
        ),
        (dict(body={"vertical": "boat", "lead_data": {}}), 404, "unknown_vertical", "vertical"),
    ],
)
def test_client_mistakes_are_answered_precisely(client, store, send, status, kind, field):
    reply = score(client, store.scorer, **send)
    assert reply.status == status, reply
    assert reply.json["error"]["type"] == kind
    assert reply.json["error"].get("field") == field
    assert reply.json["error"]["message"]


def test_authentication_and_roles(client, store, tmp_path):
    body = {"vertical": "auto", "lead_data": LEAD}
    missing = score(client, None, body)
    assert missing.status == 401 and missing.headers.get("www-authenticate") == "Bearer"
    assert "missing Authorization" in missing.json["error"]["message"]
    assert score(client, None, body, headers={"Authorization": "Basic abc"}).status == 401
    garbage = score(client, "not.a.jwt", body)
    assert garbage.status == 401 and garbage.json["error"]["type"] == "unauthorized"
    expired = score(client, store.expired, body)
    assert expired.status == 401 and "expired" in expired.json["error"]["message"]
    generate_keypair(tmp_path, private_name="other.key")
    stranger = issue_token(SigningKey.load(tmp_path / "other.key"), "x", "admin", 600)
    unknown = score(client, stranger, body)
    assert unknown.status == 401 and "unknown key" in unknown.json["error"]["message"]
    forbidden = client.request("POST", "/api/v1/models/reload", token=store.scorer, body={})
    assert forbidden.status == 403 and forbidden.json["error"]["type"] == "forbidden"


def test_batch_limits(client, store):
    too_many = {"vertical": "auto", "leads": [{"lead_data": {"age": 30}}] * 51}
    reply = client.request("POST", "/api/v1/score/batch", token=store.scorer, body=too_many)
    assert reply.status == 413 and reply.json["error"]["field"] == "leads"
    empty = client.request(
        "POST", "/api/v1/score/batch", token=store.scorer, body={"vertical": "auto", "leads": []}
    )
    assert empty.status == 422 and empty.json["error"]["field"] == "leads"


def test_unknown_route_and_method(client):
    missing = client.request("GET", "/api/v1/nope")
    assert missing.status == 404 and missing.json["error"]["type"] == "not_found"
    wrong = client.request("GET", "/api/v1/score")
    assert wrong.status == 405 and wrong.json["error"]["type"] == "method_not_allowed"


def test_no_mistake_crashes_a_worker(service, store):
    client = service.client()
    before = {
        w["pid"]
        for w in client.request("GET", "/api/v1/models", token=store.viewer).json["workers"]
    }
    for raw in (
        b"",
        b"null",
        b"[]",
        b"{}",
        b"\xff\xfe",
        b'{"vertical": null}',
        b'{"vertical": "auto", "lead_data": {"age": 1e400}}',
        b'{"vertical": "auto", "lead_data": {"age": {"$gt": 1}}}',
    ):
        reply = score(client, store.scorer, raw=raw, headers={"Content-Type": "application/json"})
        assert 400 <= reply.status < 500, (raw, reply)
    after = {
        w["pid"]
        for w in client.request("GET", "/api/v1/models", token=store.viewer).json["workers"]
    }
    assert before == after
    assert "Traceback" not in service.log()
