"""Parsing of what load generators and servers print: wrk output, times, response heads.

Also the nearest-rank percentile of the built-in load generator's latencies and
``LoadResult``, what one load run measured. Pure functions: no processes, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)\s*$")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in (\S+?),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
)


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured.

    Attributes:
        requests: Completed requests (any status).
        seconds: Measured duration.
        rps: Completed requests per second.
        p50_ms: Median latency.
        p99_ms: 99th percentile latency.
        non_2xx: Responses with a 4xx or 5xx status (wrk's "Non-2xx or 3xx").
        socket_errors: Socket errors by kind (connect, read, write, timeout).
        generator: ``"wrk"`` or ``"python"``.
        other_cpu: Share of the machine's CPU time spent outside this benchmark's
            processes during the run (see ``other_cpu_share``); NaN when not measured.
        server_cpu_s: CPU time the server's processes used during the run (user and
            system, all of them); NaN when not measured. Unlike throughput, it hardly
            moves when a neighbour takes cores away.
    """

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: Mapping[str, int] = field(default_factory=dict)
    generator: str = "wrk"
    other_cpu: float = float("nan")
    server_cpu_s: float = float("nan")

    @property
    def errors(self) -> int:
        """Failed requests: error statuses plus socket errors."""
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def server_cpu_us_per_request(self) -> float:
        """Server CPU time per completed request, in microseconds (NaN if unknown)."""
        if self.requests <= 0:
            return float("nan")
        return self.server_cpu_s / self.requests * 1e6


def parse_wrk_time(text: str) -> float:
    """Convert one of wrk's time figures (``512.00us``, ``1.41ms``, ``2.23s``) to ms.

    Raises:
        ValueError: ``text`` is not a wrk time.
    """
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """Parse the standard output of ``wrk --latency``.

    Raises:
        ValueError: The output lacks the totals or the latency distribution (wrk run
            without ``--latency``, or wrk failed).
    """
    rate = _RATE.search(output)
    totals = _REQUESTS.search(output)
    percentiles = {int(p): parse_wrk_time(v) for p, v in _PERCENTILE.findall(output)}
    if rate is None or totals is None or 50 not in percentiles or 99 not in percentiles:
        raise ValueError("not the output of a finished `wrk --latency` run:\n" + output)
    non_2xx = _NON_2XX.search(output)
    socket_errors = _SOCKET.search(output)
    kinds = ("connect", "read", "write", "timeout")
    return LoadResult(
        requests=int(totals.group(1)),
        seconds=parse_wrk_time(totals.group(2)) / 1e3,
        rps=float(rate.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=(
            {k: int(v) for k, v in zip(kinds, socket_errors.groups(), strict=True)}
            if socket_errors
            else {}
        ),
        generator="wrk",
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile (0 < q <= 100) of sorted values.

    Returns NaN for no values.
    """
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[min(len(ordered), int(rank)) - 1]


def parse_response_head(head: bytes) -> tuple[int, int]:
    """Return ``(status, content_length)`` of an HTTP/1.1 response head.

    ``content_length`` is -1 when the head has no ``Content-Length``.

    Raises:
        ValueError: The status line is malformed.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    length = -1
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return int(parts[1]), length
