"""The ASGI application of one worker: ``create_app()`` (gunicorn's factory).

Everything heavy happens in the lifespan startup, i.e. in the worker after fork: read
the settings and config, open the shared reload state, load and verify every active
model, start the reload watcher. The master never imports LightGBM. ``api.gateway``
stands in front of the Starlette app: it enforces the access table (``api.access``) on
every request and dispatches scoring POSTs to their raw handlers (``api.routes.scoring``).
Credentials (the token keyring, the TLS certificate) are re-read on every reload, with
the models (``api.credentials``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import engine
from api import credentials, http_protocol, metrics, worker_metrics
from api.access import ACCESS
from api.archive import open_lead_archive
from api.auth import Authenticator
from api.errors import echo, error_response
from api.gateway import Gateway
from api.openapi import build_openapi
from api.reload_state import ReloadState
from api.routes import health, models, scoring
from api.runtime import ModelRuntime
from api.service import Service, internal_error_response
from api.settings import ServiceSettings, load_settings
from engine.config import load_config
from engine.store.signing import Keyring

log = logging.getLogger("ml_service.app")
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


def _save_coverage_data() -> None:
    """Save coverage.py data when the test suite measures this worker.

    uvicorn ends a worker by re-raising SIGTERM after its graceful shutdown, so atexit
    handlers (where coverage.py saves) never run. A no-op unless coverage is measuring.
    """
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is not None:
        current.save()


def build_service(settings: ServiceSettings) -> Service:
    """Load config, keys and models for this worker (call after fork)."""
    config = load_config(settings.config_path)
    model_root = settings.model_path or Path(config.model_base_path)
    slot = int(os.environ.get("SERVICE_WORKER_SLOT", "0"))
    state_path = settings.reload_state_path
    state = ReloadState(state_path) if state_path.exists() else ReloadState.create(state_path)
    runtime = ModelRuntime(
        config,
        model_root,
        Keyring.load(settings.trusted_keys),
        state,
        slot,
        settings.environment,
        keyring_source=settings.trusted_keys,
    )
    auth = Authenticator.from_directory(
        settings.jwt_public_keys, settings.jwt_issuer, settings.jwt_audience
    )
    runtime.load_initial()
    tls_on = settings.tls_cert_file is not None
    runtime.reload_hooks.extend(credentials.reload_hooks(auth, settings.environment, tls_on))
    service = Service(settings, runtime, auth)
    service.archive = open_lead_archive(settings, runtime)  # None unless LEAD_ARCHIVE_DIR
    return service


def create_app(settings: ServiceSettings | None = None) -> Gateway:
    """Build the worker's application; models load at lifespan startup."""
    settings = settings or load_settings()
    gateway: Gateway
    openapi = msgspec.json.encode(build_openapi(engine.__version__))

    async def openapi_doc(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = build_service(settings)
        recorder = worker_metrics.start(service, ACCESS.paths)
        scoring_handlers = scoring.handlers(service, recorder)
        app.router.routes.extend(
            (*scoring.routes(scoring_handlers), *models.routes(service), *health.routes(service))
        )
        ACCESS.check(app.router.routes)  # no route may serve without an access entry
        gateway.handlers.update(scoring_handlers)
        http_protocol.ERROR_HOOKS.append(
            lambda kind: metrics.SCORING_ERRORS.labels(kind, "unknown", settings.environment).inc()
        )
        gateway.service = service
        gateway.recorder = recorder
        service.runtime.start_watching()
        log.info("worker ready", extra={"versions": service.runtime.versions()})
        try:
            yield
        finally:
            await service.runtime.stop()
            if service.archive is not None:  # write what is buffered, close segments
                service.archive.close()
            _save_coverage_data()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = _HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
        metrics.SCORING_ERRORS.labels(kind, "unknown", settings.environment).inc()
        return error_response(exc.status_code, kind, f"{exc.detail}: {echo(request.url.path)}")

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        metrics.SCORING_ERRORS.labels("internal_error", "unknown", settings.environment).inc()
        return internal_error_response()

    app = Starlette(
        routes=[Route("/docs/api", openapi_doc, methods=["GET"])],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    gateway = Gateway(app)
    return gateway
