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
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Wrap the connection's transport before uvicorn sees it."""
        self._coalescing = CoalescingTransport(transport)
        # The wrapper forwards every other attribute, so it stands in for the transport.
        super().connection_made(cast(asyncio.Transport, self._coalescing))

    def on_response_complete(self) -> None:
        """Make sure the response's head has left before the next request starts."""
        self._coalescing.flush()
        super().on_response_complete()
