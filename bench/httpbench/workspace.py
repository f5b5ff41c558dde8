"""The benchmark's workspace: signing keys, training data, models, JWTs, a TLS certificate.

Everything is made with the ``ml-service`` command of this interpreter's environment,
and what already exists in the workspace is reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from httpbench.common import DEFAULT_CONFIG, RELOAD_VERSIONS, SERVED_VERSION, progress

TRAINING_ROWS = 20000


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

    @property
    def tls_cert(self) -> Path:
        """The development TLS certificate (``ml-service tls dev-cert``)."""
        return self.root / "tls" / "tls.crt"

    @property
    def tls_key(self) -> Path:
        """Its private key."""
        return self.root / "tls" / "tls.key"

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


def open_workspace(stack: contextlib.ExitStack, workdir: Path | None, prefix: str) -> Workspace:
    """The workspace at ``workdir`` (created if missing), or in a temporary directory.

    The temporary directory (named ``prefix...``) is removed when ``stack`` closes.
    """
    if workdir is None:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    else:
        root = workdir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root)


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


def make_tls_certificate(space: Workspace) -> None:
    """Create the development TLS certificate for 127.0.0.1 (kept when it exists)."""
    if not (space.tls_key.exists() and space.tls_cert.exists()):
        directory = str(space.tls_key.parent)
        run_command([ml_service(), "tls", "dev-cert", "--dir", directory, "--force"])


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
