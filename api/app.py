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
from api import credentials, http_protocol, metrics, prediction_cache, worker_metrics
from api.access import ACCESS
from api.archive import open_lead_archive
from api.auth import Authenticator
from api.errors import echo, error_response
from api.fleet import Fleet
from api.gateway import Gateway
from api.lead_memory import LeadMemory
from api.monitoring_io import StoreIO, open_store
from api.openapi import build_openapi
from api.quality import snapshot_path
from api.quality_publisher import QualityPublisher, served_models
from api.quality_sampler import WRITE_SECONDS, QualitySampler
from api.redis_link import RedisLink
from api.reload_state import ReloadState
from api.routes import docs_page, feedback, health, models, quality, scoring
from api.routes import shadow as shadow_routes
from api.runtime import ModelRuntime
from api.service import Service, internal_error_response
from api.settings import ServiceSettings, load_settings
from api.shadow import ShadowModels
from engine.config import load_config
from engine.pricing.demand import FleetDemand
from engine.scoring.scorer import DEFAULT_DEMAND_WINDOW, demand_windows
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
    # One Redis link per worker (its pool and circuit breaker) for every fleet feature.
    link = (
        RedisLink(settings.redis_url, settings.environment, settings.redis_timeout_ms)
        if settings.redis_url is not None
        else None
    )
    caches = prediction_cache.build(settings.cache, link)
    # With Redis, demand counts over the fleet (api.fleet_demand syncs it each second).
    demand = (
        FleetDemand(DEFAULT_DEMAND_WINDOW, demand_windows(config)) if link is not None else None
    )
    runtime = ModelRuntime(
        config,
        model_root,
        Keyring.load(settings.trusted_keys),
        state,
        slot,
        settings.environment,
        keyring_source=settings.trusted_keys,
        cache=caches.memory if caches else None,
        keyer=caches.keyer if caches else None,
        remote=caches.redis if caches else None,
        demand=demand,
    )
    if caches is not None:
        cache_metrics = prediction_cache.CacheMetrics(runtime.scorer, caches, settings.environment)
        runtime.tick_hooks.append(cache_metrics.flush)
    auth = Authenticator.from_directory(
        settings.jwt_public_keys, settings.jwt_issuer, settings.jwt_audience
    )
    runtime.load_initial()
    tls_on = settings.tls_cert_file is not None
    runtime.reload_hooks.extend(credentials.reload_hooks(auth, settings.environment, tls_on))
    service = Service(settings, runtime, auth)
    service.archive = open_lead_archive(settings, runtime)  # None unless LEAD_ARCHIVE_DIR
    service.redis = link
    return service


def _start_monitoring(
    service: Service, io: StoreIO, shadows: ShadowModels
) -> tuple[LeadMemory, QualitySampler]:
    """Feed the monitoring store from this worker; in slot 0, publish the quality figures."""
    runtime = service.runtime
    settings = service.settings
    memory = LeadMemory(io, settings.environment)
    refresh = float(settings.monitoring.quality_refresh_seconds)
    sampler = QualitySampler(
        lambda: runtime.scorer.models,
        io,
        min(WRITE_SECONDS, refresh),
        challengers=lambda: shadows.models,
    )
    runtime.tick_hooks.extend((memory.flush, sampler.tick))
    runtime.reload_hooks.append(sampler.refresh)
    shadows.on_change.append(sampler.refresh)
    if runtime.slot == 0:
        publisher = QualityPublisher(
            io,
            lambda: served_models(runtime.scorer, shadows.models),
            settings.monitoring,
            snapshot_path(settings.run_dir),
        )
        runtime.tick_hooks.append(publisher.tick)
    return memory, sampler


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
        recorder = worker_metrics.start(service, ACCESS.paths, ACCESS.template)
        store_io = open_store(settings)  # None: scoring goes on, feedback answers 503
        shadows = ShadowModels(service.runtime)
        await shadows.refresh()  # challengers load like champions, before serving
        service.runtime.reload_hooks.append(shadows.schedule_refresh)
        memory = sampler = None
        if store_io is not None:
            memory, sampler = _start_monitoring(service, store_io, shadows)
        scoring_handlers = scoring.handlers(service, recorder, memory, sampler, shadows)
        app.router.routes.extend(
            (
                *scoring.routes(scoring_handlers),
                *models.routes(service, shadows),
                *feedback.routes(service, store_io),
                *quality.routes(service, store_io, shadows),
                *shadow_routes.routes(service, store_io, shadows),
                *health.routes(service),
            )
        )
        ACCESS.check(app.router.routes)  # no route may serve without an access entry
        gateway.handlers.update(scoring_handlers)
        http_protocol.ERROR_HOOKS.append(
            lambda kind: metrics.SCORING_ERRORS.labels(kind, "unknown", settings.environment).inc()
        )
        gateway.service = service
        gateway.recorder = recorder
        fleet = Fleet(service) if service.redis is not None else None
        service.runtime.start_watching()
        log.info("worker ready", extra={"versions": service.runtime.versions()})
        try:
            yield
        finally:
            if fleet is not None:
                await fleet.stop()
            await service.runtime.stop()  # its last tick hands over what is buffered
            if service.redis is not None:
                await service.redis.close()
            if sampler is not None:
                sampler.close()
            if store_io is not None:
                store_io.close()
            shadows.close()
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
        routes=[Route("/docs/api", openapi_doc, methods=["GET"]), *docs_page.routes()],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    gateway = Gateway(app)
    return gateway
