"""``POST /api/v1/score`` and ``POST /api/v1/score/batch``: the hot path."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api import metrics
from api.errors import ApiError, read_json_body
from api.schemas import (
    BATCH_DECODER,
    ENCODER,
    SCORE_DECODER,
    BatchItem,
    BatchResponse,
    ErrorDetail,
    ScoreResponse,
)
from api.service import Service
from engine.scoring.result import LeadFailure, ScoreResult

_JSON = "application/json"


def _response(result: ScoreResult, vertical: str, lead_id: str | None) -> ScoreResponse:
    return ScoreResponse(
        score=result.score,
        confidence=result.confidence,
        price=result.price,
        market_factors=result.market_factors,
        model_version=result.model_version,
        accepted=result.accepted,
        currency=result.currency,
        vertical=vertical,
        lead_id=lead_id,
        reasons=result.reasons,
    )


def routes(service: Service) -> list[Route]:
    """Build the scoring routes over ``service``."""
    env = service.settings.environment
    limit = service.settings.max_body_bytes
    max_batch = service.settings.max_batch
    authenticate = service.auth.authenticate
    scorer = service.runtime.scorer
    latency = {
        v: metrics.BufferedHistogram(metrics.SCORING_LATENCY.labels(v, env))
        for v in (*service.verticals, "unknown")
    }
    scored = {
        v: metrics.BufferedCounter(metrics.LEADS_SCORED.labels(v, env)) for v in service.verticals
    }
    service.runtime.tick_hooks.extend(b.flush for b in latency.values())
    service.runtime.tick_hooks.extend(b.flush for b in scored.values())
    clock = time.perf_counter

    async def score(request: Request) -> Response:
        started = clock()
        vertical = "unknown"
        try:
            authenticate(request.headers.get("authorization"), "scorer")
            body = SCORE_DECODER.decode(await read_json_body(request, limit))
            if body.vertical in latency:
                vertical = body.vertical
            result = scorer.score(body.vertical, body.lead_data, explain=body.explain)
        except Exception as exc:
            return service.fail(exc, vertical)
        response = Response(
            ENCODER.encode(_response(result, vertical, body.lead_id)), media_type=_JSON
        )
        latency[vertical].observe(clock() - started)
        scored[vertical].inc()
        return response

    async def score_batch(request: Request) -> Response:
        started = clock()
        vertical = "unknown"
        try:
            authenticate(request.headers.get("authorization"), "scorer")
            body = BATCH_DECODER.decode(await read_json_body(request, limit))
            if body.vertical in latency:
                vertical = body.vertical
            if len(body.leads) > max_batch:
                raise ApiError(
                    413,
                    "payload_too_large",
                    f"{len(body.leads)} leads; at most {max_batch} per batch",
                    "leads",
                )
            if not body.leads:
                raise ApiError(422, "validation_error", "at least one lead is required", "leads")
            results = scorer.score_batch(
                body.vertical, [lead.lead_data for lead in body.leads], explain=body.explain
            )
            version = scorer.model(body.vertical).version
        except Exception as exc:
            return service.fail(exc, vertical)
        items: list[BatchItem] = []
        failed = 0
        for index, (lead, result) in enumerate(zip(body.leads, results, strict=True)):
            if isinstance(result, LeadFailure):
                failed += 1
                error = ErrorDetail(
                    "validation_error", result.reason, f"leads[{index}].{result.field}"
                )
                items.append(BatchItem(index, lead.lead_id, error=error))
            else:
                scored_lead = _response(result, vertical, lead.lead_id)
                items.append(BatchItem(index, lead.lead_id, result=scored_lead))
        if failed:
            metrics.SCORING_ERRORS.labels("validation_error", vertical, env).inc(failed)
        payload = BatchResponse(vertical, version, items, len(items) - failed, failed)
        response = Response(ENCODER.encode(payload), media_type=_JSON)
        latency[vertical].observe(clock() - started)
        scored[vertical].inc(len(items) - failed)
        return response

    return [
        Route("/api/v1/score", score, methods=["POST"]),
        Route("/api/v1/score/batch", score_batch, methods=["POST"]),
    ]
