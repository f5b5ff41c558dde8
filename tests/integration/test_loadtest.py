"""The locust mix and the soak against a real service (short versions of `make loadtest/soak`).

Locust runs in its own process (it monkey-patches with gevent), started by the runner
code of ``loadtests/``; this process only reads its reports, the service's metrics and
``/proc``. The mix must make every kind of request with no unexpected failure, and the
service's own request counters must agree with what locust says it sent; a run with a
wrong token must fail. The soak kills one worker and reloads twice in about 15 s.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from loadtests import mix
from loadtests.locust_process import REPO
from loadtests.mix import MixSettings
from loadtests.soak import Bounds, Plan, Target, run_soak
from loadtests.thresholds import read_results
from loadtests.tokens import ADMIN_ENV, SCORER_ENV, Tokens
from tests.integration.conftest import service_over_copy
from tests.integration.service import metric_value

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def locust_installed():
    if importlib.util.find_spec("locust") is None:
        message = "locust is not installed: pip install -e '.[dev]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message} (CI=true: the dev extra must install it)")
        pytest.skip(message)


def run_cli(args, scorer, admin, timeout=180):
    env = {**os.environ, SCORER_ENV: scorer, ADMIN_ENV: admin}
    return subprocess.run(
        [sys.executable, "-m", "loadtests.run", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served(text, route, status_class):
    try:
        return metric_value(
            text, "ml_http_request_duration_seconds_count", route=route, status_class=status_class
        )
    except KeyError:
        return 0.0


def test_the_mix_runs_clean_and_the_service_counts_what_locust_sent(store, tmp_path):
    server = service_over_copy(store, tmp_path / "service")
    out = tmp_path / "reports"
    try:
        url = f"http://127.0.0.1:{server.port}"
        args = ["--host", url, "--duration", "20", "--users", "10", "--reload-every", "5"]
        done = run_cli([*args, "--out", str(out)], store.scorer, store.admin)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "PASS" in done.stdout and "requests/s" in done.stdout
        results = read_results(out / "loadtest")
        kinds = {kind: results.requests_of(kind) for kind in mix.ALL_KINDS}
        assert all(kinds.values()), kinds
        assert results.total.failures == 0 and not results.exceptions
        singles = {r.name for r in results.rows if r.kind == "score" and r.requests}
        assert singles == {mix.score_name(v) for v in ("auto", "home", "health", "life")}
        assert (out / "loadtest.html").stat().st_size > 10_000

        # What the service counted itself (its counters reach /metrics within a tick).
        expected = {
            (mix.SCORE_PATH, "2xx"): kinds["score"],
            (mix.SCORE_PATH, "4xx"): kinds["invalid"],
            (mix.BATCH_PATH, "2xx"): kinds["batch"],
            (mix.FEEDBACK_PATH, "2xx"): kinds["feedback"],
            (mix.FEEDBACK_BATCH_PATH, "2xx"): kinds["feedback_batch"],
            (mix.RELOAD_PATH, "2xx"): kinds["reload"],
            (mix.SCORE_PATH, "5xx"): 0,
        }
        deadline = time.monotonic() + 10
        while True:
            text = server.metrics()
            seen = {key: served(text, *key) for key in expected}
            if seen == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert seen == expected
    finally:
        server.stop()


def test_the_runner_fails_a_run_with_unexpected_answers(store, tmp_path):
    server = service_over_copy(store, tmp_path / "service")
    try:
        url = f"http://127.0.0.1:{server.port}"
        args = ["--host", url, "--duration", "4", "--users", "3", "--reload-every", "0"]
        # A viewer may not score: every scoring request is answered 403.
        done = run_cli([*args, "--out", str(tmp_path / "r")], store.viewer, store.admin)
    finally:
        server.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unexpected failures of /api/v1/score [auto]" in done.stdout
    assert "unexpected status 403" in done.stdout


def test_a_short_soak_survives_reloads_and_a_worker_kill(store, tmp_path):
    server = service_over_copy(store, tmp_path / "service")
    try:
        target = Target(
            f"http://127.0.0.1:{server.port}", server.pid, server.run_dir, server.metrics_port
        )
        settings = MixSettings(reload_versions=[{"auto": "1.1.0"}, {"auto": "1.0.0"}])
        plan = Plan(seconds=12, warmup=3, reload_every=4, kill_every=6, settle=3)
        report = run_soak(
            target,
            Tokens(store.scorer, store.admin),
            tmp_path / "soak",
            plan,
            settings,
            users=8,
            workers=server.workers,
            # Memory is `make soak`'s to judge: 12 s after a 3 s warm-up is mostly warm-up.
            # Descriptors keep their real bounds.
            bounds=Bounds(master_rss_mib=64, worker_rss_mib=64),
        )
    finally:
        server.stop()
    assert report.problems == [], "\n".join(report.problems + report.lines())
    (kill,) = report.kills
    assert kill.slot == 1 and kill.replacement not in (None, kill.pid)
    assert report.start.workers[1].pid == kill.pid
    assert report.end.workers[1].pid == kill.replacement
    assert report.end.workers[0].pid == report.start.workers[0].pid
    assert report.results.requests_of(mix.RELOAD) >= 2
    assert report.scrapes >= 2
