"""Shadow challengers: set or clear one (``admin``), compare it with the champion (``viewer``).

- ``POST /api/v1/models/shadow`` ``{"vertical", "version"}`` verifies the version and
  writes the vertical's ``SHADOW`` pointer (``engine.store.pointer.set_shadow``), then
  reloads every worker as a reload does: each loads the challenger beside its champion
  (``api.shadow``). ``"version": null`` clears it. Promotion is an ordinary activate or
  reload; the champion's answers never depend on the challenger.
- ``GET /api/v1/models/{vertical}/compare[?window_hours=H]``: both on the same leads
  (``engine.monitoring.compare``): realized AUC with DeLong's interval and the number of
  outcomes, estimated AUC, and how often they agree. The window defaults to the longest
  of ``MONITORING_CONFIG``'s performance windows.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.decoding import decode_unique
from api.errors import ApiError, echo, read_json_body
from api.monitoring_io import StoreIO
from api.schemas import ENCODER, SHADOW_DECODER, ShadowResponse
from api.service import Service
from api.shadow import ShadowModels
from engine.monitoring.compare import compare
from engine.monitoring.quality import ServedModel
from engine.store import layout, pointer

_JSON = "application/json"
MAX_WINDOW_HOURS = 24 * 366


def routes(service: Service, io: StoreIO | None, shadows: ShadowModels) -> list[Route]:
    """Build the shadow routes over ``service``."""
    runtime = service.runtime
    limit = service.settings.max_body_bytes
    default_window = max(service.settings.monitoring.performance_hours)

    async def set_shadow(request: Request) -> Response:
        try:
            body = decode_unique(SHADOW_DECODER, await read_json_body(request, limit))
            if body.vertical not in service.verticals:
                runtime.scorer.model(body.vertical)  # raises UnknownVertical: 404
            if body.version is not None and not layout.is_version(body.version):
                raise ApiError(
                    422,
                    "validation_error",
                    f"{echo(body.version)!r} is not a version X.Y.Z",
                    "version",
                )
            previous = await asyncio.to_thread(
                pointer.set_shadow, runtime.model_root, body.vertical, body.version, runtime.keyring
            )
            try:
                generation = await runtime.reload(None)  # every worker re-reads its pointers
            except Exception:  # the reload refused (another vertical): change nothing
                await asyncio.to_thread(
                    pointer.set_shadow, runtime.model_root, body.vertical, previous, runtime.keyring
                )
                raise
            await shadows.refresh()
            loaded = shadows.versions().get(body.vertical)
            if loaded != body.version:
                raise ApiError(
                    409,
                    "reload_failed",
                    f"shadow {body.version} of {body.vertical} did not load (see the log)",
                    "version",
                )
        except Exception as exc:
            return service.fail(exc)
        payload = ShadowResponse(body.vertical, loaded, previous, generation)
        return Response(ENCODER.encode(payload), media_type=_JSON)

    async def compare_models(request: Request) -> Response:
        try:
            vertical = request.path_params["vertical"]
            champion_model = runtime.scorer.model(vertical)  # 404 / 503
            hours = _window_hours(request.query_params.get("window_hours"), default_window)
            challenger_model = shadows.models.get(vertical)
            if challenger_model is None:
                raise ApiError(404, "not_found", f"{vertical} has no shadow challenger", "vertical")
            if io is None:
                raise ApiError(
                    503, "feedback_unavailable", "the monitoring store could not be opened"
                )
            threshold = runtime.scorer.threshold(vertical)
            champion = ServedModel(vertical, "champion", champion_model.manifest, threshold)
            challenger = ServedModel(vertical, "challenger", challenger_model.manifest, threshold)
            now = time.time()
            result = await io.call(
                lambda store: compare(store, champion, challenger, hours * 3600.0, now)
            )
        except Exception as exc:
            return service.fail(exc)
        return Response(msgspec.json.encode(result), media_type=_JSON)

    return [
        Route("/api/v1/models/shadow", set_shadow, methods=["POST"]),
        Route("/api/v1/models/{vertical}/compare", compare_models, methods=["GET"]),
    ]


def _window_hours(raw: str | None, default: int) -> float:
    if raw is None:
        return float(default)
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not 0 < hours <= MAX_WINDOW_HOURS:
        raise ApiError(
            422,
            "validation_error",
            f"must be a number of hours in (0, {MAX_WINDOW_HOURS}]",
            "window_hours",
        )
    return hours
