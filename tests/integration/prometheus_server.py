"""A real Prometheus server for integration tests: ``/usr/bin/prometheus`` as a subprocess.

``PrometheusServer`` writes a ``prometheus.yml`` (one scrape job, ``ml-service``, the job
name the alert rules expect; static targets; the given rule files), starts the server
on a free loopback port with its own TSDB directory, waits for ``/-/ready`` and answers
queries through Prometheus's HTTP API (``/api/v1/...``) with the standard library only.

Every error it raises carries the tail of the server's log (``log_path``), so a failed
scrape, a rule file that did not load or a bad query explains itself. A PromQL error
(``status`` other than ``success``) raises ``PrometheusError`` with Prometheus's own
message, e.g. ``parse error at char 5: ...``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tests.integration.service import free_port
from tests.system_tools import require_tool

T = TypeVar("T")

JOB_NAME = "ml-service"  # the rules select on job="ml-service" (deploy/prometheus/alerts.yml)


class PrometheusError(RuntimeError):
    """Prometheus answered with an error (``status != "success"``) or not at all."""


class PrometheusServer:
    """A Prometheus server scraping ``targets`` and evaluating ``rule_files``.

    Args:
        workdir: A directory of its own: the config, the TSDB and the log go there.
        targets: ``host:port`` of each target of the ``ml-service`` job (the service's
            ``METRICS_PORT``).
        rule_files: Recording and alerting rule files to load.
        scrape_interval: How often targets are scraped (Prometheus duration).
        evaluation_interval: How often rules are evaluated (Prometheus duration).
    """

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        rule_files: list[Path],
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
    ) -> None:
        self.workdir = workdir
        self.scrape_targets = list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.data_dir = workdir / "tsdb"
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The configuration written to ``prometheus.yml``."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                # The default timeout (10 s) is longer than a 1 s interval, which
                # Prometheus refuses; a scrape may take the whole interval.
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": JOB_NAME,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": self.scrape_targets}],
                }
            ],
        }

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write the config, start the server and wait until it is ready.

        Raises:
            PrometheusError: The server exited or was not ready within ``timeout``.
        """
        binary = require_tool("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no YAML writer needed, and no quoting surprises.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=info",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self.process.returncode}:\n"
                    + "\n".join(self.errors())
                    + f"\nfull log: {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the TSDB opens
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it does not exit within 10 s)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self, chars: int = 6000) -> str:
        """The tail of the server's log."""
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def errors(self) -> list[str]:
        """The log's ``level=error`` lines (a rule file that failed to load, ...)."""
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if "level=error" in line]

    # --- HTTP API -------------------------------------------------------------------

    def api(self, path: str, params: Iterable[tuple[str, str]] = ()) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``.

        Raises:
            PrometheusError: The answer's ``status`` is not ``success`` (Prometheus's
                ``errorType`` and ``error`` in the message) or the server is unreachable.
        """
        query = urllib.parse.urlencode(list(params))
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            # 400/422/503 carry the same JSON envelope with the error message.
            raw = exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"GET {url}: {exc}\n{self.log()}") from exc
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise PrometheusError(f"GET {url}: not JSON: {raw[:300]!r}") from exc
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET {url}: {body.get('errorType')}: {body.get('error')}"
                f"{self._params_note(params)}"
            )
        return body.get("data")

    @staticmethod
    def _params_note(params: Iterable[tuple[str, str]]) -> str:
        return "".join(f"\n  {k} = {v}" for k, v in params)

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Evaluate an instant query; return its samples (``metric``, ``value``).

        A scalar or string result comes back as one sample with an empty ``metric``.
        """
        params = [("query", expr)]
        if time is not None:
            params.append(("time", f"{time:.3f}"))
        data = self.api("query", params)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_range(
        self, expr: str, start: float, end: float, step: str = "1s"
    ) -> list[dict[str, Any]]:
        """Evaluate a range query; return its series (``metric``, ``values``)."""
        params = [
            ("query", expr),
            ("start", f"{start:.3f}"),
            ("end", f"{end:.3f}"),
            ("step", step),
        ]
        return list(self.api("query_range", params)["result"])

    def series(
        self, match: str | list[str], start: float | None = None, end: float | None = None
    ) -> list[dict[str, str]]:
        """The label sets of the series matching the selector(s)."""
        matchers = [match] if isinstance(match, str) else match
        params = [("match[]", m) for m in matchers]
        if start is not None:
            params.append(("start", f"{start:.3f}"))
        if end is not None:
            params.append(("end", f"{end:.3f}"))
        return list(self.api("series", params))

    def label_values(self, label: str, match: str | list[str] | None = None) -> list[str]:
        """The values of ``label``, over the series matching ``match`` if given.

        This is the call behind Grafana's ``label_values(metric, label)`` variables.
        """
        matchers = [] if match is None else [match] if isinstance(match, str) else match
        path = f"label/{urllib.parse.quote(label, safe='')}/values"
        return list(self.api(path, [("match[]", m) for m in matchers]))

    def alerts(self) -> list[dict[str, Any]]:
        """The active (pending and firing) alerts: ``labels``, ``state``, ``value``..."""
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        """The loaded rule groups, each with its ``rules`` (``health``, ``lastError``)."""
        return list(self.api("rules")["groups"])

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (``health``, ``lastError``, ``labels``...)."""
        return list(self.api("targets")["activeTargets"])

    def wait_for_evaluation(self, since: float, timeout: float = 30.0) -> None:
        """Wait until every rule group has been evaluated after ``since`` (Unix time).

        Rules evaluate on their own clock, not on scrapes: a recorded series or an alert
        reflects a scraped sample only from the first evaluation after that sample
        arrived. Call this with the time a query first showed the sample.

        Raises:
            TimeoutError: Some group was not evaluated since then within ``timeout``.
        """

        def evaluated() -> bool:
            groups = self.rules()
            return all(
                datetime.fromisoformat(g["lastEvaluation"]).timestamp() > since for g in groups
            )

        self.wait_for(evaluated, timeout, what=f"every rule group evaluated after {since}")

    def value(self, expr: str) -> float | None:
        """The single value of an instant query; None when it returns nothing.

        Raises:
            PrometheusError: The query failed or returned more than one sample.
        """
        samples = self.query(expr)
        if not samples:
            return None
        if len(samples) > 1:
            raise PrometheusError(f"{expr}: {len(samples)} samples, expected one: {samples}")
        return float(samples[0]["value"][1])

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 30.0,
        interval: float = 0.25,
        what: str = "condition",
    ) -> T:
        """Poll ``predicate`` until it returns a truthy value; return that value.

        A ``PrometheusError`` inside the predicate counts as "not yet" (a series that
        does not exist yet, a server still starting) until the deadline.

        Raises:
            TimeoutError: Not true within ``timeout``; the message gives the last value
                or error and the server's log.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                result = predicate()
                if result:
                    return result
                last = result
            except PrometheusError as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what}: not true after {timeout} s; last: {last!r}\n"
                    f"prometheus log ({self.log_path}):\n{self.log(3000)}"
                )
            time.sleep(interval)
