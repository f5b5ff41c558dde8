"""The front of every worker: access control for every route, then dispatch.

``Gateway`` is the ASGI application gunicorn's workers serve. For each HTTP request it
looks the route up in the access table (``api.access``); a route that needs a role is
answered 401/403 unless the bearer token is granted that role, before any route code
runs. Then scoring POSTs go straight to their raw ASGI handlers (``api.routes.scoring``,
the hot path: no middleware stack), and everything else to the Starlette application.
A path the table does not list (so not a route: the startup check guarantees that) goes
to Starlette, which answers 404 or 405.

Every HTTP request is timed from here, refusals and failures included, into the
worker's ``api.request_metrics.RequestRecorder``: the scoring handlers get the start,
record their own 200s (with their vertical's latency, one observation for both) and
return any other status for the gateway to record; for the other routes, ``send`` is
watched for the response start.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.access import ACCESS, AccessTable
from api.auth import AuthError
from api.errors import error_body
from api.request_metrics import RequestRecorder
from api.service import Service

# A raw ASGI handler: gets the request's start on this clock, records its own 200s and
# returns the status it answered with (api.routes.scoring).
Handler = Callable[[Scope, Receive, Send, float], Awaitable[int]]
_JSON = b"application/json"
_clock = time.perf_counter


# Not a role (roles are names from api.auth.GRANTS): marks a path the dict does not hold.
_UNLISTED = "<unlisted>"


class Gateway:
    """ASGI front that enforces the access table and dispatches the fast path.

    ``service`` and ``handlers`` are set once the worker's service is built (lifespan
    startup); uvicorn serves no request before that, and until then every route that
    needs a role is refused.
    """

    def __init__(self, app: ASGIApp, access: AccessTable = ACCESS) -> None:
        self.app = app
        self.access = access
        self._static = access.static
        self.handlers: dict[str, Handler] = {}
        self.service: Service | None = None
        self.recorder: RequestRecorder | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authorise, dispatch and time one ASGI event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = _clock()
        method = scope["method"]
        path = scope["path"]
        role = self._static.get((method, path), _UNLISTED)
        if role is _UNLISTED:  # a templated route, or no route at all (Starlette's 404/405)
            role = self.access.lookup(method, path)[1]
        if role is not None:
            service = self.service
            try:
                if service is None:  # not serving yet: refuse, never let anything through
                    raise AuthError("missing")
                authorization = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        authorization = value.decode("latin-1")
                        break
                scope["principal"] = service.auth.authenticate(authorization, role)
            except AuthError as exc:
                await self._refuse(send, exc)
                if self.recorder is not None:
                    self.recorder.observe(path, exc.status, _clock() - started)
                return
        # Inline, not in a helper coroutine: this is every request's path (the scoring
        # handlers' above all), and a coroutine frame costs more than the timing itself.
        handler = self.handlers.get(path) if method == "POST" else None
        recorder = self.recorder
        if recorder is None:  # lifespan startup not done (uvicorn serves nothing yet)
            if handler is not None:
                await handler(scope, receive, send, started)
            else:
                await self.app(scope, receive, send)
            return
        recorder.in_flight += 1
        status = 500  # what uvicorn answers if the application raises
        try:
            if handler is not None:
                status = await handler(scope, receive, send, started)
            else:
                status = await self._application(scope, receive, send)
        finally:
            recorder.in_flight -= 1
            if status != 200 or handler is None:  # a handler records its own 200s
                recorder.observe(path, status, _clock() - started)

    async def _application(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Serve a request through Starlette; return the status it answered with."""
        answered = [500]  # uvicorn's answer if the app sends no response start

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = message["status"]
            await send(message)

        await self.app(scope, receive, watched_send)
        return answered[0]

    async def _refuse(self, send: Send, exc: AuthError) -> None:
        """Answer a refused request (counted by reason and by error type, and logged)."""
        service = self.service
        if service is not None:
            metrics.AUTH_FAILURES.labels(exc.reason, service.settings.environment).inc()
            service.reject(exc)
        kind = "unauthorized" if exc.status == 401 else "forbidden"
        body = error_body(kind, exc.message)
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(body))]
        if exc.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
