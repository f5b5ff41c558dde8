from __future__ import annotations

from pathlib import Path

import pytest

from engine.store.signing import Keyring, SigningKey
from tests.unit.store.helpers import new_key


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[SigningKey, Keyring]:
    return new_key(tmp_path / "keys")


@pytest.fixture
def key(key_pair: tuple[SigningKey, Keyring]) -> SigningKey:
    return key_pair[0]


@pytest.fixture
def keyring(key_pair: tuple[SigningKey, Keyring]) -> Keyring:
    return key_pair[1]
