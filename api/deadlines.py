"""A deadline on reading request bodies, kept without a timer per request.

A client that sends its headers and then trickles its body, or sends nothing more, would
otherwise hold its request (a task, a buffer, a connection) for as long as it likes.
``read_body`` (``api.errors``) answers such a request 408 ``request_timeout`` once the
body has been arriving for longer than ``BODY_TIMEOUT_SECONDS``.

A timer per request would put its cost on every request: measured under uvloop (timeit,
this machine), ``asyncio.timeout()`` adds 5.4 µs and ``loop.call_at`` + ``cancel`` 1.7 µs
to a read of a body that is already there, on a scoring request of about 50 µs; the
check below adds 0.2 µs. So:

- A body the server has already parsed to its end (uvicorn's ``more_body`` is false when
  the app starts; the common case, since a small body arrives with its headers) is read
  with no deadline at all: reading it cannot wait. ``body_arrived`` checks this.
- Every other read registers its task here (``start``/``finish``: a dict entry). The
  worker's reload watcher calls ``expire`` every 50 ms; it cancels the tasks whose read
  is overdue, and ``read_body`` turns that cancellation into 408 (``expired`` tells a
  deadline's cancellation from any other, which is re-raised).

The deadline covers the whole body, not the gap between two chunks, so a client that
sends one byte a second cannot stretch it.

Request heads get the same treatment (``HeadDeadlines``): uvicorn has no timeout on
receiving a request line and headers, so a client that opens connections and trickles
header bytes (slowloris), or sends nothing at all, would hold a file descriptor per
connection for as long as it likes. The HTTP protocol (``api.http_protocol``) registers
a connection when it opens and when a request's first byte arrives, and unregisters it
when the head is complete; the same 50 ms tick closes the ones whose head is overdue
(``HEADER_TIMEOUT_SECONDS``) with a 408. Per request that is a clock read and a dict
entry: no timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

DEFAULT_TIMEOUT_SECONDS = 10.0


def body_arrived(receive: Any) -> bool:
    """Return True when the server already holds the request's whole body.

    uvicorn's ``receive`` is a bound method of its ``RequestResponseCycle``, whose
    ``more_body`` turns false once the HTTP parser has seen the end of the body. For any
    other ``receive`` this answers False: the read may wait, so it gets a deadline.
    """
    return getattr(getattr(receive, "__self__", None), "more_body", True) is False


class BodyDeadlines:
    """The tasks reading a request body, and when each read must be over."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Watch body reads with ``timeout`` seconds each, measured by ``clock``."""
        self.timeout = timeout
        self._clock = clock
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    def start(self, task: asyncio.Task[Any]) -> None:
        """Start the deadline of ``task``'s body read."""
        self._reading[task] = self._clock() + self.timeout

    def finish(self, task: asyncio.Task[Any]) -> bool:
        """Stop watching ``task``; return True when its deadline had passed."""
        self._reading.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def expire(self) -> None:
        """Cancel every read past its deadline (a tick hook of the worker's watcher)."""
        if not self._reading:
            return
        now = self._clock()
        for task, deadline in list(self._reading.items()):
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()

    @property
    def reading(self) -> int:
        """How many body reads are being watched."""
        return len(self._reading)


# One per worker process: the scoring handlers and the admin routes read bodies through
# ``api.errors.read_body``, and ``api.service.Service`` sets the timeout and ticks it.
BODY_DEADLINES = BodyDeadlines()


class HeadReceiver(Protocol):
    """A connection whose request head is awaited (``api.http_protocol``)."""

    def head_timed_out(self) -> None:
        """Answer 408 and close: the head did not arrive in time."""


class HeadDeadlines:
    """The connections awaiting a request head, and since when."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Give every head ``timeout`` seconds, measured by ``clock``."""
        self.timeout = timeout
        self.clock = clock
        self.awaiting: dict[HeadReceiver, float] = {}

    def expire(self) -> None:
        """Time out every head past its deadline (a tick hook of the worker's watcher)."""
        if not self.awaiting:
            return
        too_old = self.clock() - self.timeout
        for connection, started in list(self.awaiting.items()):
            if started <= too_old:
                self.awaiting.pop(connection, None)
                connection.head_timed_out()


# One per worker process, like BODY_DEADLINES; ``api.service.Service`` sets the timeout
# and ticks it.
HEAD_DEADLINES = HeadDeadlines()
