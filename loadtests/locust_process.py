"""Locust, headless, in its own process, and where its reports go.

Locust imports gevent, which monkey-patches the standard library (sockets, threads,
``time.sleep``) of the process it runs in; so it never runs in the runner's process (nor
in pytest's): ``LocustRun.start`` spawns ``python -m locust`` with the locustfile, the
mix settings and the tokens in its environment, from the repository root so that
``loadtests`` and ``engine`` import. Its reports and its own output go to ``out_dir``,
named after ``name``:

| file | what |
| --- | --- |
| ``<name>_stats.csv`` | requests, failures, response times and percentiles per request name |
| ``<name>_failures.csv`` | each failure message with its occurrences |
| ``<name>_exceptions.csv`` | errors raised inside a task (a broken load test) |
| ``<name>.html`` | locust's HTML report, with its charts over time (``--html``) |
| ``<name>-locust.log`` | locust's own output, ending with its summary tables |

The CSV files are locust's own layout, written by the locustfile once locust has stopped
(``LOADTEST_REPORT_PREFIX``), not by ``--csv``, whose last write can be a second old.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.mix import REPORT_PREFIX_ENV, MixSettings
from loadtests.thresholds import Results, read_results
from loadtests.tokens import Tokens

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Seconds locust may take beyond its run time: start-up (imports, the lead pool) and
# stopping its users (``--stop-timeout``).
STOP_TIMEOUT = 5
SLACK_SECONDS = 90.0


@dataclass(frozen=True)
class LocustRun:
    """One headless locust run (see the module docstring).

    ``users`` includes the one admin user that reloads (when ``reload`` is on), so
    ``users - 1`` score; ``spawn_rate`` users start per second.
    """

    host: str
    tokens: Tokens
    out_dir: Path
    seconds: float = 60.0
    users: int = 20
    spawn_rate: float = 10.0
    name: str = "loadtest"
    settings: MixSettings = field(default_factory=MixSettings)

    @property
    def prefix(self) -> Path:
        """The CSV reports are ``<prefix>_stats.csv`` and so on."""
        return self.out_dir / self.name

    @property
    def html(self) -> Path:
        """Locust's HTML report."""
        return self.out_dir / f"{self.name}.html"

    @property
    def log(self) -> Path:
        """Locust's own output."""
        return self.out_dir / f"{self.name}-locust.log"

    def command(self) -> list[str]:
        """The locust command line."""
        classes = ["ScoringUser", *(["AdminUser"] if self.settings.reload_seconds > 0 else [])]
        return [
            sys.executable, "-m", "locust",
            "-f", str(LOCUSTFILE),
            "--headless",
            "--host", self.host,
            "--users", str(self.users),
            "--spawn-rate", f"{self.spawn_rate:g}",
            "--run-time", f"{max(1, round(self.seconds))}s",
            "--stop-timeout", str(STOP_TIMEOUT),
            "--html", str(self.html),
            "--only-summary",
            # Our verdict reads the reports; locust's exit code then only says it ran.
            "--exit-code-on-error", "0",
            *classes,
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        """Locust's environment: ours, the mix settings, the tokens, no coverage."""
        env = {
            name: value
            for name, value in os.environ.items()
            # Under `make test` coverage follows every Python subprocess; locust is the
            # load generator, not code under test, and gevent's greenlets confuse a
            # tracer not configured for them.
            if not name.startswith("COVERAGE_")
        }
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        env["OMP_NUM_THREADS"] = "1"
        env[REPORT_PREFIX_ENV] = str(self.prefix)
        return {**env, **self.settings.to_env(), **self.tokens.to_env()}

    def start(self) -> subprocess.Popen[bytes]:
        """Start locust; its output goes to ``log``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob(f"{self.name}_*.csv"):
            stale.unlink()  # a report from an earlier run must never be read as this one's
        with self.log.open("wb") as log:
            return subprocess.Popen(
                self.command(), cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )

    def finish(self, process: subprocess.Popen[bytes]) -> Results:
        """Wait for locust to end and read its reports.

        Raises:
            RuntimeError: Locust failed or did not end in time (the message ends with
                its output).
        """
        try:
            code = process.wait(timeout=self.seconds + SLACK_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(f"locust did not end in time:\n{self._tail()}") from None
        if code != 0:
            raise RuntimeError(f"locust exited with {code}:\n{self._tail()}")
        return read_results(self.prefix)

    def run(self) -> Results:
        """Run locust to the end and read its reports."""
        return self.finish(self.start())

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
