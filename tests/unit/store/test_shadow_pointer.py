"""The SHADOW pointer: a verified challenger version beside CURRENT, set and cleared."""

from __future__ import annotations

import pytest

from engine.errors import ArtifactRejected, StoreError
from engine.store import pointer
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.training.pipeline import train_vertical


@pytest.fixture(scope="module")
def store_keys(tmp_path_factory):
    """Keys of this module's store (the directory's conftest has per-test ones)."""
    directory = tmp_path_factory.mktemp("shadow-keys")
    generate_keypair(directory)
    return SigningKey.load(directory / "model-signing.key"), Keyring.load(directory / "trusted")


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, demo_config, synth_csv, store_keys):
    signing_key, keyring = store_keys
    root = tmp_path_factory.mktemp("shadow-store")
    data = synth_csv("home", 1500, seed=5)
    train_vertical(demo_config, "home", data, "1.0.0", root, signing_key, activate_with=keyring)
    train_vertical(demo_config, "home", data, "1.1.0", root, signing_key)
    return root


@pytest.fixture
def keyring(store_keys):
    return store_keys[1]


def test_set_read_and_clear(two_versions, keyring):
    root = two_versions
    assert pointer.read_shadow(root, "home") is None
    assert pointer.set_shadow(root, "home", "1.1.0", keyring) is None
    assert pointer.read_shadow(root, "home") == "1.1.0"
    assert (root / "home" / "SHADOW").read_text() == "1.1.0\n"
    assert pointer.read_current(root, "home") == "1.0.0"  # the champion is untouched
    assert pointer.set_shadow(root, "home", None, keyring) == "1.1.0"
    assert pointer.read_shadow(root, "home") is None
    assert pointer.set_shadow(root, "home", None, keyring) is None  # clearing twice is fine


def test_refusals_change_nothing(two_versions, keyring):
    root = two_versions
    with pytest.raises(StoreError, match="is the active version"):
        pointer.set_shadow(root, "home", "1.0.0", keyring)
    with pytest.raises(StoreError, match=r"no version 9\.9\.9"):
        pointer.set_shadow(root, "home", "9.9.9", keyring)
    model = root / "home" / "v1.1.0" / "model.txt"
    original = model.read_bytes()
    model.chmod(0o644)
    model.write_bytes(original.replace(b"tree", b"Tree", 1))
    try:
        with pytest.raises(ArtifactRejected):
            pointer.set_shadow(root, "home", "1.1.0", keyring)
    finally:
        model.write_bytes(original)
    assert pointer.read_shadow(root, "home") is None


def test_a_corrupt_shadow_pointer_is_an_error(two_versions):
    path = two_versions / "home" / "SHADOW"
    path.write_text("not a version\n")
    try:
        with pytest.raises(StoreError, match="not a version"):
            pointer.read_shadow(two_versions, "home")
    finally:
        path.unlink()
