"""A local service to load: ``ml-service serve`` over the ``make models`` store and keys.

Started as ``make run`` would start it (the same command, models and token keys from
``var/``) but on free ports and with its own ``RUN_DIR`` under the report directory, so
it never collides with a ``make run`` on :8000/:9090 nor shares its reload state, metrics
files or monitoring store. ``PIN_WORKERS=0`` by default: locust runs on the same cores,
and a worker pinned to the core locust is busy on would measure the load generator
(docs/api.md, "Processes"); ``pin=True`` pins like production.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from api.reload_state import ReloadState

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var"


@dataclass(frozen=True)
class StorePaths:
    """Where the service finds its models and keys (``make models`` puts them in ``var/``)."""

    models: Path = VAR / "models"
    model_keys: Path = VAR / "keys" / "trusted"
    model_signing_key: Path = VAR / "keys" / "model-signing.key"
    jwt_keys: Path = VAR / "keys" / "jwt" / "trusted"
    jwt_signing_key: Path = VAR / "keys" / "jwt" / "jwt-signing.key"

    def check(self) -> None:
        """Raise FileNotFoundError, saying what to run, if a model or key is missing."""
        needed = {
            self.models: "make models",
            self.model_keys: "make models",
            self.jwt_keys: "make var/keys/jwt/jwt-signing.key",
            self.jwt_signing_key: "make var/keys/jwt/jwt-signing.key",
        }
        for path, command in needed.items():
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: run `{command}` first")

    def env(self) -> dict[str, str]:
        """The service's settings that point at these paths."""
        return {
            "MODEL_PATH": str(self.models),
            "MODEL_TRUSTED_KEYS": str(self.model_keys),
            "JWT_PUBLIC_KEYS": str(self.jwt_keys),
        }


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalService:
    """``ml-service serve`` in its own process group (see the module docstring).

    Args:
        paths: Models and keys.
        workdir: Holds the run directory (``run/``) and the service's log (``service.log``).
        workers: Worker processes.
        pin: Pin each worker to a core (``PIN_WORKERS``).
        env: Further settings (e.g. ``MONITORING_DB``).
    """

    def __init__(
        self,
        paths: StorePaths,
        workdir: Path,
        workers: int = 2,
        pin: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.port = free_port()
        self.metrics_port = free_port()
        self.run_dir = workdir / "run"
        self.log_path = workdir / "service.log"
        self.env = {
            **os.environ,
            **paths.env(),
            "BIND": f"127.0.0.1:{self.port}",
            "METRICS_PORT": str(self.metrics_port),
            "RUN_DIR": str(self.run_dir),
            "WORKERS": str(workers),
            "PIN_WORKERS": "1" if pin else "0",
            "OMP_NUM_THREADS": "1",
            "ENVIRONMENT": "loadtest",
            "LOG_LEVEL": "warning",  # a line per refused invalid lead would flood the log
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The gunicorn master's pid (``ml-service serve`` execs gunicorn)."""
        if self.process is None:
            raise RuntimeError("the service is not started")
        return self.process.pid

    def start(self, timeout: float = 60.0) -> LocalService:
        """Start and wait until ``/ready`` answers 200 and every worker has its models.

        Raises:
            RuntimeError: The service exited or was not ready in ``timeout`` seconds
                (the message ends with its log).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        script = Path(sys.executable).parent / "ml-service"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(script), "serve"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited early:\n{self.log()}")
            if self._ready() and len(self.worker_pids()) == self.workers:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the service was not ready in {timeout:g} s:\n{self.log()}")

    def _ready(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/ready")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def worker_pids(self) -> dict[int, int]:
        """The live workers that loaded their models, by slot."""
        return worker_pids(self.run_dir)

    def log(self) -> str:
        """The end of the service's log."""
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers gracefully); SIGKILL after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def worker_pids(run_dir: Path) -> dict[int, int]:
    """The live workers of the service whose ``RUN_DIR`` is ``run_dir``, by slot."""
    path = run_dir / "reload.state"
    if not path.exists():
        return {}
    try:
        state = ReloadState(path)
    except (OSError, ValueError):  # not yet written by the master
        return {}
    try:
        return {worker.slot: worker.pid for worker in state.workers()}
    finally:
        state.close()
