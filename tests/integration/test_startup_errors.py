"""Start-up mistakes stop ``ml-service serve`` with one line on stderr, before any fork.

Each case starts the real CLI with a valid environment (the ``store`` fixture's models and
keys, free ports, its own run directory) but for one mistake, and checks: exit status 1,
stderr exactly one line that names the setting and its value and says what is wrong or
what to do, nothing on stdout, no traceback. The one line also shows that gunicorn never
started: it logs a line as soon as it does. The control case starts the same environment
without a mistake and reaches ``/ready``; gunicorn started by hand gets the same checks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.service import ServiceProcess, free_port

ML_SERVICE = str(Path(sys.executable).parent / "ml-service")
GUNICORN_CONF = str(Path(__file__).resolve().parents[2] / "gunicorn.conf.py")


@dataclass
class Mistake:
    """One bad setting: the environment it changes and what the one line must say."""

    env: dict[str, str]
    setting: str  # the line starts "error: <setting>"
    value: str  # ... names the value
    says: str  # ... and contains this (the problem or the fix)


def base_env(store, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **store.env(),
        "BIND": f"127.0.0.1:{free_port()}",
        "METRICS_PORT": str(free_port()),
        "RUN_DIR": str(tmp_path / "run"),
        "WORKERS": "1",
        "LOG_LEVEL": "info",
        **extra,
    }


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The timeout only bounds a hang (a mistake that started the service after all).
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([ML_SERVICE, "serve", *args], env)


@contextmanager
def listening() -> Iterator[int]:
    """A port that something else already listens on (a socket of this test)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        yield int(busy.getsockname()[1])


def assert_one_line(done: subprocess.CompletedProcess[str], mistake: Mistake) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode == 1, output
    assert done.stdout == "", output
    lines = done.stderr.splitlines()
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith(f"error: {mistake.setting}"), line
    assert mistake.value in line, line
    assert mistake.says in line, line


def mistakes(tmp: Path) -> dict[str, Mistake]:
    """Every file-and-value mistake, its files written under ``tmp``."""
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("verticals: [auto\n")
    no_pricing = tmp / "no-pricing.yaml"
    no_pricing.write_text("verticals:\n  auto:\n    feature_config: {numerical: [age]}\n")
    empty = tmp / "empty"
    empty.mkdir()
    not_a_key = tmp / "not-a-key"
    not_a_key.mkdir()
    (not_a_key / "k.pub").write_text("not a key\n")
    a_file = tmp / "a-file"
    a_file.write_text("")
    missing = str(tmp / "missing")
    fix_model_keys = "`ml-service keys generate --dir DIR` writes DIR/trusted"
    fix_token_keys = "`ml-service auth keygen --dir DIR` writes DIR/trusted"
    return {
        "config-missing": Mistake(
            {"CONFIG_PATH": missing}, "CONFIG_PATH", missing, "cannot read it"
        ),
        "config-not-yaml": Mistake(
            {"CONFIG_PATH": str(bad_yaml)}, "CONFIG_PATH", str(bad_yaml), "not valid YAML at line"
        ),
        "config-breaks-a-rule": Mistake(
            {"CONFIG_PATH": str(no_pricing)},
            "CONFIG_PATH",
            str(no_pricing),
            "missing required field `pricing`",
        ),
        "model-keys-missing": Mistake(
            {"MODEL_TRUSTED_KEYS": missing}, "MODEL_TRUSTED_KEYS", missing, fix_model_keys
        ),
        "model-keys-empty": Mistake(
            {"MODEL_TRUSTED_KEYS": str(empty)},
            "MODEL_TRUSTED_KEYS",
            str(empty),
            "no trusted public keys",
        ),
        "token-keys-missing": Mistake(
            {"JWT_PUBLIC_KEYS": missing}, "JWT_PUBLIC_KEYS", missing, fix_token_keys
        ),
        "token-key-malformed": Mistake(
            {"JWT_PUBLIC_KEYS": str(not_a_key)}, "JWT_PUBLIC_KEYS", str(not_a_key), "k.pub"
        ),
        "model-store-missing": Mistake(
            {"MODEL_PATH": missing}, "MODEL_PATH", missing, "no such directory"
        ),
        "model-store-a-file": Mistake(
            {"MODEL_PATH": str(a_file)}, "MODEL_PATH", str(a_file), "not a directory"
        ),
        "run-dir-a-file": Mistake(
            {"RUN_DIR": str(a_file)}, "RUN_DIR", str(a_file), "cannot create it"
        ),
        "tls-file-missing": Mistake(
            {"TLS_CERT_FILE": missing, "TLS_KEY_FILE": missing},
            "TLS_CERT_FILE",
            missing,
            "is not a readable file",
        ),
        "tls-not-pem": Mistake(
            {"TLS_CERT_FILE": str(a_file), "TLS_KEY_FILE": str(a_file)},
            "TLS_CERT_FILE / TLS_KEY_FILE",
            str(a_file),
            "not a PEM certificate chain and private key",
        ),
        "log-level": Mistake({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "'loud'", "must be one of"),
        "bind-not-a-port": Mistake(
            {"BIND": "127.0.0.1:http"}, "BIND", "127.0.0.1:http", "use HOST:PORT"
        ),
    }


CASES = [
    "config-missing",
    "config-not-yaml",
    "config-breaks-a-rule",
    "model-keys-missing",
    "model-keys-empty",
    "token-keys-missing",
    "token-key-malformed",
    "model-store-missing",
    "model-store-a-file",
    "run-dir-a-file",
    "tls-file-missing",
    "tls-not-pem",
    "log-level",
    "bind-not-a-port",
]


def test_every_mistake_is_a_case(tmp_path):
    assert sorted(CASES) == sorted(mistakes(tmp_path))


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_is_one_line_and_exit_1(store, tmp_path, case):
    mistake = mistakes(tmp_path)[case]
    done = serve(base_env(store, tmp_path, **mistake.env))
    assert_one_line(done, mistake)


def test_the_service_port_in_use(store, tmp_path):
    with listening() as port:
        bind = f"127.0.0.1:{port}"
        done = serve(base_env(store, tmp_path, BIND=bind))
        assert_one_line(done, Mistake({}, "BIND", bind, f"port {port} is already in use"))
        # --bind is how BIND is given on the command line: the line names the variable.
        done = serve(base_env(store, tmp_path), "--bind", bind)
        assert_one_line(done, Mistake({}, "BIND", bind, "or set BIND to a free port"))


def test_the_metrics_port_in_use(store, tmp_path):
    with listening() as port:
        done = serve(base_env(store, tmp_path, METRICS_PORT=str(port)))
        assert_one_line(done, Mistake({}, "METRICS_PORT", str(port), "already in use"))
    assert not (tmp_path / "run" / "reload.state").exists()  # the master never got going


def test_the_metrics_port_is_the_service_port(store, tmp_path):
    port = free_port()
    env = base_env(store, tmp_path, BIND=f"127.0.0.1:{port}", METRICS_PORT=str(port))
    assert_one_line(
        serve(env), Mistake({}, "METRICS_PORT", str(port), "a port of its own (default 9090)")
    )


def test_the_control_environment_starts(store, tmp_path):
    """The environment the cases spoil, unspoilt, passes every check and serves."""
    server = ServiceProcess(store.env(), tmp_path, workers=1)
    try:
        server.start()
        assert server.client().request("GET", "/ready").status == 200
    finally:
        server.stop()


def test_gunicorn_started_by_hand_gets_the_same_line(store, tmp_path):
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF]
    # A bad variable stops the config file itself: nothing else is printed.
    done = run(gunicorn, base_env(store, tmp_path, LOG_LEVEL="loud"))
    assert_one_line(done, Mistake({}, "LOG_LEVEL", "'loud'", "must be one of"))
    # A missing key folder stops the master in on_starting, before it binds or forks:
    # gunicorn has logged that it is starting, then comes the line.
    missing = str(tmp_path / "missing")
    done = run(gunicorn, base_env(store, tmp_path, MODEL_TRUSTED_KEYS=missing))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and "Booting worker" not in output, output
    assert "Listening at" not in output, output
    line = done.stderr.splitlines()[-1]
    assert line.startswith(f"error: MODEL_TRUSTED_KEYS={missing}: no such file"), output
