"""The gunicorn worker: uvicorn on uvloop with the httptools parser.

The HTTP protocol is ``api.http_protocol.CoalescingHttpToolsProtocol``: uvicorn's own,
with one ``send`` per response instead of two.

``uvicorn.workers`` is deprecated upstream; ``uvicorn-worker`` is its maintained home
(same maintainers). Access logs are off (a log line per request on the hot path); the
``Server`` header is dropped (no version disclosure, fewer bytes); proxy-header rewriting
is off (the service never uses client addresses).
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from api.http_protocol import CoalescingHttpToolsProtocol


class ServiceWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn worker tuned for the scoring service."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        # httptools, writing each response's head and body in one syscall.
        "http": CoalescingHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        # Client addresses are never used, so X-Forwarded-* rewriting is wasted work.
        "proxy_headers": False,
    }
