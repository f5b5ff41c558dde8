"""The model report and the live monitor page (HTML, role ``viewer``).

- ``GET /api/v1/models/{vertical}/{version}/report``: the report training wrote into
  the version (``report.html``: holdout curves, calibration, importance, fingerprint).
  It is served from a freshly verified copy of the version, like every model file: a
  report whose bytes do not match the signed manifest is refused (409).
- ``GET /api/v1/models/{vertical}/monitor``: production quality of the vertical's served
  model, computed now from the monitoring store (``engine.monitoring.quality``):
  holdout against realized against estimated performance per window, drift per
  feature, acceptance against its target (``engine.reports.monitor_page``).

Both pages are self-contained (inline SVG and CSS, nothing fetched), so they are sent
with a Content-Security-Policy that allows nothing else. Rendering happens on a thread
(matplotlib takes tens of milliseconds), never on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import ApiError, echo
from api.monitoring_io import StoreIO
from api.service import Service
from api.shadow import ShadowModels
from engine.monitoring.quality import (
    HOLDOUT_WINDOW,
    PerformanceRow,
    QualitySnapshot,
    ServedModel,
    compute_snapshot,
    holdout,
)
from engine.reports import monitor_page
from engine.store import layout
from engine.store.verify import verify_version

_HTML = "text/html; charset=utf-8"
_HEADERS = {
    # Inline styles and SVG only: nothing may load, run or frame the page.
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def _page_row(row: PerformanceRow) -> monitor_page.PerformanceRow:
    return monitor_page.PerformanceRow(
        row.kind,
        row.role,
        "all" if row.window == HOLDOUT_WINDOW else row.window,  # the page's name for it
        row.auc,
        row.precision,
        row.recall,
        row.conversion_rate,
        row.leads,
    )


def monitor_inputs(
    service: Service, vertical: str, served: list[ServedModel], snapshot: QualitySnapshot
) -> monitor_page.MonitorInputs:
    """The monitor page's figures from a snapshot of the vertical's served models."""
    monitoring = service.settings.monitoring
    champion = next(m for m in served if m.role == "champion")
    challenger = next((m for m in served if m.role == "challenger"), None)
    acceptance = [
        (row.window, row.acceptance_rate)
        for row in snapshot.performance
        if row.kind == "estimated" and row.role == "champion"
    ]
    return monitor_page.MonitorInputs(
        vertical=vertical,
        environment=service.settings.environment,
        generated_at=datetime.datetime.fromtimestamp(snapshot.generated_at, datetime.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        champion_version=champion.version,
        challenger_version=challenger.version if challenger else None,
        performance=[_page_row(row) for row in snapshot.performance],
        drift=[monitor_page.DriftRow(d.feature, d.psi, d.role) for d in snapshot.drift],
        drift_threshold=monitoring.drift_psi,
        acceptance=acceptance,
        acceptance_target=monitoring.acceptance_rate,
    )


def routes(
    service: Service, io: StoreIO | None, shadows: ShadowModels | None = None
) -> list[Route]:
    """Build the report and monitor routes over ``service`` (with its challengers)."""
    runtime = service.runtime
    monitoring = service.settings.monitoring
    windows = [hours * 3600.0 for hours in monitoring.performance_hours]
    drift_window = monitoring.drift_minutes * 60.0

    def html(body: bytes) -> Response:
        return Response(body, media_type=_HTML, headers=_HEADERS)

    async def monitor(request: Request) -> Response:
        try:
            vertical = request.path_params["vertical"]
            model = runtime.scorer.model(vertical)  # 404 unknown vertical, 503 no model
            served = [
                ServedModel(
                    vertical, "champion", model.manifest, runtime.scorer.threshold(vertical)
                )
            ]
            now = time.time()
            if io is not None:
                snapshot = await io.call(
                    lambda store: compute_snapshot(store, served, windows, drift_window, now)
                )
            else:  # no store: what the manifest says, and nothing from production
                snapshot = QualitySnapshot(now, "", [holdout(m) for m in served], [])
            inputs = monitor_inputs(service, vertical, served, snapshot)
            body = await asyncio.to_thread(monitor_page.render_monitor_page, inputs)
        except Exception as exc:
            return service.fail(exc)
        return html(body)

    async def report(request: Request) -> Response:
        try:
            vertical = request.path_params["vertical"]
            version = request.path_params["version"]
            if vertical not in service.verticals:
                runtime.scorer.model(vertical)  # raises UnknownVertical: 404
            if not layout.is_version(version):
                raise ApiError(
                    404, "not_found", f"{echo(version)!r} is not a version X.Y.Z", "version"
                )
            path = layout.version_dir(runtime.model_root, vertical, version)
            if not path.is_dir():
                raise ApiError(404, "not_found", f"{vertical} has no version {version}", "version")
            verified = await asyncio.to_thread(verify_version, path, runtime.keyring)
            body = verified.files.get(layout.REPORT_FILE)
            if body is None:
                raise ApiError(
                    404,
                    "not_found",
                    f"{vertical} {version} has no report (trained before reports existed)",
                    "version",
                )
        except Exception as exc:
            return service.fail(exc)
        return html(body)

    return [
        Route("/api/v1/models/{vertical}/monitor", monitor, methods=["GET"]),
        Route("/api/v1/models/{vertical}/{version}/report", report, methods=["GET"]),
    ]
