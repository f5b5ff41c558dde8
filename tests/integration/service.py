"""A real service for integration tests: ``ml-service serve`` as a subprocess.

``ServiceProcess`` starts gunicorn (through the real CLI) on free ports with its own
run directory, waits for ``/ready`` (or just for the socket), and talks HTTP with the
standard library's ``http.client`` over keep-alive connections (HTTPS when given an
``ssl_context``, for a service started with ``TLS_CERT_FILE`` / ``TLS_KEY_FILE``).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from api.reload_state import ReloadState, WorkerSlot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Reply:
    """An HTTP response: status, headers and body (decoded JSON when it is JSON)."""

    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json: Any = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.raw[:300]!r})"


class Client:
    """One keep-alive HTTP connection to the service."""

    def __init__(
        self, port: int, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        if self.ssl_context is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=self.timeout, context=self.ssl_context
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=sent)
                response = self.conn.getresponse()
                return Reply(response.status, dict(response.getheaders()), response.read())
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = self._connect()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


class ServiceProcess:
    """``ml-service serve`` in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        workers: int = 2,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.workers = workers
        self.ssl_context = ssl_context  # talk HTTPS (the service must be given TLS_* env)
        self.port = free_port()
        self.metrics_port = free_port()
        self.run_dir = workdir / f"run-{self.port}"
        self.log_path = workdir / f"service-{self.port}.log"
        self.env = {
            **os.environ,
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "METRICS_PORT": str(self.metrics_port),
            "RUN_DIR": str(self.run_dir),
            "WORKERS": str(workers),
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "info",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> ServiceProcess:
        script = Path(sys.executable).parent / "ml-service"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(script), "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        client = Client(self.port, timeout=2, ssl_context=self.ssl_context)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log()}")
            try:
                reply = client.request("GET", "/ready")
                if (reply.status == 200 or (not wait_ready and reply.status == 503)) and len(
                    self.live_workers()
                ) == self.workers:
                    client.close()
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"service not ready in {timeout} s:\n{self.log()}")

    def live_workers(self) -> list[WorkerSlot]:
        """The workers that have loaded their models (from the shared reload state)."""
        path = self.run_dir / "reload.state"
        if not path.exists():
            return []
        state = ReloadState(path)
        try:
            return state.workers()
        finally:
            state.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self) -> Client:
        return Client(self.port, ssl_context=self.ssl_context)

    def metrics(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        return text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def hup(self) -> None:
        os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Like an operator: SIGTERM to the master, which stops its workers gracefully.
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def metric_value(text: str, name: str, /, **labels: str) -> float:
    """Sum the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
            found = True
    if not found:
        raise KeyError(f"no sample {name} {labels}")
    return total
