"""``GET /docs``: the browsable API page (Swagger UI) over the document at ``/docs/api``.

Swagger UI's files come from a PyPI package (``openapi-ui-bundles``: Apache-2.0, Swagger
UI 5, which renders OpenAPI 3.1) and the service serves them itself under
``/docs/assets/{name}``, never from a CDN: the page works offline, behind a firewall
and in CI, and its Content-Security-Policy lets it load, run and fetch nothing from
anywhere but this origin (so no inline script either: the initializer is an asset too).

Asset names carry a hash of their content (``swagger-ui-bundle.1a2b3c4d5e6f.js``), so
they are sent with a year-long ``immutable`` lifetime; the page itself (half a kilobyte)
is revalidated on every load, so an upgraded package shows at once. Every URL in the page
is relative (``docs/api``, ``docs/assets/...``), so it also works behind a proxy that
mounts the service under a prefix. An unknown asset is a 404 like an unknown route.

Public, like ``/docs/api`` (``api.access``): the page shows the public document, and the
assets are the vendor's static files. Swagger UI's "Try it out" sends requests with the
token its user enters, to this origin only. Nothing here runs on the scoring path: these
are ordinary Starlette routes behind the gateway, which dispatches the scoring POSTs
before any of them is looked at.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import openapi_ui_bundles
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

PAGE = "/docs"
ASSETS = "/docs/assets/{name}"
SPEC = "docs/api"  # the OpenAPI document, relative to the page
SWAGGER_UI = Path(openapi_ui_bundles.swagger_ui.static_path)
_VENDOR_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}
ASSET_HEADERS = {
    # Content-addressed names: a changed file gets a new name, so caches may keep this.
    "cache-control": "public, max-age=31536000, immutable",
    "x-content-type-options": "nosniff",
}
PAGE_HEADERS = {
    # Scripts and styles from this origin only (Swagger UI styles elements through the
    # DOM, which CSP allows); its icons are data: URIs; the document fetch and "Try it
    # out" go to this origin. tests/integration/test_api_docs.py fails on any violation.
    "content-security-policy": "default-src 'none'; script-src 'self'; "
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # small; revalidated so new asset names are seen at once
}
# The initializer: BaseLayout (no top bar with a URL box: the page shows this service's
# document only), and queryConfigEnabled off so ?url=... cannot load another document.
_INIT_JS = b"""\
"use strict";
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.spec,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  queryConfigEnabled: false,
  validatorUrl: null,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
});
"""


@dataclass(frozen=True)
class Asset:
    """One file of the page: its content-addressed name, media type and content."""

    name: str
    media_type: str
    path: Path | None = None  # a vendor file, streamed from the package
    content: bytes | None = None  # generated here


def _named(stem: str, suffix: str, content: bytes) -> str:
    return f"{stem}.{hashlib.sha256(content).hexdigest()[:12]}{suffix}"


def load_assets(directory: Path = SWAGGER_UI) -> dict[str, Asset]:
    """Return the page's assets by name (vendor files hashed once, at worker start).

    Raises:
        FileNotFoundError: The Swagger UI package lacks a file the page needs.
    """
    assets: dict[str, Asset] = {}
    for file_name in _VENDOR_FILES:
        path = directory / file_name
        name = _named(path.stem, path.suffix, path.read_bytes())
        assets[file_name] = Asset(name, MEDIA_TYPES[path.suffix], path=path)
    assets["init.js"] = Asset(_named("init", ".js", _INIT_JS), MEDIA_TYPES[".js"], None, _INIT_JS)
    return assets


def render_page(assets: dict[str, Asset]) -> bytes:
    """The HTML of the page, linking ``assets`` by their content-addressed names."""

    def url(file_name: str) -> str:
        return f"docs/assets/{assets[file_name].name}"

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ML Service API</title>
<link rel="stylesheet" href="{url("swagger-ui.css")}">
<link rel="icon" type="image/png" href="{url("favicon-32x32.png")}">
</head>
<body>
<div id="swagger-ui" data-spec="{SPEC}"></div>
<noscript>This page needs JavaScript. The OpenAPI document itself is at
<a href="{SPEC}">{SPEC}</a>.</noscript>
<script src="{url("swagger-ui-bundle.js")}"></script>
<script src="{url("init.js")}"></script>
</body>
</html>
""".encode()


def routes(assets: dict[str, Asset] | None = None) -> list[Route]:
    """Build ``GET /docs`` and ``GET /docs/assets/{name}`` (public: ``api.access``)."""
    files = assets if assets is not None else load_assets()
    by_name = {asset.name: asset for asset in files.values()}
    page = render_page(files)

    async def docs_page(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def docs_asset(request: Request) -> Response:
        asset = by_name.get(request.path_params["name"])
        if asset is None:
            raise HTTPException(404)  # answered and counted like an unknown route
        if asset.path is not None:
            return FileResponse(asset.path, media_type=asset.media_type, headers=ASSET_HEADERS)
        return Response(asset.content, media_type=asset.media_type, headers=ASSET_HEADERS)

    return [
        Route(PAGE, docs_page, methods=["GET"]),
        Route(ASSETS, docs_asset, methods=["GET"]),
    ]
