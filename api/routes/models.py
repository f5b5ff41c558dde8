"""Model state and the admin operations: reload and rollback.

Who may call each route is in ``api.access`` (enforced by ``api.gateway``): ``viewer``
for the listing, ``admin`` for reload and rollback.
``GET /api/v1/models`` audits the store first (``ModelRuntime.audit``: cheap while the
files are unchanged), so each vertical's ``active_version`` and ``problem`` describe the
store as it is now, whichever worker answers.
"""

from __future__ import annotations

import asyncio
import datetime

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.decoding import decode_unique
from api.errors import ApiError, echo, read_json_body
from api.quality import read_snapshot, snapshot_path
from api.reload_state import WorkerSlot
from api.schemas import (
    ENCODER,
    RELOAD_DECODER,
    ROLLBACK_DECODER,
    ModelsResponse,
    ModelState,
    PerformanceFigure,
    ReloadResponse,
    WorkerState,
)
from api.service import Service
from api.shadow import ShadowModels
from engine.monitoring.quality import QualitySnapshot
from engine.store import layout

# How long reload and rollback wait for every worker to switch before answering.
SWITCH_TIMEOUT_SECONDS = 10.0
_JSON = "application/json"


def _workers(slots: list[WorkerSlot]) -> list[WorkerState]:
    return [WorkerState(s.slot, s.pid, s.generation) for s in slots]


def routes(service: Service, shadows: ShadowModels | None = None) -> list[Route]:
    """Build the model routes over ``service`` (``shadows``: its challengers, if any)."""
    runtime = service.runtime
    limit = service.settings.max_body_bytes

    async def reloaded(generation: int) -> Response:
        workers = await runtime.wait_for_workers(generation, SWITCH_TIMEOUT_SECONDS)
        switched = all(w.generation >= generation for w in workers)
        status = "success" if switched else "pending"
        body = ReloadResponse(status, runtime.versions(), generation, _workers(workers))
        return Response(ENCODER.encode(body), 200 if switched else 202, media_type=_JSON)

    async def reload(request: Request) -> Response:
        try:
            raw = await read_json_body(request, limit) if _has_body(request) else b""
            versions = decode_unique(RELOAD_DECODER, raw).versions if raw.strip() else None
            for vertical, version in (versions or {}).items():
                if not layout.is_version(version):
                    raise ApiError(
                        422,
                        "validation_error",
                        f"{echo(version)!r} is not a version X.Y.Z",
                        f"versions.{vertical}",
                    )
            generation = await runtime.reload(versions)
        except Exception as exc:
            return service.fail(exc)
        return await reloaded(generation)

    async def rollback(request: Request) -> Response:
        try:
            body = decode_unique(ROLLBACK_DECODER, await read_json_body(request, limit))
            generation = await runtime.rollback(body.vertical)
        except Exception as exc:
            return service.fail(exc)
        return await reloaded(generation)

    async def list_models(request: Request) -> Response:
        try:
            await runtime.audit()  # the store as it is now, not as the last reload saw it
            states = await asyncio.to_thread(_model_states, service)
            snapshot = await asyncio.to_thread(
                read_snapshot, snapshot_path(service.settings.run_dir)
            )
        except Exception as exc:
            return service.fail(exc)
        as_of = None
        if shadows is not None:
            challengers = shadows.versions()
            states = [
                msgspec.structs.replace(s, shadow_version=challengers.get(s.vertical))
                for s in states
            ]
        if snapshot is not None:
            states = [_with_performance(state, snapshot) for state in states]
            as_of = (
                datetime.datetime.fromtimestamp(snapshot.generated_at, datetime.UTC)
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z")
            )
        body = ModelsResponse(states, runtime.generation, _workers(runtime.state.workers()), as_of)
        return Response(ENCODER.encode(body), media_type=_JSON)

    return [
        Route("/api/v1/models", list_models, methods=["GET"]),
        Route("/api/v1/models/reload", reload, methods=["POST"]),
        Route("/api/v1/models/rollback", rollback, methods=["POST"]),
    ]


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return length != "0" and (length is not None or "transfer-encoding" in request.headers)


def _with_performance(state: ModelState, snapshot: QualitySnapshot) -> ModelState:
    figures = [
        PerformanceFigure(
            row.version,
            row.role,
            row.kind,
            row.window,
            row.auc,
            row.precision,
            row.recall,
            row.conversion_rate,
            row.acceptance_rate,
            row.leads,
        )
        for row in snapshot.performance
        if row.vertical == state.vertical
    ]
    return msgspec.structs.replace(state, performance=figures or None)


def _model_states(service: Service) -> list[ModelState]:
    runtime = service.runtime
    installed = runtime.scorer.models
    status = runtime.status
    states = []
    for vertical in runtime.config.verticals:
        model = installed.get(vertical)
        seen = status.get(vertical)
        metrics = None
        if model is not None:
            m = model.manifest.metrics
            metrics = {
                "auc": m.auc,
                "precision": m.precision,
                "recall": m.recall,
                "threshold": runtime.scorer.threshold(vertical),
            }
        states.append(
            ModelState(
                vertical=vertical,
                loaded_version=model.version if model else None,
                active_version=seen.active if seen else None,
                available_versions=layout.list_versions(runtime.model_root, vertical),
                metrics=metrics,
                trained_at=model.manifest.created_at if model else None,
                problem=seen.problem if seen else None,
            )
        )
    return states
