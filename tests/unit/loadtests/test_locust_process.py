"""How locust is started: its command line and environment (it runs in its own process)."""

from __future__ import annotations

import sys

from loadtests.locust_process import REPO, LocustRun
from loadtests.mix import MixSettings
from loadtests.tokens import Tokens


def run(tmp_path, **settings):
    return LocustRun(
        "http://127.0.0.1:1",
        Tokens("s-token", "a-token"),
        tmp_path,
        seconds=20.4,
        users=5,
        settings=MixSettings(**settings),
    )


def test_command_runs_locust_headless_with_reports_in_the_out_dir(tmp_path):
    command = run(tmp_path).command()
    assert command[:3] == [sys.executable, "-m", "locust"]
    assert "--headless" in command
    assert command[command.index("--run-time") + 1] == "20s"
    assert command[command.index("--html") + 1] == str(tmp_path / "loadtest.html")
    assert command[-2:] == ["ScoringUser", "AdminUser"]
    assert run(tmp_path, reload_seconds=0).command()[-1] == "ScoringUser"


def test_environment_carries_settings_and_tokens_but_no_coverage(tmp_path, monkeypatch):
    monkeypatch.setenv("COVERAGE_PROCESS_CONFIG", "{}")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = run(tmp_path, seed=77).env()
    assert "COVERAGE_PROCESS_CONFIG" not in env
    assert env["PYTHONPATH"].split(":") == [str(REPO), "/elsewhere"]
    assert env["LOADTEST_SEED"] == "77" and env["LOADTEST_SCORER_TOKEN"] == "s-token"
    assert env["LOADTEST_REPORT_PREFIX"] == str(tmp_path / "loadtest")
    assert MixSettings.from_env(env) == MixSettings(seed=77)
