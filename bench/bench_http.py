"""HTTP benchmark: the scoring service against its ceiling and the seed-style service.

Three apps score the same auto lead (``examples/leads/auto.json``) with the same model
(``auto`` v1.1.0, trained here from synthetic leads), in one run, one after another
(never two at once), each under gunicorn with the same number of uvicorn workers on a
free 127.0.0.1 port:

- ceiling (``bench/baselines/ceiling_app.py``): a minimal Starlette endpoint returning a
  constant JSON body; no app on this stack can be faster.
- seed (``bench/baselines/seed_app.py``): FastAPI + pydantic + a one-row pandas
  DataFrame + ``lightgbm.Booster.predict``, the model loaded per worker after fork.
- ours: ``ml-service serve`` (gunicorn with the repository's ``gunicorn.conf.py``), with
  all four verticals loaded and a JWT on every request.

Each app gets a warm-up (default 2 s), then the same load: ``wrk -t2 -c32 -d10s
--latency`` with ``bench/wrk/post_json.lua`` for the POST body and headers. When ``wrk``
is not installed, a built-in asyncio load generator (keep-alive connections, exact
per-request latencies) stands in; it is slower than wrk, so absolute figures then
understate the fast apps. Printed per app: requests/s, p50, p99, non-2xx/3xx responses
and socket errors, and the RSS of the gunicorn master and of each worker (VmRSS from
``/proc/<pid>/status``). For ours, also a reload window: the same load while
``POST /api/v1/models/reload`` switches auto between 1.0.0 and 1.1.0 every 0.5 s.

Goals, as ratios against baselines measured in the same run (absolute figures on a
shared machine drift from run to run, ratios much less):

- ours / ceiling throughput >= 0.6,
- ours / seed throughput >= 8,
- our p99 <= 5 ms,
- and no failed scoring request, in the main run or in the reload window.

Run ``python bench/bench_http.py --help`` for options; ``--check`` exits 1 when a goal is
missed. Needs ``wrk`` (or falls back), the ``bench`` extra (fastapi, pydantic, pandas)
and ``uvicorn-worker``. The load generator shares the machine's cores with the servers,
as in the measured facts of ``DESIGN.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BASELINES = BENCH_DIR / "baselines"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post_json.lua"
LEAD_FILE = ROOT / "examples" / "leads" / "auto.json"
DEFAULT_CONFIG = ROOT / "config" / "models.yaml"
HOST = "127.0.0.1"
SCORE_PATH = "/api/v1/score"
RELOAD_PATH = "/api/v1/models/reload"
VERTICALS = ("auto", "home", "health", "life")
RELOAD_VERSIONS = ("1.0.0", "1.1.0")
SERVED_VERSION = "1.1.0"
TRAINING_ROWS = 20000
RELOAD_INTERVAL_S = 0.5
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0

GOAL_CEILING_RATIO = 0.6
GOAL_SEED_RATIO = 8.0
GOAL_P99_MS = 5.0

APP_KEYS = ("ceiling", "seed", "ours")
APP_LABELS = {
    "ceiling": "ceiling: Starlette, fixed body",
    "seed": "seed: FastAPI+pandas+Booster",
    "ours": "ours: ml-service serve",
}

# ---------------------------------------------------------------------------------------
# Pure parts: parsing, percentiles, goals (unit-tested in tests/unit/bench).
# ---------------------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)\s*$")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+(\S+)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in (\S+?),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
)
_VMRSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB\s*$", re.MULTILINE)


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

    @property
    def errors(self) -> int:
        """Failed requests: error statuses plus socket errors."""
        return self.non_2xx + sum(self.socket_errors.values())


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


def parse_vmrss_kib(status: str) -> int:
    """Return ``VmRSS`` in KiB from the text of ``/proc/<pid>/status`` (0 if absent)."""
    match = _VMRSS.search(status)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds at one moment.

    Attributes:
        busy: The machine's busy time, summed over all cores.
        total: The machine's total time, summed over all cores.
        ours: Time used so far by the benchmark's own processes (servers, wrk, itself).
    """

    busy: float
    total: float
    ours: float


def parse_proc_stat_cpu(stat: str) -> tuple[int, int]:
    """Return ``(busy, total)`` clock ticks from the aggregate ``cpu`` line of ``/proc/stat``.

    Busy is everything but idle and iowait, so it includes interrupts and the time the
    hypervisor gave to other guests (steal): all of it is capacity the servers lacked.
    """
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - (fields[4] if len(fields) > 4 else 0), total


def parse_pid_cpu_ticks(stat: str) -> int:
    """Return utime + stime clock ticks from ``/proc/<pid>/stat`` (0 when empty)."""
    fields = stat.rpartition(")")[2].split()
    # After the parenthesised command, index 0 is field 3 (state): utime and stime are
    # fields 14 and 15.
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0


def other_cpu_share(before: CpuSample, after: CpuSample) -> float:
    """Return the share of the machine's CPU capacity used by others between two samples.

    Others are every process that is not the benchmark's, interrupts and steal. A high
    share means the figures of that run are polluted by a neighbour.
    """
    total = after.total - before.total
    if total <= 0:
        return float("nan")
    others = (after.busy - before.busy) - (after.ours - before.ours)
    return min(1.0, max(0.0, others / total))


@dataclass(frozen=True)
class Goal:
    """One pass/fail goal: ``value`` compared with ``target``.

    Attributes:
        label: What is measured.
        value: The measured figure.
        target: The bound it must meet.
        at_least: True when ``value >= target`` passes, False when ``value <= target``.
        unit: Printed after the figures (``"x"`` for ratios).
    """

    label: str
    value: float
    target: float
    at_least: bool
    unit: str = "x"

    @property
    def met(self) -> bool:
        """Whether the goal is met (a NaN value never meets it)."""
        if self.value != self.value:
            return False
        return self.value >= self.target if self.at_least else self.value <= self.target

    def line(self) -> str:
        """One printable line: figure, goal, verdict."""
        op = ">=" if self.at_least else "<="
        # Ratios get three decimals so that 0.598 does not print as a passing 0.60.
        digits = {"": 0, "x": 3}.get(self.unit, 2)
        value = f"{self.value:.{digits}f}{self.unit}" if self.value == self.value else "n/a"
        target = f"{self.target:g}{self.unit}"
        verdict = "ok" if self.met else "MISSED"
        return f"{self.label:<40}{value:>10}   goal {op} {target:<8}{verdict}"


def ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, NaN when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else float("nan")


def evaluate_goals(
    ceiling: LoadResult | None,
    seed: LoadResult | None,
    ours: LoadResult | None,
    reload_window: LoadResult | None = None,
) -> list[Goal]:
    """Return the benchmark's goals for the measured results.

    A goal whose measurements are missing gets a NaN value, so it is reported as
    missed: ``--check`` must not pass on a run that did not measure our service.
    """
    nan = float("nan")
    ours_rps = ours.rps if ours else nan
    goals = [
        Goal(
            "ours / ceiling throughput",
            ratio(ours_rps, ceiling.rps) if ceiling else nan,
            GOAL_CEILING_RATIO,
            at_least=True,
        ),
        Goal(
            "ours / seed throughput",
            ratio(ours_rps, seed.rps) if seed else nan,
            GOAL_SEED_RATIO,
            at_least=True,
        ),
        Goal("our p99", ours.p99_ms if ours else nan, GOAL_P99_MS, at_least=False, unit=" ms"),
        Goal(
            "our failed requests",
            float(ours.errors) if ours else nan,
            0,
            at_least=False,
            unit="",
        ),
    ]
    if reload_window is not None:
        goals.append(
            Goal(
                "our failed requests, reload window",
                float(reload_window.errors),
                0,
                at_least=False,
                unit="",
            )
        )
    return goals


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------
# Processes: setup commands, servers, /proc.
# ---------------------------------------------------------------------------------------


def ml_service() -> str:
    """Return the path of the ``ml-service`` command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("ml-service")
    if beside.exists():
        return str(beside)
    found = shutil.which("ml-service")
    if found is None:
        raise SystemExit("ml-service is not installed (pip install -e .)")
    return found


def run_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Run a setup command to completion (bounded) and return its standard output.

    Raises:
        RuntimeError: The command failed; the message carries its error output.
    """
    done = subprocess.run(
        list(argv),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def command_works(argv: Sequence[str]) -> bool:
    """Return whether ``argv`` exits 0 (used to probe ``ml-service serve --help``)."""
    try:
        return (
            subprocess.run(list(argv), capture_output=True, timeout=60, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass(frozen=True)
class Workspace:
    """Files the benchmark creates: keys, data, models, tokens."""

    root: Path

    @property
    def models(self) -> Path:
        """The model store root (``MODEL_PATH``)."""
        return self.root / "models"

    @property
    def keys(self) -> Path:
        """The model signing key directory."""
        return self.root / "keys"

    @property
    def jwt(self) -> Path:
        """The JWT signing key directory."""
        return self.root / "jwt"

    def model_env(self) -> dict[str, str]:
        """Environment of the training commands."""
        return {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MODEL_PATH": str(self.models),
            "CONFIG_PATH": str(DEFAULT_CONFIG),
            "MODEL_SIGNING_KEY": str(self.keys / "model-signing.key"),
            "MODEL_TRUSTED_KEYS": str(self.keys / "trusted"),
        }


def prepare_models(space: Workspace, verticals: Sequence[str]) -> None:
    """Create signing keys and train the models (skipping what already exists).

    auto gets 1.0.0 and 1.1.0 (active); every other vertical 1.0.0 (active).
    """
    cli = ml_service()
    if not (space.keys / "model-signing.key").exists():
        run_command([cli, "keys", "generate", "--dir", str(space.keys)])
    env = space.model_env()
    for vertical in verticals:
        versions = RELOAD_VERSIONS if vertical == "auto" else ("1.0.0",)
        data = space.root / f"{vertical}.csv"
        for version in versions:
            if (space.models / vertical / f"v{version}").exists():
                continue
            if not data.exists():
                progress(f"synthesising {TRAINING_ROWS} {vertical} leads")
                synth = [cli, "synth", "--vertical", vertical, "--rows", str(TRAINING_ROWS)]
                run_command([*synth, "--seed", "7", "--out", str(data)], env)
            progress(f"training {vertical} {version}")
            argv = [cli, "train", "--vertical", vertical, "--data", str(data)]
            argv += ["--version", version]
            if version == versions[-1]:
                argv.append("--activate")
            run_command(argv, env)


def activate_served_version(space: Workspace) -> None:
    """Make auto v1.1.0 active again: the reload window's reloads rewrite ``CURRENT``."""
    current = space.models / "auto" / "CURRENT"
    if current.read_text(encoding="utf-8").strip() != SERVED_VERSION:
        run_command(
            [ml_service(), "models", "activate", "--vertical", "auto", "--version", SERVED_VERSION],
            space.model_env(),
        )


def mint_tokens(space: Workspace) -> tuple[str, str]:
    """Return ``(scorer, admin)`` JWTs signed by a key pair made for this run."""
    cli = ml_service()
    if not (space.jwt / "jwt-signing.key").exists():
        run_command([cli, "auth", "keygen", "--dir", str(space.jwt)])
    env = {**os.environ, "JWT_SIGNING_KEY": str(space.jwt / "jwt-signing.key")}
    tokens = []
    for role in ("scorer", "admin"):
        out = run_command([cli, "auth", "token", "--role", role, "--ttl", "3600"], env)
        tokens.append(out.strip().splitlines()[-1].strip())
    return tokens[0], tokens[1]


@dataclass
class AppSpec:
    """How to start one app and what to send it."""

    key: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    authorization: str = ""

    @property
    def label(self) -> str:
        """The app's printed name."""
        return APP_LABELS.get(self.key, self.key)

    def url(self, path: str) -> str:
        """Return the URL of ``path`` on this app."""
        return f"http://{HOST}:{self.port}{path}"


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


def ours_spec(space: Workspace, workers: int, token: str) -> AppSpec:
    """Return the spec of our service, run by ``ml-service serve``."""
    port = free_port()
    run_dir = space.root / f"run-{port}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env(
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
    return AppSpec("ours", argv, env, ROOT, port, authorization=f"Bearer {token}")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Return status and body of ``GET url`` on a fresh connection (status 0 on failure)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, _, port = host.partition(":")
    connection = http.client.HTTPConnection(hostname, int(port), timeout=timeout)
    try:
        connection.request("GET", "/" + rest)
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
            status, self.ready_body = http_get(self.spec.url("/ready"))
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


def read_proc_file(path: Path) -> str:
    """Return the text of a ``/proc`` file, empty when it is gone."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def read_proc(pid: int, name: str) -> str:
    """Return ``/proc/<pid>/<name>``, empty when the process is gone."""
    return read_proc_file(Path(f"/proc/{pid}/{name}"))


def children(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (scanning ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_proc(int(entry.name), "stat")
        # Fields after the parenthesised command: state ppid ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return sorted(found)


def gunicorn_master(pid: int) -> int:
    """Return the gunicorn master at or below ``pid`` (a wrapper may not exec)."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        if b"gunicorn" in read_proc(current, "cmdline").encode():
            return current
        queue.extend(children(current))
    return pid


@dataclass(frozen=True)
class Memory:
    """Resident memory of a gunicorn master and its workers, in KiB."""

    master_kib: int
    workers_kib: tuple[int, ...]

    def line(self) -> str:
        """One printable line."""
        each = ", ".join(f"{kib / 1024:.0f}" for kib in self.workers_kib) or "none"
        total = (self.master_kib + sum(self.workers_kib)) / 1024
        return f"master {self.master_kib / 1024:.0f} MiB, workers {each} MiB, total {total:.0f} MiB"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_pids(server: Server) -> list[int]:
    """Return the gunicorn master of ``server`` and its children."""
    assert server.process is not None
    master = gunicorn_master(server.process.pid)
    return [master, *children(master)]


def cpu_sample(pids: Iterable[int]) -> CpuSample:
    """Sample the machine's CPU time and the benchmark's.

    The benchmark's is that of ``pids`` plus this process and its waited-for children
    (wrk runs that have finished).
    """
    busy, total = parse_proc_stat_cpu(read_proc_file(Path("/proc/stat")))
    ticks = sum(parse_pid_cpu_ticks(read_proc(pid, "stat")) for pid in pids)
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    return CpuSample(busy / _CLOCK_TICKS, total / _CLOCK_TICKS, ticks / _CLOCK_TICKS + mine)


def measure_memory(server: Server) -> Memory:
    """Return the VmRSS of the server's gunicorn master and of each of its children."""
    assert server.process is not None
    master = gunicorn_master(server.process.pid)
    workers = tuple(parse_vmrss_kib(read_proc(pid, "status")) for pid in children(master))
    return Memory(parse_vmrss_kib(read_proc(master, "status")), workers)


# ---------------------------------------------------------------------------------------
# Load: wrk, or the built-in asyncio generator.
# ---------------------------------------------------------------------------------------


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
                    reader, writer = await asyncio.open_connection(HOST, port)
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


def run_python_load(load: Load, port: int, authorization: str, duration: int) -> LoadResult:
    """Drive ``POST /api/v1/score`` from this process with asyncio keep-alive connections."""
    request = build_request(port, SCORE_PATH, load.body_file.read_bytes(), authorization)
    start = time.perf_counter()
    latencies, non_2xx, errors = asyncio.run(
        _drive(port, request, load.connections, float(duration))
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

    With ``server``, also measure how much CPU others used meanwhile (``other_cpu``).
    """
    pids = server_pids(server) if server is not None else []
    before = cpu_sample(pids)
    if load.generator == "wrk":
        result = run_wrk(load, spec.url(SCORE_PATH), spec.authorization, duration)
    else:
        result = run_python_load(load, spec.port, spec.authorization, duration)
    if server is None:
        return result
    return replace(result, other_cpu=other_cpu_share(before, cpu_sample(pids)))


# ---------------------------------------------------------------------------------------
# The reload window.
# ---------------------------------------------------------------------------------------


@dataclass
class ReloadLog:
    """What the reload calls returned."""

    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    versions_seen: Counter[str] = field(default_factory=Counter)


def post_json(port: int, path: str, body: bytes, authorization: str) -> tuple[int, bytes]:
    """POST ``body`` on a fresh connection; return status and body (0 on failure)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        return 0, str(error).encode()
    finally:
        connection.close()


class Reloader(threading.Thread):
    """Posts reloads at a fixed cadence, alternating the auto version, until stopped.

    After each reload it scores the lead once and records the ``model_version`` it got,
    as a sanity check that reloads do switch versions.
    """

    def __init__(self, spec: AppSpec, admin: str, score_body: bytes) -> None:
        super().__init__(name="reloader", daemon=True)
        self.spec = spec
        self.admin = f"Bearer {admin}"
        self.score_body = score_body
        self.stopping = threading.Event()
        self.log = ReloadLog()

    def run(self) -> None:
        """Reload every ``RELOAD_INTERVAL_S`` until ``stopping`` is set."""
        start = time.monotonic()
        count = 0
        while not self.stopping.wait(
            max(0.0, start + count * RELOAD_INTERVAL_S - time.monotonic())
        ):
            version = RELOAD_VERSIONS[count % 2]
            count += 1
            body = json.dumps({"versions": {"auto": version}}).encode()
            began = time.perf_counter()
            status, answer = post_json(self.spec.port, RELOAD_PATH, body, self.admin)
            self.log.seconds.append(time.perf_counter() - began)
            self.log.statuses[status] += 1
            if not 200 <= status < 300:
                self.log.failures.append(f"{version}: {status} {answer[:200]!r}")
                continue
            status, answer = post_json(
                self.spec.port, SCORE_PATH, self.score_body, self.spec.authorization
            )
            try:
                self.log.versions_seen[str(json.loads(answer)["model_version"])] += 1
            except (ValueError, KeyError, TypeError):
                self.log.versions_seen[f"status {status}"] += 1


# ---------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------


def progress(message: str) -> None:
    """Print a progress message to standard error."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class AppRun:
    """What was measured for one app."""

    result: LoadResult
    memory: Memory
    ready: str = ""
    answer: str = ""
    reload_window: LoadResult | None = None
    reload_log: ReloadLog | None = None
    memory_after_reloads: Memory | None = None


def bench_app(
    spec: AppSpec,
    load: Load,
    workdir: Path,
    workers: int,
    warmup: int,
    reload_admin: str | None = None,
) -> AppRun:
    """Start one app, warm it up, measure it (and its reload window), and stop it."""
    progress(f"{spec.label}: starting on port {spec.port}")
    with running(spec, workdir, workers) as server:
        status, body = post_json(
            spec.port, SCORE_PATH, load.body_file.read_bytes(), spec.authorization
        )
        answer = f"{status} {body.decode('utf-8', errors='replace')}"
        if warmup > 0:
            run_load(load, spec, warmup)
        progress(f"{spec.label}: measuring {load.duration} s")
        result = run_load(load, spec, load.duration, server)
        ready = server.ready_body.decode("utf-8", errors="replace")
        run = AppRun(result, measure_memory(server), ready, answer)
        if reload_admin is not None:
            progress(f"{spec.label}: measuring {load.duration} s with reloads")
            reloader = Reloader(spec, reload_admin, load.body_file.read_bytes())
            reloader.start()
            try:
                run.reload_window = run_load(load, spec, load.duration, server)
            finally:
                reloader.stopping.set()
                reloader.join(15)
            run.reload_log = reloader.log
            run.memory_after_reloads = measure_memory(server)
        return run


def pick_median(runs: Sequence[AppRun]) -> AppRun:
    """Return the run with the median throughput (the lower middle one for even counts)."""
    ordered = sorted(runs, key=lambda run: run.result.rps)
    return ordered[(len(ordered) - 1) // 2]


def table_row(label: str, result: LoadResult) -> str:
    """One row of the results table."""
    other = f"{result.other_cpu:.0%}" if result.other_cpu == result.other_cpu else "?"
    return (
        f"{label:<32}{result.rps:>9.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.non_2xx:>9}{sum(result.socket_errors.values()):>9}{other:>11}"
    )


def print_report(
    runs: Mapping[str, AppRun],
    reload_run: AppRun | None,
    args: argparse.Namespace,
    generator: str,
) -> None:
    """Print the results table, the reload window, answers and memory."""
    if generator == "wrk":
        how = f"wrk -t{min(2, args.connections)} -c{args.connections} -d{args.duration}s --latency"
    else:
        how = f"built-in asyncio generator, {args.connections} connections, {args.duration} s"
    print(
        f"\n{args.workers} gunicorn workers per app, {how}, {args.warmup} s warm-up; "
        f"auto v{SERVED_VERSION}, lead {LEAD_FILE.relative_to(ROOT)}\n"
    )
    print(
        f"{'app':<32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'sock err':>9}"
        f"{'other CPU':>11}"
    )
    for key, run in runs.items():
        print(table_row(APP_LABELS[key], run.result))
    if reload_run is not None and reload_run.reload_window and reload_run.reload_log:
        log = reload_run.reload_log
        print(table_row(f"ours, reloads every {RELOAD_INTERVAL_S:g} s", reload_run.reload_window))
        statuses = ", ".join(f"{n}x {s or 'no answer'}" for s, n in sorted(log.statuses.items()))
        slowest = max(log.seconds, default=0.0) * 1e3
        median = percentile(sorted(log.seconds), 50) * 1e3
        print(
            f"\nreload window: reload statuses {statuses or 'none'} "
            f"(median {median:.0f} ms, slowest {slowest:.0f} ms); versions scored right after "
            f"a reload: {dict(sorted(log.versions_seen.items())) or 'none'}"
        )
        for failure in log.failures[:5]:
            print(f"  reload failed: {failure}")
    print(
        "\nother CPU: share of the machine's CPU time used outside this benchmark's processes "
        "during the run\n(other processes, interrupts, hypervisor steal); above ~10% a neighbour "
        "distorted that row."
    )
    print("\nfirst answer of each app (the same lead, the same auto model):")
    for key, run in runs.items():
        print(f"  {APP_LABELS[key]:<32}{run.answer[:160]}")
    ours = runs.get("ours")
    if ours is not None:
        print(f"\nours, GET /ready at start: {ours.ready}")
    print("\nresident memory (VmRSS) after the measured run:")
    for key, run in runs.items():
        print(f"  {APP_LABELS[key]:<32}{run.memory.line()}")
    if reload_run is not None and reload_run.memory_after_reloads is not None:
        print(f"  {'ours, after the reload window':<32}{reload_run.memory_after_reloads.line()}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Goals: ours/ceiling >= 0.6, ours/seed >= 8, our p99 <= 5 ms, no errors.",
    )
    cores = len(os.sched_getaffinity(0))
    parser.add_argument(
        "--workers", type=int, default=cores, help=f"gunicorn workers per app (default {cores})"
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds of each measured run (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of warm-up per app (default 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections (default 32)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the apps in turn this many times and report each app's median round "
        "(default 1; the reload window runs in the last round)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument(
        "--skip-reload", action="store_true", help="skip the reload window of our service"
    )
    parser.add_argument(
        "--apps",
        default=",".join(APP_KEYS),
        help="comma-separated apps to run, in this order (default ceiling,seed,ours)",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or the built-in asyncio one",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep keys, data and models here and reuse them next time (default: a temp dir)",
    )
    parser.add_argument("--verbose", action="store_true", help="echo wrk's output to stderr")
    args = parser.parse_args(argv)
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = sorted(set(apps) - set(APP_KEYS))
    if unknown:
        parser.error(f"unknown app(s) {', '.join(unknown)}; choose from {', '.join(APP_KEYS)}")
    if min(args.workers, args.duration, args.connections, args.rounds) < 1 or args.warmup < 0:
        parser.error("--workers, --duration, --connections and --rounds must be positive")
    args.apps = apps
    return args


def _exit_on_signal(signum: int, frame: object) -> None:
    # Raising here unwinds the main thread through every ``finally``, so servers
    # started so far are stopped (their process groups killed) on SIGTERM and SIGHUP.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
        if generator == "python":
            progress("wrk not found: using the built-in asyncio load generator (slower)")
    elif generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed")
    apps: list[str] = args.apps
    if "ours" in apps and not (
        command_works([ml_service(), "serve", "--help"])
        and command_works([ml_service(), "auth", "--help"])
    ):
        progress("`ml-service serve` or `ml-service auth` is not available: skipping ours")
        apps = [a for a in apps if a != "ours"]

    rounds: dict[str, list[AppRun]] = {key: [] for key in apps}
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        else:
            root = args.workdir.resolve()
            root.mkdir(parents=True, exist_ok=True)
        space = Workspace(root)
        prepare_models(space, VERTICALS if "ours" in apps else ("auto",))
        tokens = mint_tokens(space) if "ours" in apps else ("", "")
        lead = json.loads(LEAD_FILE.read_text(encoding="utf-8"))
        body_file = root / "score-body.json"
        body_file.write_text(json.dumps({"vertical": "auto", "lead_data": lead}), "utf-8")
        load = Load(body_file, args.duration, args.connections, 2, generator, args.verbose)
        seed_dir = str(space.models / "auto" / f"v{SERVED_VERSION}")
        for number in range(args.rounds):
            for key in apps:
                reload_admin = None
                if key == "ceiling":
                    spec = baseline_spec(key, "ceiling_app", args.workers)
                elif key == "seed":
                    spec = baseline_spec(key, "seed_app", args.workers, SEED_MODEL_DIR=seed_dir)
                else:
                    activate_served_version(space)
                    spec = ours_spec(space, args.workers, tokens[0])
                    if number == args.rounds - 1 and not args.skip_reload:
                        reload_admin = tokens[1]
                rounds[key].append(
                    bench_app(spec, load, root, args.workers, args.warmup, reload_admin)
                )

    runs = {key: pick_median(values) for key, values in rounds.items() if values}
    # The reload window runs in the last round, whichever round is the median one.
    reload_run = rounds["ours"][-1] if rounds.get("ours") else None
    print_report(runs, reload_run, args, generator)
    if args.rounds > 1:
        print("\nreq/s (p99 ms) by round; the table shows each app's median round:")
        for key, values in rounds.items():
            figures = ", ".join(f"{r.result.rps:.0f} ({r.result.p99_ms:.1f})" for r in values)
            print(f"  {APP_LABELS[key]:<32}{figures}")
    ours = runs.get("ours")
    goals = evaluate_goals(
        runs["ceiling"].result if "ceiling" in runs else None,
        runs["seed"].result if "seed" in runs else None,
        ours.result if ours else None,
        reload_run.reload_window if reload_run else None,
    )
    print()
    for goal in goals:
        print(goal.line())
    passed = all(goal.met for goal in goals)
    print("goals met" if passed else "GOAL MISSED")
    return 0 if passed or not args.check else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        progress("interrupted: servers stopped")
        sys.exit(130)
