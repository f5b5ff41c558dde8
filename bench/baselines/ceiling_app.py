"""The ceiling: the cheapest HTTP endpoint this stack can serve, for ``bench_http.py``.

``POST /api/v1/score`` answers with a constant JSON body shaped like a real score
response, without reading the request body, authenticating or computing anything. It
runs under the same gunicorn + uvicorn (uvloop, httptools) workers as the service, so
the throughput it reaches is the most any scoring endpoint on this machine can reach.
``GET /ready`` answers 200 once the worker has imported this module.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = (
    b'{"score":0.4242,"confidence":0.8123,"price":31.5,'
    b'"market_factors":{"time":1.0,"day":1.0,"demand":1.0,"location":1.1},'
    b'"model_version":"1.1.0","accepted":false}'
)


async def score(request: Request) -> Response:
    """Return the constant score body."""
    return Response(BODY, media_type="application/json")


async def ready(request: Request) -> Response:
    """Return 200: the worker is up."""
    return Response(b'{"status":"ready"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/api/v1/score", score, methods=["POST"]),
        Route("/ready", ready, methods=["GET"]),
    ]
)
