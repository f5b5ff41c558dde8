"""Fixtures for tests against a real running service."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.auth import issue_token
from engine.store import pointer
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.training.pipeline import train_vertical
from tests.integration.service import ServiceProcess


class Store:
    """A model store with every demo vertical, two auto versions, and token keys."""

    def __init__(self, root: Path, model_keys: Path, jwt_keys: Path) -> None:
        self.root = root
        self.model_keys = model_keys
        self.jwt_keys = jwt_keys
        jwt_key = SigningKey.load(jwt_keys / "jwt-signing.key")
        self.scorer = issue_token(jwt_key, "test-scorer", "scorer", 3600)
        self.admin = issue_token(jwt_key, "test-admin", "admin", 3600)
        self.viewer = issue_token(jwt_key, "test-viewer", "viewer", 3600)
        self.expired = issue_token(jwt_key, "old", "scorer", 60, now=1_000_000_000)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "MODEL_PATH": str(self.root),
            "MODEL_TRUSTED_KEYS": str(self.model_keys / "trusted"),
            "JWT_PUBLIC_KEYS": str(self.jwt_keys / "trusted"),
            **extra,
        }


@pytest.fixture(scope="session")
def store(tmp_path_factory, demo_config, synth_csv) -> Store:
    base = tmp_path_factory.mktemp("service")
    generate_keypair(base / "model-keys")
    generate_keypair(base / "jwt-keys", private_name="jwt-signing.key")
    key = SigningKey.load(base / "model-keys" / "model-signing.key")
    keyring = Keyring.load(base / "model-keys" / "trusted")
    root = base / "models"
    for vertical in ("home", "health", "life"):
        train_vertical(
            demo_config,
            vertical,
            synth_csv(vertical, 2500),
            "1.0.0",
            root,
            key,
            activate_with=keyring,
        )
    train_vertical(demo_config, "auto", synth_csv("auto", 2500, seed=21), "1.1.0", root, key)
    train_vertical(
        demo_config,
        "auto",
        synth_csv("auto", 2500, seed=22),
        "1.0.0",
        root,
        key,
        activate_with=keyring,
    )
    return Store(root, base / "model-keys", base / "jwt-keys")


@pytest.fixture(scope="session")
def service(store, tmp_path_factory):
    server = ServiceProcess(
        store.env(MAX_BODY_BYTES="8192", MAX_BATCH="50"), tmp_path_factory.mktemp("svc")
    )
    server.start()
    yield server
    server.stop()


def service_over_copy(store: Store, workdir: Path, **env: str) -> ServiceProcess:
    """A started service over a copy of the store, auto's active version reset to 1.0.0
    (for tests that change files or pointers; other tests move the shared CURRENT)."""
    models = workdir / "models"
    shutil.copytree(store.root, models)
    pointer.activate(models, "auto", "1.0.0", Keyring.load(store.model_keys / "trusted"))
    server = ServiceProcess(
        store.env(MODEL_PATH=str(models), MONITORING_DB=str(workdir / "monitoring.db"), **env),
        workdir,
    )
    server.models = models  # type: ignore[attr-defined]
    return server.start()
