"""The gunicorn worker: uvicorn on uvloop with the httptools parser.

The HTTP protocol is ``api.http_protocol.CoalescingHttpToolsProtocol``: uvicorn's own,
with one ``send`` per response instead of two.

``uvicorn.workers`` is deprecated upstream; ``uvicorn-worker`` is its maintained home
(same maintainers). Access logs are off (a log line per request on the hot path); the
``Server`` header is dropped (no version disclosure, fewer bytes); proxy-header rewriting
is off (the service never uses client addresses).

With TLS configured (gunicorn's ``certfile``, set from ``TLS_CERT_FILE`` by
``gunicorn.conf.py``), the worker hands uvicorn ``api.tls.uvicorn_context_factory`` so
that its SSL context speaks TLS 1.3 only; ``api.tls`` explains why uvicorn's default
context would not.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from api.http_protocol import CoalescingHttpToolsProtocol
from api.tls import uvicorn_context_factory


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.cfg.is_ssl:
            # uvicorn builds the context later, in Config.load() inside this worker; an
            # older uvicorn without the factory would silently allow TLS 1.2, so refuse.
            if not hasattr(self.config, "ssl_context_factory"):
                raise RuntimeError("TLS needs uvicorn >= 0.47 (Config.ssl_context_factory)")
            self.config.ssl_context_factory = uvicorn_context_factory
