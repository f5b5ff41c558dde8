"""``GET /health`` (the process answers) and ``GET /ready`` (it can score every vertical)."""

from __future__ import annotations

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


class Readiness(msgspec.Struct):
    """Readiness of this worker."""

    status: str
    versions: dict[str, str | None]
    problems: dict[str, str]


def routes(service: Service) -> list[Route]:
    """Build the health routes over ``service``."""
    runtime = service.runtime

    async def health(request: Request) -> Response:
        return Response(_HEALTHY, media_type=_JSON)

    async def ready(request: Request) -> Response:
        versions = runtime.versions()
        problems = {
            v: runtime.problems.get(v, "no verified model loaded")
            for v, version in versions.items()
            if version is None
        }
        ok = not problems
        body = Readiness("ready" if ok else "not_ready", versions, problems)
        return Response(ENCODER.encode(body), 200 if ok else 503, media_type=_JSON)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
    ]
