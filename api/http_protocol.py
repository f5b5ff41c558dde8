"""uvicorn's httptools protocol, writing each response's head and body in one syscall.

uvicorn writes a response as two ``transport.write`` calls, the head (status line and
headers) and then the body, and uvloop sends each at once: two ``send`` syscalls per
request, which profiling showed at about a third of a worker's time. This protocol
hands uvicorn a transport wrapper that holds a response head back and sends it together
with the body's first write. The head is flushed no later than the end of the response
(``on_response_complete``: HEAD responses write no body) or a ``close``, so nothing is
ever reordered or lost; every other transport call passes straight through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.deadlines import HEAD_DEADLINES
from api.errors import error_body

_HEAD_START = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"
# Above this, joining would copy a large body just to save one syscall.
_JOIN_LIMIT = 64 * 1024


class CoalescingTransport:
    """A transport wrapper that sends a held response head with the next write."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data``, holding it back if it is a complete response head."""
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(held + bytes(data))
            else:
                self._transport.write(held)
                self._transport.write(data)
        elif isinstance(data, bytes) and data.startswith(_HEAD_START) and data.endswith(_HEAD_END):
            self._held = data
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        """Flush, then close the connection."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# HTTP framing that the parser refuses (a bad chunk size, a non-numeric Content-Length,
# garbage in the request line or headers) never reaches the application: uvicorn answers
# it itself, in plain text and uncounted. So does a head that never completes (uvicorn
# waits forever). This protocol answers both in the service's JSON error shape, closes
# the connection, and reports the error type to ``ERROR_HOOKS`` (the app counts them).
_MALFORMED = (
    400,
    b"Bad Request",
    "invalid_http",
    error_body("invalid_http", "malformed HTTP request: request line, headers or chunked framing"),
)
_HEAD_TIMEOUT = (
    408,
    b"Request Timeout",
    "request_timeout",
    error_body("request_timeout", "the request line and headers did not arrive in time"),
)
ERROR_HOOKS: list[Callable[[str], None]] = []


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a ``CoalescingTransport``, with JSON parser errors."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport before uvicorn sees it; await the first head."""
        self._coalescing = CoalescingTransport(transport)
        # The wrapper forwards every other attribute, so it stands in for the transport.
        super().connection_made(cast(asyncio.Transport, self._coalescing))
        HEAD_DEADLINES.awaiting[self] = HEAD_DEADLINES.clock()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop awaiting a head on a closed connection."""
        HEAD_DEADLINES.awaiting.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """A request's first byte: its head must be complete within the header timeout."""
        HEAD_DEADLINES.awaiting[self] = HEAD_DEADLINES.clock()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is complete (the body has its own deadline, ``api.deadlines``)."""
        HEAD_DEADLINES.awaiting.pop(self, None)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """Make sure the response's head has left before the next request starts."""
        self._coalescing.flush()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer a request the HTTP parser refused: 400 ``invalid_http``, then close."""
        self._refuse(*_MALFORMED)

    def head_timed_out(self) -> None:
        """Answer a head that did not arrive in time: 408 ``request_timeout``, then close."""
        if not self.transport.is_closing():
            self._refuse(*_HEAD_TIMEOUT)

    def _refuse(self, status: int, phrase: bytes, error_type: str, body: bytes) -> None:
        for hook in ERROR_HOOKS:
            hook(error_type)
        head = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
        for name, value in self.server_state.default_headers:
            head.extend((name, b": ", value, b"\r\n"))
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
