"""No route is reachable without the role it declares: a walk over the real route table.

The worker's application is built in-process exactly as gunicorn builds it (models,
keyring, routes, lifespan), and every route and method it serves is called with no
token, with every role's token, and with a token of a retired key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from starlette.routing import Route

from api.access import ACCESS, PUBLIC, AccessTable, Unlisted
from api.app import create_app
from api.auth import GRANTS, issue_token
from api.settings import load_settings
from engine.store.signing import SigningKey


class InProcess:
    """The worker application with its lifespan running on a private event loop."""

    def __init__(self, env: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.gateway = create_app(load_settings(env))
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sent: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._task = self.loop.create_task(
            self.gateway(
                {"type": "lifespan", "asgi": {"version": "3.0"}}, self._events.get, self._sent.put
            )
        )
        self._lifespan("startup")

    def _lifespan(self, phase: str) -> None:
        self._events.put_nowait({"type": f"lifespan.{phase}"})
        message = self.loop.run_until_complete(self._sent.get())
        assert message["type"] == f"lifespan.{phase}.complete", message

    def request(self, method: str, path: str, token: str | None = None) -> int:
        headers = [(b"content-type", b"application/json")]
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "scheme": "http",
            "query_string": b"",
            "headers": headers,
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000),
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.gateway(scope, receive, send))
        return int(sent[0]["status"])

    def close(self) -> None:
        self._lifespan("shutdown")
        self.loop.run_until_complete(self._task)
        self.loop.close()


@pytest.fixture(scope="module")
def app(store, tmp_path_factory) -> Iterator[InProcess]:
    run_dir = tmp_path_factory.mktemp("access-run")
    env = store.env(RUN_DIR=str(run_dir), ENVIRONMENT="test", METRICS_PORT="1")
    application = InProcess(env)
    yield application
    application.close()


def served(app: InProcess) -> list[tuple[str, str]]:
    routes = app.gateway.app.router.routes  # type: ignore[attr-defined]
    pairs: list[tuple[str, str]] = []
    for route in routes:
        assert isinstance(route, Route)
        pairs.extend((method, route.path) for method in sorted(route.methods or ()))
    return pairs


def test_every_served_route_is_guarded_by_its_declared_role(app, store, tmp_path):
    key = SigningKey.load(store.jwt_keys / "jwt-signing.key")
    tokens = {role: issue_token(key, f"walk-{role}", role, 600) for role in GRANTS}
    pairs = served(app)
    # The score, batch, models, reload and rollback routes plus the public ones, at least.
    assert {path for _, path in pairs} >= {path for _, path in ACCESS.table}
    for method, path in pairs:
        listed, role = ACCESS.lookup(method, path)
        assert listed, f"{method} {path} is served but not in api.access"
        anonymous = app.request(method, path)
        if role is PUBLIC:
            assert anonymous not in (401, 403), (method, path)
            continue
        assert anonymous == 401, (method, path, anonymous)
        assert app.request(method, path, token="not.a.token") == 401, (method, path)
        for holder, token in tokens.items():
            status = app.request(method, path, token)
            if role in GRANTS[holder]:
                assert status not in (401, 403), (method, path, holder, status)
            else:
                assert status == 403, (method, path, holder, status)


def test_a_route_missing_from_the_table_stops_the_worker():
    table = AccessTable({("GET", "/health"): PUBLIC})
    table.check([Route("/health", lambda r: None, methods=["GET"])])
    with pytest.raises(Unlisted, match="POST /api/v1/secret"):
        table.check([Route("/api/v1/secret", lambda r: None, methods=["POST"])])
    with pytest.raises(Unlisted, match="POST /health"):
        table.check([Route("/health", lambda r: None, methods=["GET", "POST"])])


def test_templated_routes_and_head_are_governed_by_their_entries():
    table = AccessTable({("GET", "/api/v1/reports/{vertical}"): "viewer", ("GET", "/x"): PUBLIC})
    assert table.lookup("GET", "/api/v1/reports/auto") == (True, "viewer")
    assert table.lookup("HEAD", "/api/v1/reports/auto") == (True, "viewer")
    assert table.lookup("HEAD", "/x") == (True, PUBLIC)
    assert table.lookup("POST", "/api/v1/reports/auto") == (False, None)
    assert table.lookup("GET", "/api/v1/reports/auto/extra") == (False, None)
