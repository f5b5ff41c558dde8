"""``POST /api/v1/feedback`` and ``/api/v1/feedback/batch``: outcomes of scored leads.

A lead scored with a ``lead_id`` is remembered by the worker that scored it
(``api.lead_memory``) in the monitoring store shared by all workers, so its outcome may
arrive at any worker: ``{"lead_id", "converted", "outcome_at"?}``. A ``lead_id`` never
scored, or scored longer ago than ``feedback_retention_days``, is answered 404
(``unknown_lead``); a second outcome for a lead 409 (``duplicate_outcome``). A batch
answers 200 with each outcome's status, like a scoring batch isolates bad leads. Every
outcome is counted in ``ml_feedback_outcomes_total{status}``. The role is ``scorer``
(``api.access``): whoever scores leads reports how they turned out.
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import metrics
from api.decoding import decode_unique
from api.errors import ApiError, read_json_body
from api.monitoring_io import StoreIO
from api.schemas import (
    ENCODER,
    FEEDBACK_BATCH_DECODER,
    FEEDBACK_DECODER,
    FeedbackBatchResponse,
    FeedbackRequest,
    FeedbackResponse,
    FeedbackResult,
)
from api.service import Service
from engine.monitoring.store import Outcome, OutcomeStatus

_JSON = "application/json"
# An outcome may be stamped a little ahead of this machine's clock, not more.
CLOCK_SKEW_SECONDS = 300.0
STATUSES: tuple[OutcomeStatus, ...] = ("recorded", "unknown", "duplicate")


def _outcome(request: FeedbackRequest, now: float, field: str) -> Outcome:
    """Check one outcome (printable lead_id, an aware time not in the future)."""
    if not request.lead_id.isprintable():
        raise ApiError(
            422, "validation_error", "must hold printable characters only", f"{field}lead_id"
        )
    at = now
    if request.outcome_at is not None:
        if request.outcome_at.tzinfo is None:
            raise ApiError(
                422, "validation_error", "needs a timezone (e.g. Z)", f"{field}outcome_at"
            )
        at = request.outcome_at.timestamp()
        if at > now + CLOCK_SKEW_SECONDS:
            raise ApiError(422, "validation_error", "is in the future", f"{field}outcome_at")
    return Outcome(request.lead_id, request.converted, at)


def routes(service: Service, io: StoreIO | None) -> list[Route]:
    """Build the feedback routes (``io`` None: the store could not be opened, 503)."""
    limit = service.settings.max_body_bytes
    batch_limit = service.settings.max_batch_body_bytes
    max_batch = service.settings.max_batch
    env = service.settings.environment
    counted = {status: metrics.FEEDBACK_OUTCOMES.labels(status, env) for status in STATUSES}

    def store() -> StoreIO:
        if io is None:
            raise ApiError(503, "feedback_unavailable", "the monitoring store could not be opened")
        return io

    async def record(outcomes: list[Outcome]) -> list[OutcomeStatus]:
        now = time.time()
        handle = store()
        hashed = handle.hash_lead_id  # the store knows leads by this, never by the id
        keyed = [msgspec.structs.replace(o, lead_id=hashed(o.lead_id)) for o in outcomes]
        statuses = await handle.call(lambda s: s.record_outcomes(keyed, now))
        for status in statuses:
            counted[status].inc()
        return statuses

    async def feedback(request: Request) -> Response:
        try:
            body = decode_unique(FEEDBACK_DECODER, await read_json_body(request, limit))
            outcome = _outcome(body, time.time(), "")
            (status,) = await record([outcome])
            if status == "unknown":
                raise ApiError(
                    404,
                    "unknown_lead",
                    "no lead was scored with this lead_id within the retention period",
                    "lead_id",
                )
            if status == "duplicate":
                raise ApiError(
                    409, "duplicate_outcome", "this lead already has an outcome", "lead_id"
                )
        except Exception as exc:
            return service.fail(exc)
        payload = FeedbackResponse(body.lead_id, status)
        return Response(ENCODER.encode(payload), media_type=_JSON)

    async def feedback_batch(request: Request) -> Response:
        try:
            body = decode_unique(FEEDBACK_BATCH_DECODER, await read_json_body(request, batch_limit))
            if len(body.outcomes) > max_batch:
                raise ApiError(
                    413,
                    "payload_too_large",
                    f"{len(body.outcomes)} outcomes; at most {max_batch} per batch",
                    "outcomes",
                )
            if not body.outcomes:
                raise ApiError(
                    422, "validation_error", "at least one outcome is required", "outcomes"
                )
            now = time.time()
            outcomes = [
                _outcome(item, now, f"outcomes[{index}].")
                for index, item in enumerate(body.outcomes)
            ]
            statuses = await record(outcomes)
        except Exception as exc:
            return service.fail(exc)
        results = [
            FeedbackResult(index, item.lead_id, status)
            for index, (item, status) in enumerate(zip(body.outcomes, statuses, strict=True))
        ]
        payload = FeedbackBatchResponse(
            results,
            recorded=statuses.count("recorded"),
            unknown=statuses.count("unknown"),
            duplicate=statuses.count("duplicate"),
        )
        return Response(ENCODER.encode(payload), media_type=_JSON)

    return [
        Route("/api/v1/feedback", feedback, methods=["POST"]),
        Route("/api/v1/feedback/batch", feedback_batch, methods=["POST"]),
    ]
