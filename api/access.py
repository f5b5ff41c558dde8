"""Who may call what: the one table of routes and the role each needs.

Every route of the application is listed here with the role its caller must be granted
(``api.auth.GRANTS``), or ``PUBLIC``. ``api.gateway.Gateway`` enforces the table in front
of every route, and refuses to start a worker whose application has a route or method
the table does not list, so a new route cannot ship unprotected by mistake. ``HEAD`` is
governed by the ``GET`` entry of the same path. Paths are Starlette route paths, so a
route with parameters is listed by its template (``/api/v1/reports/{vertical}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.routing import BaseRoute, Route, compile_path

PUBLIC: str | None = None

ROUTE_ROLES: dict[tuple[str, str], str | None] = {
    ("POST", "/api/v1/score"): "scorer",
    ("POST", "/api/v1/score/batch"): "scorer",
    ("GET", "/api/v1/models"): "viewer",
    ("POST", "/api/v1/models/reload"): "admin",
    ("POST", "/api/v1/models/rollback"): "admin",
    ("POST", "/api/v1/models/shadow"): "admin",
    # Quality pages: what a viewer may see of the models (no lead data).
    ("GET", "/api/v1/models/{vertical}/monitor"): "viewer",
    ("GET", "/api/v1/models/{vertical}/compare"): "viewer",
    ("GET", "/api/v1/models/{vertical}/{version}/report"): "viewer",
    # Whoever scores leads reports how they turned out.
    ("POST", "/api/v1/feedback"): "scorer",
    ("POST", "/api/v1/feedback/batch"): "scorer",
    # Probes and the API description answer anyone: they carry no lead or model data
    # beyond version numbers, and orchestrators call them without credentials.
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/docs/api"): PUBLIC,
    # The browsable page over that document and its static files (api.routes.docs_page).
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
}


class Unlisted(Exception):
    """The application has a route (or method) the access table does not list."""


class AccessTable:
    """The table compiled for lookup by request method and path."""

    def __init__(self, table: dict[tuple[str, str], str | None]) -> None:
        self.table = dict(table)
        # Static paths by (method, path), HEAD included: the gateway's one dict lookup.
        self.static: dict[tuple[str, str], str | None] = {}
        self._templated: list[tuple[str, re.Pattern[str], str | None]] = []
        # Every listed path: the route labels of the request metrics.
        self.paths = frozenset(path for _, path in table)
        self._templates: list[tuple[re.Pattern[str], str]] = []
        for (method, path), role in table.items():
            if "{" in path:
                pattern = compile_path(path)[0]
                self._templated.append((method, pattern, role))
                self._templates.append((pattern, path))
            else:
                self.static[(method, path)] = role
                if method == "GET":
                    self.static[("HEAD", path)] = role

    def template(self, path: str) -> str | None:
        """The templated route path that ``path`` matches (a metrics label), if any."""
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        return None

    def lookup(self, method: str, path: str) -> tuple[bool, str | None]:
        """Return (listed, role) for a request; ``HEAD`` looks up ``GET``."""
        key = (method, path)
        if key in self.static:
            return True, self.static[key]
        if method == "HEAD":
            method = "GET"
        for listed_method, pattern, role in self._templated:
            if listed_method == method and pattern.match(path):
                return True, role
        return False, None

    def check(self, routes: Iterable[BaseRoute]) -> None:
        """Raise ``Unlisted`` unless every method of every route is in the table.

        Raises:
            Unlisted: Names the first route and method that no entry governs.
        """
        for route in routes:
            if not isinstance(route, Route):
                raise Unlisted(f"route {route!r} is not a plain Route; list what it serves")
            for method in sorted(route.methods or ()):
                wanted = "GET" if method == "HEAD" else method
                if (wanted, route.path) not in self.table:
                    raise Unlisted(f"{method} {route.path} has no entry in api.access")


ACCESS = AccessTable(ROUTE_ROLES)
