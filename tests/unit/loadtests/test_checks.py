"""What counts as a right answer, request kind by request kind."""

from __future__ import annotations

import json

from loadtests import checks
from loadtests.leads import INVALID_CASES

RESULT = {
    "score": 0.42,
    "confidence": 0.8,
    "price": 31.5,
    "market_factors": {"demand": 1.0},
    "model_version": "1.0.0",
    "accepted": False,
    "currency": "USD",
    "vertical": "auto",
    "lead_id": "L-1",
}


def body(value) -> bytes:
    return json.dumps(value).encode()


def failed(message: str | None) -> str:
    """The failure message of a wrong answer (a right one fails the test)."""
    assert message is not None, "a wrong answer passed"
    return message


def test_a_full_score_passes_and_each_wrong_field_fails():
    assert checks.check_score(200, body(RESULT), "auto", "L-1") is None
    wrong = [
        {**RESULT, "score": 1.5},
        {**RESULT, "confidence": -0.1},
        {**RESULT, "price": 0},
        {**RESULT, "accepted": "no"},
        {**RESULT, "vertical": "home"},
        {**RESULT, "lead_id": "L-2"},
        {k: v for k, v in RESULT.items() if k != "model_version"},
    ]
    for reply in wrong:
        assert failed(checks.check_score(200, body(reply), "auto", "L-1")).startswith(
            "unexpected body:"
        )
    assert failed(checks.check_score(200, b"not json", "auto", "L-1")).startswith(
        "unexpected body:"
    )


def test_statuses_are_categorised():
    assert failed(checks.check_score(503, b'{"error": {}}', "auto", "L-1")).startswith(
        "server error 503:"
    )
    assert failed(checks.check_score(401, b"{}", "auto", "L-1")).startswith(
        "unexpected status 401:"
    )
    message = checks.wrong_status(0, b"", ConnectionResetError(104, "reset"))
    assert message == "connection error: ConnectionResetError(104, 'reset')"


def test_a_batch_passes_only_with_every_lead_scored_in_order_by_one_version():
    ids = ["a", "b"]
    items = [
        {"index": i, "lead_id": lead_id, "result": {**RESULT, "lead_id": lead_id}}
        for i, lead_id in enumerate(ids)
    ]
    reply = {
        "vertical": "auto",
        "model_version": "1.0.0",
        "results": items,
        "scored": 2,
        "failed": 0,
    }
    assert checks.check_batch(200, body(reply), "auto", ids) is None
    assert checks.check_batch(200, body(reply), "auto", ["b", "a"]) is not None
    one_failed = {**reply, "scored": 1, "failed": 1}
    assert checks.check_batch(200, body(one_failed), "auto", ids) is not None
    mixed = {
        **reply,
        "results": [
            items[0],
            {**items[1], "result": {**RESULT, "lead_id": "b", "model_version": "1.1.0"}},
        ],
    }
    assert "lead 1" in failed(checks.check_batch(200, body(mixed), "auto", ids))
    assert failed(checks.check_batch(500, b"", "auto", ids)).startswith("server error 500")


def test_an_invalid_lead_passes_only_with_its_status_and_error_type():
    case = next(c for c in INVALID_CASES if c.name == "unknown vertical")
    refused = body({"error": {"type": "unknown_vertical", "message": "...", "field": "vertical"}})
    assert checks.check_invalid(404, refused, case) is None
    assert failed(checks.check_invalid(422, refused, case)).startswith("unexpected status 422")
    other = body({"error": {"type": "not_found", "message": "..."}})
    assert failed(checks.check_invalid(404, other, case)).startswith("unexpected body: expected")
    assert failed(checks.check_invalid(200, body(RESULT), case)).startswith("unexpected status 200")
    assert failed(checks.check_invalid(500, b"", case)).startswith("server error 500")


def test_feedback():
    assert checks.check_feedback(200, body({"lead_id": "x", "status": "recorded"}), "x") is None
    assert checks.check_feedback(200, body({"lead_id": "y", "status": "recorded"}), "x")
    assert failed(checks.check_feedback(409, b"{}", "x")).startswith("unexpected status 409")
    unknown = body({"error": {"type": "unknown_lead", "message": "..."}})
    assert checks.lead_lost(404, unknown)
    assert not checks.lead_lost(404, body({"error": {"type": "not_found"}}))
    assert not checks.lead_lost(200, unknown)


def test_feedback_batch_counts_lost_leads_only_when_allowed():
    results = [
        {"index": 0, "lead_id": "a", "status": "recorded"},
        {"index": 1, "lead_id": "b", "status": "unknown"},
    ]
    reply = body({"results": results, "recorded": 1, "unknown": 1, "duplicate": 0})
    assert checks.check_feedback_batch(200, reply, ["a", "b"], lost_ok=True) == (None, 1)
    message, lost = checks.check_feedback_batch(200, reply, ["a", "b"], lost_ok=False)
    assert failed(message).startswith("unexpected body: outcome 1") and lost == 0
    duplicate = body({"results": [{**results[0], "status": "duplicate"}]})
    assert checks.check_feedback_batch(200, duplicate, ["a"], lost_ok=True)[0] is not None


def test_reload_must_switch_every_worker():
    done = {"status": "success", "versions": {}, "generation": 3, "workers": [{"slot": 0}]}
    assert checks.check_reload(200, body(done)) is None
    pending = {**done, "status": "pending"}
    assert failed(checks.check_reload(202, body(pending))).startswith("unexpected status 202")
    assert failed(checks.check_reload(409, b"{}")).startswith("unexpected status 409")
