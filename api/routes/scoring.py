"""``POST /api/v1/score`` and ``POST /api/v1/score/batch``: the hot path, in raw ASGI.

These two handlers speak ASGI directly (headers read once from the scope, the body from
``receive``, the response as two ``send`` messages): Starlette's ``Request``/``Response``
objects and middleware layers cost more per request than validating, scoring and pricing
a lead. They are registered as ordinary Starlette routes (so methods, 404/405 and the
OpenAPI description behave as for every route), and ``api.gateway.Gateway`` in front of
the app authorises the caller (role ``scorer``, from ``api.access``) and dispatches the
POSTs to them without walking the middleware stack.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api import metrics
from api.decoding import decode_batch, decode_score
from api.errors import ApiError, error_body, read_body
from api.lead_memory import LeadMemory
from api.quality_sampler import QualitySampler
from api.request_metrics import RequestRecorder
from api.schemas import (
    ENCODER,
    BatchItem,
    BatchResponse,
    ErrorDetail,
    ScoreResponse,
)
from api.scoring_metrics import VerticalMetrics
from api.service import Service
from api.shadow import ShadowModels
from engine.scoring.result import LeadFailure, ScoreResult

# A handler gets the request's start (the gateway's clock) and returns the status it
# answered with; it records its own 200s, the gateway every other outcome.
Handler = Callable[[Scope, Receive, Send, float], Awaitable[int]]
SCORE = "/api/v1/score"
SCORE_BATCH = "/api/v1/score/batch"
_JSON = b"application/json"
_CLOSE = [(b"connection", b"close")]


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


def _request_headers(scope: Scope) -> tuple[str | None, str | None]:
    """Return (content-type, content-length) from the ASGI scope."""
    content_type = content_length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
    return content_type, content_length


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def handlers(
    service: Service,
    requests: RequestRecorder,
    memory: LeadMemory | None = None,
    sampler: QualitySampler | None = None,
    shadows: ShadowModels | None = None,
) -> dict[str, Handler]:
    """Build the two scoring handlers over ``service``, by path.

    A request answered 200 is timed here, from the gateway's start (``started``) to the
    response handed over: its vertical's latency and the route's 2xx duration in one
    observation (``api.scoring_metrics``). The gateway times every other outcome. A lead
    scored with a ``lead_id`` is remembered for its outcome in ``memory``
    (``api.lead_memory``), and a sample of scored leads goes to ``sampler`` for drift and
    estimated performance (``api.quality_sampler``), when the monitoring store is open.
    After the response, a vertical with a shadow challenger (``api.shadow``) has the same
    lead scored by it; the caller never sees that score.
    """
    env = service.settings.environment
    limit = service.settings.max_body_bytes
    # The batch route's own limit follows MAX_BATCH (MAX_BATCH_BODY_BYTES, api.settings).
    batch_limit = service.settings.max_batch_body_bytes
    max_batch = service.settings.max_batch
    scorer = service.runtime.scorer
    remote = scorer.remote  # the Redis tier of the prediction cache, when configured
    single_ok = requests.histogram(SCORE, 200)
    batch_ok = requests.histogram(SCORE_BATCH, 200)
    stats = {v: VerticalMetrics(v, env, single_ok, batch_ok) for v in service.verticals}
    slow = requests.slow_seconds
    # Buffered on the request path, written to the shared files at each watcher tick.
    service.runtime.tick_hooks.extend(m.flush for m in stats.values())
    clock = time.perf_counter
    known = service.verticals
    keep = service.archive.keep if service.archive is not None else None  # opt-in lead archive

    async def fail(send: Send, exc: Exception, vertical: str) -> int:
        error = service.reject(exc, vertical)
        body = error_body(error.type, error.message, error.field)
        extra = _CLOSE if error.closes_connection else None
        await _send_json(send, error.status, body, extra)
        return error.status

    async def checked_body(scope: Scope, receive: Receive, limit: int = limit) -> bytes:
        """Return the checked JSON body (at most ``limit``); the gateway authorised it."""
        content_type, content_length = _request_headers(scope)
        return await read_body(receive, content_type, content_length, limit)

    # Filled and emptied in place by ShadowModels: a cheap "any challenger?" test.
    shadow_models = shadows.models if shadows is not None else {}

    def challenge(vertical: str, lead: Mapping[str, Any]) -> tuple[str, float] | None:
        """Score a lead with the vertical's shadow challenger, after the response."""
        assert shadows is not None
        shadow = shadows.score(vertical, lead)
        if shadow is not None and sampler is not None:
            sampler.take_challenger(vertical, lead, shadow[1], shadow[0])
        return shadow

    async def score(scope: Scope, receive: Receive, send: Send, started: float) -> int:
        vertical = "unknown"
        try:
            body = decode_score(await checked_body(scope, receive))
            vertical = metrics.vertical_label(body.vertical, known)
            if remote is None:
                result = scorer.score(body.vertical, body.lead_data, explain=body.explain)
            else:  # a Redis cache tier: the lookup is awaited
                result = await scorer.score_async(
                    body.vertical, body.lead_data, explain=body.explain
                )
            if sampler is not None:
                sampler.take(vertical, body.lead_data, result.score, result.model_version)
            payload = ENCODER.encode(_response(result, vertical, body.lead_id))
        except Exception as exc:  # every failure is answered and counted
            return await fail(send, exc, vertical)
        await _send_json(send, 200, payload)
        elapsed = clock() - started
        stats[vertical].single(elapsed, result)
        if elapsed > slow:
            requests.slow_request(SCORE, 200, elapsed)
        shadow = challenge(vertical, body.lead_data) if shadow_models else None
        if body.lead_id is not None and memory is not None:
            memory.keep(body.lead_id, vertical, result, shadow)
        if keep is not None:
            keep(body.vertical, body.lead_data, body.lead_id, result)
        return 200

    async def score_batch(scope: Scope, receive: Receive, send: Send, started: float) -> int:
        vertical = "unknown"
        try:
            body = decode_batch(await checked_body(scope, receive, batch_limit))
            vertical = metrics.vertical_label(body.vertical, known)
            if len(body.leads) > max_batch:
                raise ApiError(
                    413,
                    "payload_too_large",
                    f"{len(body.leads)} leads; at most {max_batch} per batch",
                    "leads",
                )
            if not body.leads:
                raise ApiError(422, "validation_error", "at least one lead is required", "leads")
            version = scorer.model(body.vertical).version
            leads = [lead.lead_data for lead in body.leads]
            results = (
                scorer.score_batch(body.vertical, leads, explain=body.explain)
                if remote is None
                else await scorer.score_batch_async(body.vertical, leads, explain=body.explain)
            )
        except Exception as exc:  # every failure is answered and counted
            return await fail(send, exc, vertical)
        items: list[BatchItem] = []
        failed = 0
        counted = stats[vertical]
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
                counted.lead(result)
                if sampler is not None:
                    sampler.take(vertical, lead.lead_data, result.score, result.model_version)
                if keep is not None:
                    keep(body.vertical, lead.lead_data, lead.lead_id, result)
        if failed:
            metrics.SCORING_ERRORS.labels("validation_error", vertical, env).inc(failed)
        payload = BatchResponse(vertical, version, items, len(items) - failed, failed)
        await _send_json(send, 200, ENCODER.encode(payload))
        elapsed = clock() - started
        counted.batch(elapsed, len(items))
        if elapsed > slow:
            requests.slow_request(SCORE_BATCH, 200, elapsed)
        if memory is not None or shadow_models:  # after the response: no caller waits
            for lead, result in zip(body.leads, results, strict=True):
                if isinstance(result, LeadFailure):
                    continue
                shadow = challenge(vertical, lead.lead_data) if shadow_models else None
                if lead.lead_id is not None and memory is not None:
                    memory.keep(lead.lead_id, vertical, result, shadow)
        return 200

    return {SCORE: score, SCORE_BATCH: score_batch}


class _Endpoint:
    """A raw ASGI handler as a Starlette route endpoint (instances are ASGI apps)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (the gateway dispatches POSTs itself; this is the rest)."""
        await self.handler(scope, receive, send, time.perf_counter())


def routes(handlers_by_path: dict[str, Handler]) -> list[Route]:
    """Register the handlers as ordinary POST routes."""
    return [Route(path, _Endpoint(h), methods=["POST"]) for path, h in handlers_by_path.items()]
