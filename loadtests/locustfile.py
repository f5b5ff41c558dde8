"""Locust traffic mix against the ML Service (run it through ``loadtests/run.py``).

Two kinds of user:

- ``ScoringUser`` (all but one of the users): each request is, by the weights of
  ``LOADTEST_TASKS`` (default ``score=80,batch=5,invalid=2,feedback=12,feedback_batch=1``),
  a single score, a batch of 10-50 leads, an invalid lead (about 2%), one outcome or a
  batch of outcomes of leads it scored earlier. Leads come from the training data's
  synthetic generator, their vertical drawn by ``LOADTEST_VERTICALS`` (default
  ``auto=50,home=25,health=15,life=10``); every scored lead carries a unique ``lead_id``
  so its outcome (the generator's truth) can be reported.
- ``AdminUser`` (exactly one): ``POST /api/v1/models/reload`` every
  ``LOADTEST_RELOAD_SECONDS`` (default 10; the first after half of that), with no body or
  cycling through ``LOADTEST_RELOAD_VERSIONS``.

Every request is judged with ``catch_response`` by ``loadtests.checks``: the expected
status and a well-formed body pass, anything else fails (an invalid lead passes only with
its expected 4xx and error type). All settings: ``loadtests/mix.py``; tokens:
``loadtests/tokens.py``.

When ``LOADTEST_REPORT_PREFIX`` is set (the runner sets it), the CSV reports are written
at the very end, from locust's final figures: ``--csv`` writes them every second while
the run goes on and not again at the end, so they miss the last second's requests (and
any failure in it). Same files, same layout (``<prefix>_stats.csv``, ``_failures.csv``,
``_exceptions.csv``), by locust's own ``StatsCSV``.

By hand, with the web UI: ``.venv/bin/locust -f loadtests/locustfile.py --host URL``
from the repository root (``PYTHONPATH=.``).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, between, constant, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from engine.config import load_config
from engine.settings import DEFAULT_CONFIG
from loadtests import checks, mix, tokens
from loadtests.leads import INVALID_CASES, LeadPool
from loadtests.outcomes import OutcomeQueue

SETTINGS = mix.MixSettings.from_env(os.environ)
CONFIG = load_config(DEFAULT_CONFIG)
POOL = LeadPool(SETTINGS.verticals, SETTINGS.pool, SETTINGS.seed, CONFIG)
TOKENS = tokens.from_env(os.environ)
# Lead ids must be unique over every run against the same monitoring store (a repeated
# id gets a 409 for its outcome): a random prefix per locust process, a counter per user.
RUN_ID = os.urandom(4).hex()
_USER_NUMBERS = itertools.count()
JSON = {"Content-Type": "application/json"}
_ENVIRONMENT: list[Environment] = []


# Locust's own API is partly untyped (event hooks, success/failure): ignored at the calls.
@events.init.add_listener  # type: ignore[untyped-decorator]
def _keep_environment(environment: Environment, **_: Any) -> None:
    _ENVIRONMENT.append(environment)


@events.quit.add_listener  # type: ignore[untyped-decorator]
def _write_final_reports(exit_code: int, **_: Any) -> None:
    """Write the CSV reports from the final figures (fired after the users stopped)."""
    prefix = os.environ.get(mix.REPORT_PREFIX_ENV)
    if not prefix or not _ENVIRONMENT:
        return
    report = StatsCSV(_ENVIRONMENT[0], PERCENTILES_TO_REPORT)
    for suffix, write in (
        ("_stats.csv", report.requests_csv),
        ("_failures.csv", report.failures_csv),
        ("_exceptions.csv", report.exceptions_csv),
    ):
        with open(prefix + suffix, "w", newline="", encoding="utf-8") as handle:  # noqa: PTH123
            write(csv.writer(handle))


def _judge(response: ResponseContextManager, message: str | None) -> None:
    if message is None:
        response.success()  # type: ignore[no-untyped-call]
    else:
        response.failure(message)  # type: ignore[no-untyped-call]


def _failed(response: ResponseContextManager) -> str | None:
    """The failure of a request that got no HTTP answer at all (None if it got one)."""
    if response.status_code:
        return None
    return checks.wrong_status(0, b"", getattr(response, "error", None))


class ScoringUser(FastHttpUser):
    """A lead buyer's integration: scores leads and later reports their outcomes."""

    wait_time = between(*SETTINGS.wait)
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        """Give the user its own random stream, lead-id prefix and outcome queue."""
        number = next(_USER_NUMBERS)
        self.rng = random.Random(f"{SETTINGS.seed}-{RUN_ID}-{number}")
        self.prefix = f"lt-{RUN_ID}-{number}-"
        self.ids = itertools.count()
        self.outcomes = OutcomeQueue(SETTINGS.feedback_delay)
        self.headers = {**JSON, "Authorization": f"Bearer {TOKENS.scorer}"}

    def _lead_id(self) -> str:
        return f"{self.prefix}{next(self.ids)}"

    def _post(self, path: str, body: Any, name: str) -> ResponseContextManager:
        data = body.decode() if isinstance(body, bytes) else json.dumps(body)  # ASCII JSON
        return self.client.post(
            path, data=data, headers=self.headers, name=name, catch_response=True
        )

    def score(self) -> None:
        """Score one lead."""
        lead = POOL.draw(self.rng)
        lead_id = self._lead_id()
        body = {"vertical": lead.vertical, "lead_data": lead.data, "lead_id": lead_id}
        with self._post(mix.SCORE_PATH, body, mix.score_name(lead.vertical)) as response:
            message = _failed(response) or checks.check_score(
                response.status_code, response.content or b"", lead.vertical, lead_id
            )
            _judge(response, message)
        if message is None:
            self.outcomes.scored(lead_id, lead.converted, time.monotonic())

    def batch(self) -> None:
        """Score a batch of leads of one vertical."""
        vertical = POOL.vertical(self.rng)
        leads = [
            POOL.draw(self.rng, vertical) for _ in range(self.rng.randint(*SETTINGS.batch_size))
        ]
        ids = [self._lead_id() for _ in leads]
        body = {
            "vertical": vertical,
            "leads": [
                {"lead_data": lead.data, "lead_id": lead_id}
                for lead, lead_id in zip(leads, ids, strict=True)
            ],
        }
        with self._post(mix.BATCH_PATH, body, mix.batch_name(vertical)) as response:
            message = _failed(response) or checks.check_batch(
                response.status_code, response.content or b"", vertical, ids
            )
            _judge(response, message)
        if message is None:
            now = time.monotonic()
            for lead, lead_id in zip(leads, ids, strict=True):
                self.outcomes.scored(lead_id, lead.converted, now)

    def invalid(self) -> None:
        """Send a lead the service must refuse with its case's 4xx."""
        case = self.rng.choice(INVALID_CASES)
        body = case.body(POOL.draw(self.rng), CONFIG)
        with self._post(mix.SCORE_PATH, body, mix.invalid_name(case.name)) as response:
            _judge(
                response,
                _failed(response)
                or checks.check_invalid(response.status_code, response.content or b"", case),
            )

    def feedback(self) -> None:
        """Report the outcome of one lead scored earlier (nothing if none is due)."""
        due = self.outcomes.take(1, time.monotonic())
        if not due:
            return
        lead = due[0]
        body = {"lead_id": lead.lead_id, "converted": lead.converted}
        with self._post(mix.FEEDBACK_PATH, body, mix.FEEDBACK_PATH) as response:
            status, content = response.status_code, response.content or b""
            if SETTINGS.expect_lost_leads and checks.lead_lost(status, content):
                response.request_meta["name"] = mix.LOST_NAME  # counted apart, not failed
                _judge(response, None)
                return
            _judge(
                response,
                _failed(response) or checks.check_feedback(status, content, lead.lead_id),
            )

    def feedback_batch(self) -> None:
        """Report the outcomes of up to 50 leads scored earlier (nothing if none is due)."""
        due = self.outcomes.take(self.rng.randint(2, 50), time.monotonic())
        if not due:
            return
        body = {"outcomes": [{"lead_id": d.lead_id, "converted": d.converted} for d in due]}
        with self._post(mix.FEEDBACK_BATCH_PATH, body, mix.FEEDBACK_BATCH_PATH) as response:
            message, lost = checks.check_feedback_batch(
                response.status_code,
                response.content or b"",
                [d.lead_id for d in due],
                SETTINGS.expect_lost_leads,
            )
            if message is None and lost:
                response.request_meta["name"] = mix.LOST_NAME
            _judge(response, _failed(response) or message)

    # Locust takes a dict of task -> weight too (its annotation says list only).
    tasks = {  # type: ignore[assignment]  # noqa: RUF012
        method: int(SETTINGS.tasks[kind])
        for kind, method in {
            "score": score,
            "batch": batch,
            "invalid": invalid,
            "feedback": feedback,
            "feedback_batch": feedback_batch,
        }.items()
        if SETTINGS.tasks.get(kind, 0) > 0
    }


class AdminUser(FastHttpUser):
    """The operator: reloads the models every ``LOADTEST_RELOAD_SECONDS``."""

    fixed_count = 1
    wait_time = constant(SETTINGS.reload_seconds)
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        """Wait half an interval: the first reload lands under load, not at spawn."""
        self.versions = itertools.cycle(SETTINGS.reload_versions or [None])
        self.headers = {**JSON, "Authorization": f"Bearer {TOKENS.admin}"}
        time.sleep(SETTINGS.reload_seconds / 2)  # gevent's sleep: locust patched time

    @task
    def reload(self) -> None:
        """Reload every worker (to the next versions of the cycle, if any)."""
        versions = next(self.versions)
        data = json.dumps({"versions": versions}) if versions else ""
        with self.client.post(
            mix.RELOAD_PATH,
            data=data,
            headers=self.headers,
            name=mix.RELOAD_PATH,
            catch_response=True,
        ) as response:
            _judge(
                response,
                _failed(response)
                or checks.check_reload(response.status_code, response.content or b""),
            )
