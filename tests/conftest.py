"""Shared fixtures: real keys, real synthetic data, real trained and signed models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from engine.config import ModelConfig, load_config
from engine.store.signing import Keyring, SigningKey, generate_keypair

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "models.yaml"
BANK_CONFIG = ROOT / "examples" / "bank" / "models.yaml"
BANK_CSV = ROOT.parent / "shared" / "datasets" / "bank-marketing" / "bank-full.csv"


@pytest.fixture(scope="session")
def demo_config() -> ModelConfig:
    return load_config(DEMO_CONFIG)


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    generate_keypair(directory)
    return directory


@pytest.fixture(scope="session")
def signing_key(key_dir: Path) -> SigningKey:
    return SigningKey.load(key_dir / "model-signing.key")


@pytest.fixture(scope="session")
def keyring(key_dir: Path) -> Keyring:
    return Keyring.load(key_dir / "trusted")


@pytest.fixture(scope="session")
def synth_csv(tmp_path_factory: pytest.TempPathFactory):
    """Return a function writing (and caching) synthetic CSVs by vertical and size."""
    from engine.training.synth import write_csv

    directory = tmp_path_factory.mktemp("data")
    made: dict[tuple[str, int, int], Path] = {}

    def make(vertical: str, rows: int = 4000, seed: int = 11) -> Path:
        key = (vertical, rows, seed)
        if key not in made:
            path = directory / f"{vertical}-{rows}-{seed}.csv"
            write_csv(vertical, rows, seed, path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def trained(demo_config, synth_csv, model_root, signing_key, keyring):
    """Train (once per session) and activate v1.0.0 of a vertical; return its report."""
    from engine.training.pipeline import train_vertical

    reports = {}

    def train(vertical: str):
        if vertical not in reports:
            reports[vertical] = train_vertical(
                demo_config,
                vertical,
                synth_csv(vertical),
                "1.0.0",
                model_root,
                signing_key,
                activate_with=keyring,
            )
        return reports[vertical]

    return train


def full_lead(report) -> dict:
    """Return the first holdout lead of a report whose every feature is present."""
    names = [f.name for f in report.manifest.features]
    for lead in report.holdout_leads:
        if all(lead.get(n) is not None for n in names):
            return dict(lead)
    raise AssertionError("no complete lead in the holdout")
