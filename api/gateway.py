"""The front of every worker: access control for every route, then dispatch.

``Gateway`` is the ASGI application gunicorn's workers serve. For each HTTP request it
looks the route up in the access table (``api.access``); a route that needs a role is
answered 401/403 unless the bearer token is granted that role, before any route code
runs. Then scoring POSTs go straight to their raw ASGI handlers (``api.routes.scoring``,
the hot path: no middleware stack), and everything else to the Starlette application.
A path the table does not list (so not a route: the startup check guarantees that) goes
to Starlette, which answers 404 or 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api import metrics
from api.access import ACCESS, AccessTable
from api.auth import AuthError
from api.errors import error_body
from api.service import Service

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
_JSON = b"application/json"


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authorise and dispatch one ASGI event."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
                return
        if method == "POST":
            handler = self.handlers.get(path)
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)

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
