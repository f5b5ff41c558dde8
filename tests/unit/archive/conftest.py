"""Fixtures for the lead archive: real keys, a real trained model, a real scorer."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.archive.keys import ArchiveKeys, create_key
from engine.scoring.model import load_model
from engine.scoring.scorer import Scorer
from engine.store.layout import version_dir
from tests.conftest import full_lead

NOW = 1_764_000_000.0


@pytest.fixture
def archive_key_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "archive-keys"
    create_key(directory)
    return directory


@pytest.fixture
def keys(archive_key_dir: Path) -> ArchiveKeys:
    return ArchiveKeys.load(archive_key_dir)


@pytest.fixture(scope="module")
def auto_model(trained, model_root, keyring):
    trained("auto")
    return load_model(version_dir(model_root, "auto", "1.0.0"), keyring)


@pytest.fixture(scope="module")
def auto_lead(trained) -> dict:
    """A complete holdout lead whose categories the model knows."""
    return full_lead(trained("auto"))


@pytest.fixture
def scorer(demo_config, auto_model) -> Scorer:
    scorer = Scorer(demo_config, clock=lambda: NOW)
    scorer.install(auto_model)
    return scorer
