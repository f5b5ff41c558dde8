"""Continuous scoring load against a real service, with per-request records to judge a fault by.

A fault test needs to know what every client saw while the fault lasted, not an average
over the run: ``ContinuousLoad`` keeps a few threads posting ``POST /api/v1/score`` back
to back and records each request as a ``Sample`` (when it started on the monotonic
clock, its status, its latency). ``window(start, end)`` then summarises the requests
that *started* inside a time window (measured with ``time.monotonic()`` by the test) as
``Stats``: count, failures, p50, p99 and max latency; ``overlapping(start, end)`` does
the same for the requests *in flight* at some time in the window, which is what a fault
window needs: the requests already waiting on Redis when it froze are the slowest.

Choices, and why:

- **One keep-alive connection per thread, opened here with ``http.client``**, not
  ``tests.integration.service.Client``: that client retries a request once after a
  connection error, which would hide exactly the failures a fault test must count. Here
  any exception (refused, reset, timed out, malformed) is a failure (status 0, with the
  exception in ``detail``), the connection is dropped and the next request reconnects.
- **A failure is anything but HTTP 200**, so a 5xx, a 429 or a 4xx that should not
  happen all count; ``failed()`` returns them with their detail for the report.
- **Hits and misses both.** A fault in a cache tier only shows on cache misses (the
  tiered cache asks Redis only when its memory tier misses), and a load that repeats a
  few leads would soon be all memory hits. With ``vary``, every other request is a fresh
  variant of a pool lead (``vary(lead, n)`` with a request number unique to the run), so
  the memory tier keeps missing; the others cycle through the pool as given and hit.
- **Modest concurrency** (4 threads by default): the test machine is small and the
  service under test shares it; more threads would measure CPU contention, not Redis.
- **The measuring process must not pause.** Records are untracked tuples and the heap
  that exists at ``start`` is frozen (``gc.freeze``) until ``stop``: without that, a
  full collection of the test process's heap stalled all four clients at once for
  110-130 ms (seen on this machine), a pause that is the client's, not the service's.
- Latencies are measured around the whole exchange (send, response, body read) on the
  monotonic clock, the same clock the test uses to mark fault windows.
"""

from __future__ import annotations

import gc
import http.client
import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tests.integration.service import ServiceProcess

PATH = "/api/v1/score"
RECONNECT_PAUSE = 0.05
"""Seconds to wait after a connection error, so a dead service is not hammered in a spin."""

ScoreLead = tuple[str, Mapping[str, Any]]
"""A vertical and a lead of it, as posted in ``{"vertical": ..., "lead_data": ...}``."""

Record = tuple[float, int, float, str]
"""A ``Sample``'s fields, as a thread records them."""

Vary = Callable[[Mapping[str, Any], int], Mapping[str, Any]]
"""Makes a fresh variant of a lead from a request number unique to the run."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: when it started (``time.monotonic()``), its status, its latency.

    ``status`` is 0 when no HTTP response came back (connection error or timeout);
    ``detail`` says what went wrong for a failure, and is empty for a 200.
    """

    started: float
    status: int
    latency: float
    detail: str = ""

    @property
    def finished(self) -> float:
        """When the response (or the error) came back (monotonic seconds)."""
        return self.started + self.latency

    @property
    def failed(self) -> bool:
        """Anything but HTTP 200, connection errors included."""
        return self.status != 200


@dataclass(frozen=True, slots=True)
class Stats:
    """Requests, failures and latency percentiles (milliseconds) over some samples."""

    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> Stats:
        """Summarise ``samples`` (all zeros when there are none)."""
        chosen = list(samples)
        latencies = sorted(sample.latency * 1000.0 for sample in chosen)
        failures = sum(1 for sample in chosen if sample.failed)
        if not latencies:
            return cls(0, failures, 0.0, 0.0, 0.0)
        return cls(
            len(chosen),
            failures,
            percentile(latencies, 50),
            percentile(latencies, 99),
            latencies[-1],
        )

    def line(self, name: str, kind: str = "FAULT") -> str:
        """The one-line report the fault tests print (``FAULT <name>: ...``)."""
        return (
            f"{kind} {name}: requests={self.requests} failures={self.failures} "
            f"p50={self.p50_ms:.1f} p99={self.p99_ms:.1f} max={self.max_ms:.1f}"
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``ordered`` (sorted ascending, not empty).

    Nearest rank rather than interpolation: the value reported is a latency some request
    really had, and p99 of 100 samples is the worst but one, as an operator reads it.
    """
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


class ContinuousLoad:
    """Threads scoring leads back to back against ``service`` (see the module docstring).

    Use as a context manager, or call ``start()`` and ``stop()``.

    Args:
        service: A started service.
        token: A bearer token allowed to score.
        leads: The pool of (vertical, lead) pairs to cycle through; not empty.
        threads: Concurrent clients, each with its own keep-alive connection.
        vary: Makes every other request a fresh variant of its pool lead, so caches
            miss as well as hit; None posts the pool leads as given.
        timeout: Seconds a request may take before it counts as failed; generous, so
            a service that hangs shows as failures with their latency, not as a stuck test.
    """

    def __init__(
        self,
        service: ServiceProcess,
        token: str,
        leads: Sequence[ScoreLead],
        threads: int = 4,
        vary: Vary | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not leads:
            raise ValueError("ContinuousLoad needs at least one lead")
        if threads < 1:
            raise ValueError("ContinuousLoad needs at least one thread")
        self._port = service.port
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self._leads = list(leads)
        self._vary = vary
        self._timeout = timeout
        self._numbers = itertools.count()  # next() on a count is atomic under the GIL
        self._stopping = threading.Event()
        # One list per thread: each thread only appends to its own, so no lock is needed
        # and readers copy the lists (an atomic operation under the GIL). Records are
        # plain tuples of numbers and a string, which the garbage collector stops
        # tracking, so tens of thousands of them add nothing to its passes.
        self._records: list[list[Record]] = [[] for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(records,), name=f"load-{i}", daemon=True)
            for i, records in enumerate(self._records)
        ]
        self.started_at: float | None = None

    def start(self) -> ContinuousLoad:
        """Start every thread; returns self."""
        # The test process holds a large heap (trained models, libraries): a full
        # collection of it stops every client thread for 100 ms or more, which would be
        # reported as the service's latency. Freezing what exists now leaves the
        # collector only the load's own short-lived objects; ``stop`` unfreezes.
        gc.freeze()
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop after each thread's request in flight (at most ``timeout`` later)."""
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=self._timeout + 5.0)
        gc.unfreeze()

    def __enter__(self) -> ContinuousLoad:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def samples(self) -> list[Sample]:
        """Every request recorded so far, in start order."""
        merged = [Sample(*record) for records in self._records for record in list(records)]
        merged.sort(key=lambda sample: sample.started)
        return merged

    def window(self, start: float, end: float) -> Stats:
        """Stats of the requests that started in ``[start, end)`` (monotonic seconds)."""
        return Stats.of(s for s in self.samples() if start <= s.started < end)

    def overlapping(self, start: float, end: float) -> Stats:
        """Stats of the requests in flight at some time in ``[start, end)``.

        Unlike ``window``, this includes the requests already under way when a fault
        began: they are the ones most likely to wait on it.
        """
        return Stats.of(s for s in self.samples() if s.started < end and s.finished > start)

    def total(self) -> Stats:
        """Stats of every request so far."""
        return Stats.of(self.samples())

    def failed(self, start: float = -math.inf, end: float = math.inf) -> list[Sample]:
        """The failed requests in flight at some time in ``[start, end)``, for a report."""
        return [s for s in self.samples() if s.started < end and s.finished > start and s.failed]

    def _body(self, number: int) -> bytes:
        vertical, lead = self._leads[(number // 2) % len(self._leads)]
        if self._vary is not None and number % 2:
            lead = self._vary(lead, number)
        return json.dumps({"vertical": vertical, "lead_data": lead}).encode()

    def _run(self, records: list[Record]) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self._stopping.is_set():
            body = self._body(next(self._numbers))
            started = time.monotonic()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        "127.0.0.1", self._port, timeout=self._timeout
                    )
                connection.request("POST", PATH, body=body, headers=self._headers)
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                records.append((started, 0, time.monotonic() - started, repr(exc)))
                if connection is not None:
                    connection.close()
                connection = None
                self._stopping.wait(RECONNECT_PAUSE)
                continue
            latency = time.monotonic() - started
            status = response.status
            detail = "" if status == 200 else raw[:300].decode(errors="replace")
            records.append((started, status, latency, detail))
        if connection is not None:
            connection.close()
