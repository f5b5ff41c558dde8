"""The reload window: a thread reloading our service's auto model while it is loaded.

``Reloader`` switches auto between its two versions every ``RELOAD_INTERVAL_S`` and
records in a ``ReloadLog`` what each reload returned and which version scored next.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from httpbench.common import RELOAD_INTERVAL_S, RELOAD_PATH, RELOAD_VERSIONS, SCORE_PATH
from httpbench.servers import AppSpec


@dataclass
class ReloadLog:
    """What the reload calls returned."""

    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    versions_seen: Counter[str] = field(default_factory=Counter)


def post_json(spec: AppSpec, path: str, body: bytes, authorization: str) -> tuple[int, bytes]:
    """POST ``body`` on a fresh connection; return status and body (0 on failure)."""
    connection = spec.connection(timeout=10)
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
            status, answer = post_json(self.spec, RELOAD_PATH, body, self.admin)
            self.log.seconds.append(time.perf_counter() - began)
            self.log.statuses[status] += 1
            if not 200 <= status < 300:
                self.log.failures.append(f"{version}: {status} {answer[:200]!r}")
                continue
            status, answer = post_json(
                self.spec, SCORE_PATH, self.score_body, self.spec.authorization
            )
            try:
                self.log.versions_seen[str(json.loads(answer)["model_version"])] += 1
            except (ValueError, KeyError, TypeError):
                self.log.versions_seen[f"status {status}"] += 1
