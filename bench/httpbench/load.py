"""Load generation: wrk, or the built-in asyncio generator when wrk is not installed.

Both drive ``POST /api/v1/score`` over keep-alive connections, over TLS when the app
speaks HTTPS (wrk from the ``https://`` URL, without verifying the certificate; the
built-in generator verifies it), and return a ``LoadResult``; ``run_load`` also measures
how much CPU others used meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from httpbench.common import HOST, SCORE_PATH, WRK_SCRIPT, progress
from httpbench.parsing import LoadResult, parse_response_head, parse_wrk, percentile
from httpbench.procfs import cpu_sample, other_cpu_share
from httpbench.servers import AppSpec, Server, server_pids


@dataclass(frozen=True)
class Load:
    """The load every app gets."""

    body_file: Path
    duration: int
    connections: int
    threads: int
    generator: str  # "wrk" or "python"
    verbose: bool = False


def run_wrk(load: Load, url: str, authorization: str, duration: int) -> LoadResult:
    """Run wrk for ``duration`` seconds and parse its output.

    Raises:
        RuntimeError: wrk failed or printed something unexpected.
    """
    threads = max(1, min(load.threads, load.connections))
    argv = ["wrk", f"-t{threads}", f"-c{load.connections}", f"-d{duration}s", "--latency"]
    argv += ["-s", str(WRK_SCRIPT), url]
    env = {**os.environ, "WRK_BODY_FILE": str(load.body_file), "WRK_AUTHORIZATION": authorization}
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    if load.verbose:
        progress(done.stdout.rstrip())
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    try:
        return parse_wrk(done.stdout)
    except ValueError as error:
        raise RuntimeError(str(error)) from None


def build_request(port: int, path: str, body: bytes, authorization: str) -> bytes:
    """Return the bytes of one keep-alive JSON POST request."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _drive(
    port: int,
    request: bytes,
    connections: int,
    duration: float,
    context: ssl.SSLContext | None = None,
) -> tuple[list[float], int, Counter[str]]:
    latencies: list[float] = []
    non_2xx = 0
    errors: Counter[str] = Counter()
    deadline = time.perf_counter() + duration

    async def connection() -> None:
        nonlocal non_2xx
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while time.perf_counter() < deadline:
            stage = "connect"
            try:
                if reader is None or writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port, ssl=context)
                stage = "write"
                start = time.perf_counter()
                writer.write(request)
                await writer.drain()
                stage = "read"
                status, length = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
                if length < 0:
                    raise ValueError("response without Content-Length")
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - start) * 1e3)
                if status >= 400:
                    non_2xx += 1
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                errors[stage] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    _, pending = await asyncio.wait(tasks, timeout=duration + 10)
    for task in pending:
        errors["timeout"] += 1
        task.cancel()
    return latencies, non_2xx, errors


def run_python_load(
    load: Load,
    port: int,
    authorization: str,
    duration: int,
    context: ssl.SSLContext | None = None,
) -> LoadResult:
    """Drive ``POST /api/v1/score`` from this process with asyncio keep-alive connections.

    With ``context``, every connection is TLS (the handshake counts as connecting).
    """
    request = build_request(port, SCORE_PATH, load.body_file.read_bytes(), authorization)
    start = time.perf_counter()
    latencies, non_2xx, errors = asyncio.run(
        _drive(port, request, load.connections, float(duration), context)
    )
    seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return LoadResult(
        requests=len(ordered),
        seconds=seconds,
        rps=len(ordered) / seconds,
        p50_ms=percentile(ordered, 50),
        p99_ms=percentile(ordered, 99),
        non_2xx=non_2xx,
        socket_errors=dict(errors),
        generator="python",
    )


def run_load(load: Load, spec: AppSpec, duration: int, server: Server | None = None) -> LoadResult:
    """Run the configured load generator against ``spec``'s score endpoint.

    With ``server``, also measure how much CPU others used meanwhile (``other_cpu``) and
    how much the server used (``server_cpu_s``).
    """
    pids = server_pids(server) if server is not None else []
    before = cpu_sample(pids)
    if load.generator == "wrk":
        result = run_wrk(load, spec.url(SCORE_PATH), spec.authorization, duration)
    else:
        result = run_python_load(
            load, spec.port, spec.authorization, duration, spec.client_context()
        )
    if server is None:
        return result
    after = cpu_sample(pids)
    return replace(
        result,
        other_cpu=other_cpu_share(before, after),
        server_cpu_s=after.server - before.server,
    )
