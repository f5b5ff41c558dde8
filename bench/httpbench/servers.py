"""Server processes: how to start each app, start it, wait until ready, stop it.

Each app runs under gunicorn in its own session on a free 127.0.0.1 port and is
stopped with its whole process group. Also the pids and memory of a running server.
An app served over TLS carries the certificate its clients trust (``AppSpec.ca_file``):
every client of the benchmark verifies it, as a real client would.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from httpbench.common import APP_LABELS, BASELINES, DEFAULT_CONFIG, HOST, ROOT, TLS_APP
from httpbench.procfs import Memory, children, gunicorn_master, parse_vmrss_kib, read_proc
from httpbench.workspace import Workspace, ml_service

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AppSpec:
    """How to start one app and what to send it."""

    key: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    authorization: str = ""
    ca_file: Path | None = None  # set: the app speaks HTTPS with this certificate

    @property
    def label(self) -> str:
        """The app's printed name."""
        return APP_LABELS.get(self.key, self.key)

    def url(self, path: str) -> str:
        """Return the URL of ``path`` on this app."""
        scheme = "https" if self.ca_file else "http"
        return f"{scheme}://{HOST}:{self.port}{path}"

    def client_context(self) -> ssl.SSLContext | None:
        """Return a client context that verifies this app's certificate (None: plain HTTP)."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """Return a new (not yet connected) HTTP or HTTPS connection to this app."""
        context = self.client_context()
        if context is None:
            return http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        return http.client.HTTPSConnection(HOST, self.port, timeout=timeout, context=context)


def clean_env(**extra: str) -> dict[str, str]:
    """Return this process's environment for a server, minus what would reconfigure it."""
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_CMD_ARGS"}
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def baseline_spec(key: str, module: str, workers: int, **env: str) -> AppSpec:
    """Return the spec of a baseline app run by gunicorn with uvicorn workers.

    The working directory is ``bench/baselines`` so that gunicorn finds the app module
    there and does not pick up the repository's ``gunicorn.conf.py``.
    """
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    argv += ["--worker-class", "uvicorn_worker.UvicornWorker", "--bind", f"{HOST}:{port}"]
    argv += ["--log-level", "warning", f"{module}:app"]
    return AppSpec(key, argv, clean_env(**env), BASELINES, port)


def ours_spec(space: Workspace, workers: int, token: str, tls: bool = False) -> AppSpec:
    """Return the spec of our service, run by ``ml-service serve``.

    With ``tls``, the service gets the workspace's development certificate
    (``TLS_CERT_FILE`` / ``TLS_KEY_FILE``) and serves TLS 1.3 only.
    """
    port = free_port()
    run_dir = space.root / f"run-{port}"
    run_dir.mkdir(parents=True, exist_ok=True)
    tls_env = (
        {"TLS_CERT_FILE": str(space.tls_cert), "TLS_KEY_FILE": str(space.tls_key)} if tls else {}
    )
    env = clean_env(
        **tls_env,
        MODEL_PATH=str(space.models),
        CONFIG_PATH=str(DEFAULT_CONFIG),
        MODEL_TRUSTED_KEYS=str(space.keys / "trusted"),
        JWT_PUBLIC_KEYS=str(space.jwt / "trusted"),
        METRICS_PORT=str(free_port()),
        RUN_DIR=str(run_dir),
        ENVIRONMENT="bench",
        LOG_LEVEL="warning",
    )
    argv = [ml_service(), "serve", "--bind", f"{HOST}:{port}", "--workers", str(workers)]
    return AppSpec(
        TLS_APP if tls else "ours",
        argv,
        env,
        ROOT,
        port,
        authorization=f"Bearer {token}",
        ca_file=space.tls_cert if tls else None,
    )


def http_get(spec: AppSpec, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Return status and body of ``GET path`` on a fresh connection (status 0 on failure)."""
    connection = spec.connection(timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        connection.close()


class Server:
    """A server process in its own session, stopped with its whole process group."""

    def __init__(self, spec: AppSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_body = b""

    def start(self) -> None:
        """Start the process, its output going to the log file."""
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.spec.argv,
            cwd=self.spec.cwd,
            env=self.spec.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's output."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, workers: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll ``GET /ready`` until it answers 200 on enough fresh connections in a row.

        Fresh connections land on any worker; ``2 * workers`` successes in a row make it
        likely that every worker is up before the warm-up starts.

        Raises:
            RuntimeError: The process exited, or it was not ready in time.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        streak = 0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.label} exited with {self.process.returncode}:\n" + self.log_tail()
                )
            status, self.ready_body = http_get(self.spec, "/ready")
            if status == 200:
                streak += 1
                if streak >= 2 * workers:
                    return
                continue
            streak = 0
            time.sleep(0.1)
        raise RuntimeError(f"{self.spec.label} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after a bounded wait."""
        process = self.process
        if process is not None:
            for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
                if process.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(wait)
            # Orphaned workers of an exited master: the group may still exist.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running(spec: AppSpec, workdir: Path, workers: int) -> Iterator[Server]:
    """Start ``spec``, wait until it is ready, yield it, and always stop it."""
    server = Server(spec, workdir / f"{spec.key}.log")
    try:
        server.start()
        server.wait_ready(workers)
        yield server
    finally:
        server.stop()


def server_pids(server: Server) -> list[int]:
    """Return the gunicorn master of ``server`` and its children."""
    assert server.process is not None
    master = gunicorn_master(server.process.pid)
    return [master, *children(master)]


def measure_memory(server: Server) -> Memory:
    """Return the VmRSS of the server's gunicorn master and of each of its children."""
    assert server.process is not None
    master = gunicorn_master(server.process.pid)
    workers = tuple(parse_vmrss_kib(read_proc(pid, "status")) for pid in children(master))
    return Memory(parse_vmrss_kib(read_proc(master, "status")), workers)
