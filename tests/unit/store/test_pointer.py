from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ArtifactRejected, StoreError
from engine.store.pointer import activate, read_current, read_history, rollback
from engine.store.signing import Keyring, SigningKey
from tests.unit.store.helpers import VERTICAL, new_key, overwrite, publish_version

VERSIONS = ["1.0.0", "1.1.0", "1.2.0"]


@pytest.fixture
def published(root: Path, key: SigningKey) -> Path:
    for version in VERSIONS:
        publish_version(root, key, version)
    return root


def history_file(root: Path) -> list[str]:
    return (root / VERTICAL / "HISTORY").read_text().splitlines()


def vertical_entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / VERTICAL).iterdir())


def test_read_current(root: Path) -> None:
    assert read_current(root, VERTICAL) is None
    (root / VERTICAL).mkdir()
    (root / VERTICAL / "CURRENT").write_text("1.2.0\n")
    assert read_current(root, VERTICAL) == "1.2.0"
    for bad in ["", "latest\n", "v1.2.0\n", "1.2\n", "1.2.0 1.3.0\n"]:
        (root / VERTICAL / "CURRENT").write_text(bad)
        with pytest.raises(StoreError, match="not a version"):
            read_current(root, VERTICAL)
    (root / VERTICAL / "CURRENT").write_bytes(b"\xff\xfe")
    with pytest.raises(StoreError, match="UTF-8"):
        read_current(root, VERTICAL)
    with pytest.raises(StoreError, match="invalid vertical"):
        read_current(root, "../etc")


def test_activate_chain_and_repeated_rollbacks(published: Path, keyring: Keyring) -> None:
    root = published
    assert activate(root, VERTICAL, "1.0.0", keyring) is None
    assert activate(root, VERTICAL, "1.1.0", keyring) == "1.0.0"
    assert activate(root, VERTICAL, "1.2.0", keyring) == "1.1.0"
    assert (root / VERTICAL / "CURRENT").read_text() == "1.2.0\n"
    assert history_file(root) == VERSIONS

    assert rollback(root, VERTICAL, keyring) == ("1.2.0", "1.1.0")
    assert read_current(root, VERTICAL) == "1.1.0"
    assert history_file(root) == ["1.0.0", "1.1.0"]
    assert rollback(root, VERTICAL, keyring) == ("1.1.0", "1.0.0")
    assert read_current(root, VERTICAL) == "1.0.0"
    with pytest.raises(StoreError, match="nothing to roll back to"):
        rollback(root, VERTICAL, keyring)
    assert read_current(root, VERTICAL) == "1.0.0"
    assert vertical_entries(root) == [".lock", "CURRENT", "HISTORY", "v1.0.0", "v1.1.0", "v1.2.0"]


def test_activate_same_version_is_a_no_op(published: Path, keyring: Keyring) -> None:
    activate(published, VERTICAL, "1.0.0", keyring)
    activate(published, VERTICAL, "1.1.0", keyring)
    assert activate(published, VERTICAL, "1.1.0", keyring) == "1.1.0"
    assert history_file(published) == ["1.0.0", "1.1.0"]


def test_rollback_after_reactivating_an_old_version(published: Path, keyring: Keyring) -> None:
    for version in ["1.0.0", "1.2.0", "1.0.0"]:
        activate(published, VERTICAL, version, keyring)
    assert rollback(published, VERTICAL, keyring) == ("1.0.0", "1.2.0")
    assert rollback(published, VERTICAL, keyring) == ("1.2.0", "1.0.0")


def test_rollback_skips_repeats_of_the_current_version(published: Path, keyring: Keyring) -> None:
    (published / VERTICAL / "HISTORY").write_text("1.0.0\n1.2.0\n1.2.0\n")
    (published / VERTICAL / "CURRENT").write_text("1.2.0\n")
    assert rollback(published, VERTICAL, keyring) == ("1.2.0", "1.0.0")


def test_rollback_with_nothing_active(root: Path, published: Path, keyring: Keyring) -> None:
    with pytest.raises(StoreError, match="nothing to roll back to"):
        rollback(published, VERTICAL, keyring)
    with pytest.raises(StoreError, match="nothing to roll back to"):
        rollback(root, "home", keyring)


def test_rollback_to_a_tampered_version_changes_nothing(published: Path, keyring: Keyring) -> None:
    for version in VERSIONS:
        activate(published, VERTICAL, version, keyring)
    overwrite(published / VERTICAL / "v1.1.0" / "model.txt", b"evil")
    with pytest.raises(ArtifactRejected) as info:
        rollback(published, VERTICAL, keyring)
    assert info.value.check == "hash"
    assert read_current(published, VERTICAL) == "1.2.0"
    assert history_file(published) == VERSIONS


def test_rollback_to_a_deleted_version_changes_nothing(published: Path, keyring: Keyring) -> None:
    for version in VERSIONS:
        activate(published, VERTICAL, version, keyring)
    shutil.rmtree(published / VERTICAL / "v1.1.0")
    with pytest.raises(ArtifactRejected) as info:
        rollback(published, VERTICAL, keyring)
    assert info.value.check == "layout"
    assert read_current(published, VERTICAL) == "1.2.0"


def test_activate_refuses_unverifiable_version(
    tmp_path: Path, published: Path, keyring: Keyring
) -> None:
    activate(published, VERTICAL, "1.0.0", keyring)
    other_key, _ = new_key(tmp_path / "other")
    publish_version(published, other_key, "2.0.0")
    with pytest.raises(ArtifactRejected) as info:
        activate(published, VERTICAL, "2.0.0", keyring)
    assert info.value.check == "unknown_key"
    overwrite(published / VERTICAL / "v1.1.0" / "encoders.npy", b"")
    with pytest.raises(ArtifactRejected) as info:
        activate(published, VERTICAL, "1.1.0", keyring)
    assert info.value.check == "hash"
    assert read_current(published, VERTICAL) == "1.0.0"
    assert history_file(published) == ["1.0.0"]
    assert not [n for n in vertical_entries(published) if n.startswith(".tmp-")]


def test_activate_unknown_or_invalid_version(published: Path, keyring: Keyring) -> None:
    with pytest.raises(StoreError, match=r"no version 3\.0\.0 \(published: 1\.0\.0, 1\.1\.0"):
        activate(published, VERTICAL, "3.0.0", keyring)
    with pytest.raises(StoreError, match="invalid version"):
        activate(published, VERTICAL, "latest", keyring)
    with pytest.raises(StoreError, match="invalid vertical"):
        activate(published, "../auto", "1.0.0", keyring)


def test_history_top_differs_after_a_crash_during_activate(
    published: Path, keyring: Keyring
) -> None:
    activate(published, VERTICAL, "1.0.0", keyring)
    activate(published, VERTICAL, "1.1.0", keyring)
    # activate 1.2.0 wrote HISTORY, then died before CURRENT
    (published / VERTICAL / "HISTORY").write_text("1.0.0\n1.1.0\n1.2.0\n")
    assert read_current(published, VERTICAL) == "1.1.0"
    assert read_history(published, VERTICAL) == ["1.0.0", "1.1.0"]
    assert rollback(published, VERTICAL, keyring) == ("1.1.0", "1.0.0")
    assert history_file(published) == ["1.0.0"]


def test_history_top_differs_after_a_crash_during_rollback(
    published: Path, keyring: Keyring
) -> None:
    for version in ["1.0.0", "1.2.0", "1.1.0", "1.2.0"]:
        activate(published, VERTICAL, version, keyring)
    # rollback 1.2.0 -> 1.1.0 wrote CURRENT, then died before HISTORY
    (published / VERTICAL / "CURRENT").write_text("1.1.0\n")
    assert read_history(published, VERTICAL) == ["1.0.0", "1.2.0", "1.1.0"]
    assert rollback(published, VERTICAL, keyring) == ("1.1.0", "1.2.0")
    assert rollback(published, VERTICAL, keyring) == ("1.2.0", "1.0.0")


def test_current_edited_by_hand_is_appended(published: Path, keyring: Keyring) -> None:
    activate(published, VERTICAL, "1.0.0", keyring)
    (published / VERTICAL / "CURRENT").write_text("1.2.0\n")
    assert read_history(published, VERTICAL) == ["1.0.0", "1.2.0"]
    assert activate(published, VERTICAL, "1.1.0", keyring) == "1.2.0"
    assert history_file(published) == ["1.0.0", "1.2.0", "1.1.0"]
    assert rollback(published, VERTICAL, keyring) == ("1.1.0", "1.2.0")


def test_corrupt_history(published: Path, keyring: Keyring) -> None:
    activate(published, VERTICAL, "1.0.0", keyring)
    (published / VERTICAL / "HISTORY").write_text("1.0.0\nlatest\n")
    with pytest.raises(StoreError, match="line 2"):
        rollback(published, VERTICAL, keyring)


def test_rollback_without_history_falls_back_to_lower_versions(
    published: Path, keyring: Keyring
) -> None:
    (published / VERTICAL / "CURRENT").write_text("1.2.0\n")  # an older store: no HISTORY
    assert read_history(published, VERTICAL) == ["1.2.0"]
    assert rollback(published, VERTICAL, keyring) == ("1.2.0", "1.1.0")
    assert rollback(published, VERTICAL, keyring) == ("1.1.0", "1.0.0")
    with pytest.raises(StoreError, match="nothing to roll back to"):
        rollback(published, VERTICAL, keyring)


def test_rollback_without_history_and_no_lower_version(published: Path, keyring: Keyring) -> None:
    (published / VERTICAL / "CURRENT").write_text("1.0.0\n")
    with pytest.raises(StoreError, match="nothing to roll back to"):
        rollback(published, VERTICAL, keyring)
    assert not (published / VERTICAL / "HISTORY").exists()


def test_activate_on_an_older_store_seeds_history(published: Path, keyring: Keyring) -> None:
    (published / VERTICAL / "CURRENT").write_text("1.0.0\n")
    assert activate(published, VERTICAL, "1.2.0", keyring) == "1.0.0"
    assert history_file(published) == ["1.0.0", "1.2.0"]


# --- a model-based property: any sequence of operations, with or without crashes --------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keyring]:
    """A store with VERSIONS published and nothing active, copied by each example."""
    key, keyring = new_key(tmp_path_factory.mktemp("keys"))
    root = tmp_path_factory.mktemp("template")
    for version in VERSIONS:
        publish_version(root, key, version)
    return root, keyring


operations = st.lists(
    st.tuples(st.sampled_from(["activate", "rollback"]), st.sampled_from(VERSIONS), st.booleans()),
    max_size=10,
)


@settings(max_examples=30, deadline=None)
@given(operations)
def test_pointer_matches_a_stack_model_even_after_crashes(
    template: tuple[Path, Keyring], ops: list[tuple[str, str, bool]]
) -> None:
    source, keyring = template
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        shutil.copytree(source, root)
        current_file = root / VERTICAL / "CURRENT"
        history = root / VERTICAL / "HISTORY"
        model: list[str] = []
        for op, version, crash in ops:
            before_current = current_file.read_bytes() if current_file.exists() else None
            model_before = list(model)
            if op == "activate":
                previous = activate(root, VERTICAL, version, keyring)
                assert previous == (model[-1] if model else None)
                if not model or model[-1] != version:
                    if crash:  # died after HISTORY, before CURRENT
                        if before_current is None:
                            current_file.unlink()
                        else:
                            current_file.write_bytes(before_current)
                        assert read_history(root, VERTICAL) == model
                        continue
                    model.append(version)
            else:
                while len(model) > 1 and model[-2] == model[-1]:
                    model.pop()
                if len(model) < 2:
                    with pytest.raises(StoreError, match="nothing to roll back to"):
                        rollback(root, VERTICAL, keyring)
                    continue
                assert rollback(root, VERTICAL, keyring) == (model[-1], model[-2])
                model.pop()
                if crash:  # died after CURRENT, before HISTORY (which had been reconciled)
                    history.write_text("".join(f"{v}\n" for v in model_before))
            assert read_current(root, VERTICAL) == (model[-1] if model else None)
            assert read_history(root, VERTICAL) == model
