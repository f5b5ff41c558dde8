"""``GET /health`` (the process answers) and ``GET /ready`` (it can score every vertical).

``/ready`` answers from the worker's last known status (``api.runtime``), with no I/O:

- ``ready`` (200): every vertical serves the version its ``CURRENT`` names, verified.
- ``degraded`` (200): every vertical can be scored, but a problem is reported: the
  version ``CURRENT`` names was refused, is missing or is not loaded here yet, or the
  served version changed on disk since it was loaded.
- ``not_ready`` (503): some vertical has no model at all (its requests get 503).

``problems`` maps each vertical with a problem to a sentence saying why (versions and
file names, never absolute paths); ``reasons`` gives the same as a stable code
(``engine.store.active.REASONS`` or ``pending``) for probes and alerts. A degraded
worker stays in rotation on purpose: it still serves a verified version, and taking it
out would turn a refused artifact into an outage.

``redis`` says how this worker sees the fleet tier (``REDIS_URL``): ``up``, or ``down``
while its circuit breaker is open (``api.redis_link``), with ``redis_problem`` saying
why; absent without ``REDIS_URL``. A Redis outage never changes the status: scoring goes
on with local state, so taking the pod out of rotation would only make things worse.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.schemas import ENCODER
from api.service import Service

_JSON = "application/json"


class Health(msgspec.Struct):
    """The process answers."""

    status: str


_HEALTHY = msgspec.json.encode(Health("ok"))


ReadyStatus = Literal["ready", "degraded", "not_ready"]


class Readiness(msgspec.Struct, omit_defaults=True):
    """Readiness of this worker (see the module docstring)."""

    status: ReadyStatus
    versions: dict[str, str | None]
    problems: dict[str, str]
    reasons: dict[str, str]
    redis: Literal["up", "down"] | None = None
    redis_problem: str | None = None


def routes(service: Service) -> list[Route]:
    """Build the health routes over ``service``."""
    runtime = service.runtime

    async def health(request: Request) -> Response:
        return Response(_HEALTHY, media_type=_JSON)

    async def ready(request: Request) -> Response:
        versions = runtime.versions()
        problems: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for vertical, seen in runtime.status.items():
            if seen.problem is not None:
                problems[vertical] = seen.problem
                reasons[vertical] = seen.reason or "load"
        servable = True
        for vertical, version in versions.items():
            if version is None:
                servable = False
                problems.setdefault(vertical, "no verified model loaded")
                reasons.setdefault(vertical, "load")
        status: ReadyStatus = "ready" if not problems else "degraded" if servable else "not_ready"
        body = Readiness(status, versions, problems, reasons)
        link = service.redis
        if link is not None:
            body.redis = "up" if link.up else "down"
            body.redis_problem = None if link.up else link.problem
        return Response(ENCODER.encode(body), 200 if servable else 503, media_type=_JSON)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
    ]
