"""What counts as a right answer for each kind of request of the mix.

Each ``check_*`` returns None for a right answer, or the failure message locust records.
Messages start with a category that ``loadtests.thresholds`` reads back from the
failure reports: ``connection error:`` (no HTTP answer), ``server error <status>:``
(5xx), ``unexpected status <status>:`` (any other status not expected), ``unexpected
body:`` (the expected status with a wrong body). A 4xx is a right answer only for the
invalid leads, and only with the status and error type their case names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the leads module loads the generator; the report reader needs none of it
    from loadtests.leads import InvalidCase

CONNECTION_ERROR = "connection error"
SERVER_ERROR = "server error"
UNEXPECTED_STATUS = "unexpected status"
UNEXPECTED_BODY = "unexpected body"


def _excerpt(body: bytes) -> str:
    return body[:200].decode(errors="replace")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def wrong_status(status: int, body: bytes, error: BaseException | None = None) -> str:
    """The failure message for a status the request should not have had."""
    if status == 0:
        return f"{CONNECTION_ERROR}: {error!r}"
    if status >= 500:
        return f"{SERVER_ERROR} {status}: {_excerpt(body)}"
    return f"{UNEXPECTED_STATUS} {status}: {_excerpt(body)}"


def _scored(item: Any, vertical: str, lead_id: str | None) -> bool:
    """A scoring result with every field in range, for this vertical and lead."""
    return (
        isinstance(item, dict)
        and isinstance(item.get("score"), float | int)
        and 0.0 <= item["score"] <= 1.0
        and isinstance(item.get("confidence"), float | int)
        and 0.0 <= item["confidence"] <= 1.0
        and isinstance(item.get("price"), float | int)
        and item["price"] > 0
        and isinstance(item.get("model_version"), str)
        and isinstance(item.get("accepted"), bool)
        and item.get("vertical") == vertical
        and item.get("lead_id") == lead_id
    )


def check_score(status: int, body: bytes, vertical: str, lead_id: str | None) -> str | None:
    """A single score: 200 with a full result for this vertical and lead."""
    if status != 200:
        return wrong_status(status, body)
    if not _scored(_json(body), vertical, lead_id):
        return f"{UNEXPECTED_BODY}: {_excerpt(body)}"
    return None


def check_batch(status: int, body: bytes, vertical: str, lead_ids: Sequence[str]) -> str | None:
    """A batch of valid leads: 200, every lead scored, in order, by one version."""
    if status != 200:
        return wrong_status(status, body)
    reply = _json(body)
    results = reply.get("results") if isinstance(reply, dict) else None
    if (
        not isinstance(results, list)
        or reply.get("scored") != len(lead_ids)
        or reply.get("failed") != 0
        or len(results) != len(lead_ids)
    ):
        return f"{UNEXPECTED_BODY}: {_excerpt(body)}"
    version = reply.get("model_version")
    for index, (item, lead_id) in enumerate(zip(results, lead_ids, strict=True)):
        result = item.get("result") if isinstance(item, dict) else None
        if (
            not isinstance(result, dict)
            or item.get("index") != index
            or not _scored(result, vertical, lead_id)
            or result["model_version"] != version
        ):
            return f"{UNEXPECTED_BODY}: lead {index}: {json.dumps(item)[:200]}"
    return None


def check_invalid(status: int, body: bytes, case: InvalidCase) -> str | None:
    """An invalid lead: exactly the case's 4xx status and error type."""
    if status != case.status:
        return wrong_status(status, body)
    reply = _json(body)
    error = reply.get("error") if isinstance(reply, dict) else None
    if not isinstance(error, dict) or error.get("type") != case.error_type:
        return f"{UNEXPECTED_BODY}: expected {case.error_type}: {_excerpt(body)}"
    return None


def lead_lost(status: int, body: bytes) -> bool:
    """A single outcome answered 404 ``unknown_lead`` (the soak's lost leads)."""
    reply = _json(body) if status == 404 else None
    error = reply.get("error") if isinstance(reply, dict) else None
    return isinstance(error, dict) and error.get("type") == "unknown_lead"


def check_feedback(status: int, body: bytes, lead_id: str) -> str | None:
    """A single outcome of a scored lead: 200 ``recorded``."""
    if status != 200:
        return wrong_status(status, body)
    reply = _json(body)
    if not isinstance(reply, dict) or reply != {"lead_id": lead_id, "status": "recorded"}:
        return f"{UNEXPECTED_BODY}: {_excerpt(body)}"
    return None


def check_feedback_batch(
    status: int, body: bytes, lead_ids: Sequence[str], lost_ok: bool
) -> tuple[str | None, int]:
    """A batch of outcomes: 200, each ``recorded`` (or ``unknown`` when ``lost_ok``).

    Returns:
        The failure message (None if right) and how many outcomes were of lost leads.
    """
    if status != 200:
        return wrong_status(status, body), 0
    reply = _json(body)
    results = reply.get("results") if isinstance(reply, dict) else None
    if not isinstance(results, list) or len(results) != len(lead_ids):
        return f"{UNEXPECTED_BODY}: {_excerpt(body)}", 0
    allowed = {"recorded", "unknown"} if lost_ok else {"recorded"}
    lost = 0
    for index, (item, lead_id) in enumerate(zip(results, lead_ids, strict=True)):
        if (
            not isinstance(item, dict)
            or item.get("index") != index
            or item.get("lead_id") != lead_id
            or item.get("status") not in allowed
        ):
            return f"{UNEXPECTED_BODY}: outcome {index}: {json.dumps(item)[:200]}", 0
        lost += item["status"] == "unknown"
    return None, lost


def check_reload(status: int, body: bytes) -> str | None:
    """An admin reload: 200 ``success`` once every worker switched (202 is a failure)."""
    if status != 200:
        return wrong_status(status, body)
    reply = _json(body)
    if not isinstance(reply, dict) or reply.get("status") != "success" or not reply.get("workers"):
        return f"{UNEXPECTED_BODY}: {_excerpt(body)}"
    return None
