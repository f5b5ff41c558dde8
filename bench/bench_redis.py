"""What one Redis can carry for the fleet: operations per second and Redis CPU per operation.

The fleet tier's Redis traffic is a handful of commands (``docs/capacity.md``): the
prediction cache's ``GET``/``MGET`` and pipelined ``SET ... PX`` of msgpack values, the
demand counters' ``INCRBY``/``EXPIRE``/``MGET`` once per worker per second, the reload
stamp's ``INCR``/``PUBLISH`` per reload, and the feedback store's pipelined writes. Redis
runs commands on one thread, so its capacity is operations per second per Redis.

This starts a private ``redis-server`` on a free port (no persistence, as the fleet tier
runs), fills it with cache-sized values, and runs ``redis-benchmark`` (shipped with
Redis) for ``GET`` and ``SET`` with the value sizes of a plain and an ``explain`` entry,
one command per round trip (``-P 1``, the worst case: a request's single lookup) and
pipelined (``-P 16``, how writes and batches go), with ``--clients`` connections. For
each it prints operations per second and Redis's own CPU per operation (from ``INFO
cpu`` before and after): the figure that says how many Redis cores a fleet needs.

Run: ``python bench/bench_redis.py`` (``--requests``, ``--clients``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import msgspec
from local_redis import LocalRedis

from engine.scoring.result import Reason

PLAIN = msgspec.msgpack.encode((0.7312345678901234, None))
EXPLAINED = msgspec.msgpack.encode(
    (0.7312345678901234, [Reason(f"feature_{n}", 0.123456789, "up") for n in range(5)])
)


def redis_cpu(port: int) -> float:
    """Redis's CPU seconds so far (user + system of the server process)."""
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "cpu"], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def run(port: int, command: str, size: int, pipeline: int, args: argparse.Namespace) -> str:
    """One redis-benchmark run; returns a table row."""
    before = redis_cpu(port)
    started = time.perf_counter()
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", command, "-n", str(args.requests),
         "-c", str(args.clients), "-P", str(pipeline), "-d", str(size), "-r", "100000",
         "--csv"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    elapsed = time.perf_counter() - started
    cpu = redis_cpu(port) - before
    row = next(line for line in out.splitlines() if line.startswith(f'"{command.upper()}"'))
    rate = float(row.split(",")[1].strip('"'))
    return (
        f"  {command.upper():<5}{size:>7}{pipeline:>10}{rate:>14,.0f}"
        f"{cpu / args.requests * 1e6:>16.2f}{elapsed:>9.1f}"
    )


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000, help="per run (default 200000)")
    parser.add_argument("--clients", type=int, default=32, help="connections (default 32)")
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        print("skipped: install redis-server (it ships redis-benchmark and redis-cli)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        try:
            server = LocalRedis(Path(tmp))
        except FileNotFoundError as missing:
            print(f"skipped: install {missing}")
            return 0
        port = server.port
        try:
            print(
                f"cache values: {len(PLAIN)} bytes plain, {len(EXPLAINED)} with 5 reasons; "
                f"{args.requests:,} requests per run, {args.clients} connections"
            )
            print(
                f"  {'op':<5}{'bytes':>7}{'pipeline':>10}{'ops/s':>14}{'redis us/op':>16}"
                f"{'secs':>9}"
            )
            for size in (len(PLAIN), len(EXPLAINED)):
                for pipeline in (1, 16):
                    print(run(port, "set", size, pipeline, args), flush=True)
                    print(run(port, "get", size, pipeline, args), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
