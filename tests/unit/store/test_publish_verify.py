from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import msgspec
import pytest

from engine.errors import ArtifactRejected, StoreError
from engine.store.manifest import Manifest, decode_manifest
from engine.store.pointer import activate
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey
from engine.store.verify import describe, verify_version
from tests.unit.store.helpers import (
    FILES,
    VERTICAL,
    fields_for,
    make_manifest,
    new_key,
    overwrite,
    publish_version,
    resign,
    resign_manifest,
    temp_entries,
)


def rejected(path: Path, keyring: Keyring, check: str) -> ArtifactRejected:
    with pytest.raises(ArtifactRejected) as info:
        verify_version(path, keyring)
    assert info.value.check == check, str(info.value)
    return info.value


def test_publish_then_verify_round_trip(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    assert path == root / VERTICAL / "v1.0.0"
    assert sorted(p.name for p in path.iterdir()) == [
        "encoders.npy",
        "manifest.json",
        "manifest.sig",
        "model.txt",
    ]
    verified = verify_version(path, keyring)
    assert verified.path == path
    assert verified.key_id == key.key_id
    # The model file is handed over as a read-only mapping of the hashed pages.
    mapped = {name: bytes(mapping) for name, mapping in verified.mapped.items()}
    assert set(mapped) == {"model.txt"}
    assert {**verified.files, **mapped} == FILES
    assert not set(verified.files) & set(mapped)
    assert verified.manifest.version == "1.0.0"
    assert verified.manifest.vertical == VERTICAL
    assert verified.manifest.files == {
        name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()
    }
    assert decode_manifest((path / "manifest.json").read_bytes()) == verified.manifest
    assert temp_entries(root / VERTICAL) == []


def test_published_files_are_read_only(root: Path, key: SigningKey) -> None:
    path = publish_version(root, key, "1.0.0")
    for entry in path.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o444
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_verify_accepts_relative_and_unnormalised_paths(
    root: Path, key: SigningKey, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_version(root, key, "1.0.0")
    monkeypatch.chdir(root)
    assert verify_version(Path("auto/v1.0.0"), keyring).path == root / "auto" / "v1.0.0"
    assert verify_version(Path("auto/x/../v1.0.0"), keyring).manifest.version == "1.0.0"


# --- publish refusals -------------------------------------------------------------------


def test_publish_refuses_an_existing_version(root: Path, key: SigningKey) -> None:
    path = publish_version(root, key, "1.0.0")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(StoreError, match="already exists"):
        publish_version(root, key, "1.0.0", files={"model.txt": b"other"})
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert temp_entries(root / VERTICAL) == []


def test_publish_leaves_nothing_when_manifest_fields_raises(root: Path, key: SigningKey) -> None:
    def boom(hashes: dict[str, str]) -> Manifest:
        raise RuntimeError("training metrics missing")

    with pytest.raises(RuntimeError, match="training metrics missing"):
        publish(root, VERTICAL, "1.0.0", FILES, boom, key)
    assert temp_entries(root / VERTICAL) == []
    assert not (root / VERTICAL / "v1.0.0").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (lambda h: make_manifest(VERTICAL, "1.0.0", {**h, "ghost.bin": "0" * 64}), "files"),
        (lambda h: make_manifest(VERTICAL, "9.9.9", h), "for auto 9.9.9"),
        (lambda h: make_manifest("home", "1.0.0", h), "for home 1.0.0"),
        (
            lambda h: msgspec.structs.replace(make_manifest(VERTICAL, "1.0.0", h), format=2),
            "would not decode",
        ),
        (lambda h: make_manifest(VERTICAL, "1.0.0", h, auc=float("nan")), r"metrics\.auc"),
        (lambda h: {"not": "a manifest"}, "not Manifest"),
    ],
)
def test_publish_refuses_inconsistent_manifests(
    root: Path, key: SigningKey, fields: object, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        publish(root, VERTICAL, "1.0.0", FILES, fields, key)  # type: ignore[arg-type]
    assert temp_entries(root / VERTICAL) == []
    assert not (root / VERTICAL / "v1.0.0").exists()


def test_publish_passes_a_copy_of_the_hashes(root: Path, key: SigningKey) -> None:
    def sneaky(hashes: dict[str, str]) -> Manifest:
        manifest = make_manifest(VERTICAL, "1.0.0", hashes)
        hashes["extra"] = "0" * 64
        return manifest

    publish(root, VERTICAL, "1.0.0", FILES, sneaky, key)


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "..", "a/b", "../escape", "a\\b", "manifest.json", "manifest.sig", "nul\0byte"],
)
def test_publish_refuses_bad_file_names(root: Path, key: SigningKey, name: str) -> None:
    with pytest.raises(StoreError):
        publish_version(root, key, "1.0.0", files={"model.txt": b"x", name: b"y"})
    assert not (root / VERTICAL / "v1.0.0").exists()
    assert temp_entries(root / VERTICAL) == []


@pytest.mark.parametrize(
    ("vertical", "version"),
    [("auto", "1.0"), ("auto", "v1.0.0"), ("../x", "1.0.0"), ("Auto", "1.0.0")],
)
def test_publish_refuses_bad_names(
    root: Path, key: SigningKey, vertical: str, version: str
) -> None:
    with pytest.raises(StoreError, match="invalid"):
        publish(root, vertical, version, FILES, fields_for(vertical, version), key)
    assert list(root.iterdir()) == []


def test_publish_refuses_when_the_version_appears_meanwhile(root: Path, key: SigningKey) -> None:
    final = root / VERTICAL / "v1.0.0"

    def racing(hashes: dict[str, str]) -> Manifest:
        final.mkdir()  # another publisher (or an operator) got there first, even empty
        return make_manifest(VERTICAL, "1.0.0", hashes)

    with pytest.raises(StoreError, match="appeared"):
        publish(root, VERTICAL, "1.0.0", FILES, racing, key)
    assert final.is_dir()
    assert list(final.iterdir()) == []
    assert temp_entries(root / VERTICAL) == []


# --- verify rejections ------------------------------------------------------------------


def test_tampered_file_byte(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    data = bytearray(FILES["model.txt"])
    data[3] ^= 1
    overwrite(path / "model.txt", bytes(data))
    assert "model.txt" in rejected(path, keyring, "hash").detail


def test_deleted_file(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "encoders.npy").unlink()
    assert "missing: encoders.npy" in rejected(path, keyring, "mismatch").detail


def test_extra_file(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "backdoor.py").write_text("print('hi')")
    (path / ".hidden").write_text("x")
    detail = rejected(path, keyring, "mismatch").detail
    assert "not in the manifest: .hidden, backdoor.py" in detail


def test_extra_and_missing_are_both_named(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "model.txt").rename(path / "model.bin")
    detail = rejected(path, keyring, "mismatch").detail
    assert "not in the manifest: model.bin" in detail
    assert "missing: model.txt" in detail


def test_corrupt_manifest_json_re_signed(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    resign(path, key, b"{not json")
    rejected(path, keyring, "manifest")


def test_manifest_missing_field_re_signed_names_the_field(
    root: Path, key: SigningKey, keyring: Keyring
) -> None:
    path = publish_version(root, key, "1.0.0")
    doc = json.loads((path / "manifest.json").read_bytes())
    del doc["metrics"]["auc"]
    resign(path, key, json.dumps(doc).encode())
    assert "auc" in rejected(path, keyring, "manifest").detail


def test_manifest_version_mismatch_re_signed(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    manifest = verify_version(path, keyring).manifest
    resign_manifest(path, key, msgspec.structs.replace(manifest, version="1.0.1"))
    assert "1.0.1" in rejected(path, keyring, "mismatch").detail


def test_manifest_vertical_mismatch_re_signed(
    root: Path, key: SigningKey, keyring: Keyring
) -> None:
    path = publish_version(root, key, "1.0.0")
    manifest = verify_version(path, keyring).manifest
    resign_manifest(path, key, msgspec.structs.replace(manifest, vertical="home"))
    assert "home" in rejected(path, keyring, "mismatch").detail


def test_copied_into_another_vertical(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (root / "home").mkdir()
    path.rename(root / "home" / "v1.0.0")
    rejected(root / "home" / "v1.0.0", keyring, "mismatch")


def test_edited_manifest_without_re_signing(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    text = (path / "manifest.json").read_bytes().replace(b"0.81", b"0.99")
    overwrite(path / "manifest.json", text)
    rejected(path, keyring, "signature")


def test_missing_manifest_sig(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "manifest.sig").unlink()
    assert "manifest.sig" in rejected(path, keyring, "layout").detail


def test_missing_manifest_json(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "manifest.json").unlink()
    assert "manifest.json" in rejected(path, keyring, "layout").detail


def test_garbled_signature_document(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    overwrite(path / "manifest.sig", b"\x00\xffgarbage")
    rejected(path, keyring, "signature")


def test_signed_by_another_trusted_key(
    tmp_path: Path, root: Path, key: SigningKey, keyring: Keyring
) -> None:
    other_key, other_ring = new_key(tmp_path / "other")
    path = publish_version(root, other_key, "1.0.0")
    rejected(path, keyring, "unknown_key")
    trusted = tmp_path / "both"
    trusted.mkdir()
    for source in (tmp_path / "keys" / "trusted", tmp_path / "other" / "trusted"):
        for pub in source.glob("*.pub"):
            (trusted / pub.name).write_bytes(pub.read_bytes())
    both = Keyring.load(trusted)
    assert both.key_ids == keyring.key_ids | other_ring.key_ids
    assert verify_version(path, both).key_id == other_key.key_id


def test_symlinked_file(root: Path, key: SigningKey, keyring: Keyring, tmp_path: Path) -> None:
    path = publish_version(root, key, "1.0.0")
    outside = tmp_path / "model.txt"
    outside.write_bytes(FILES["model.txt"])  # same bytes: only the link is wrong
    (path / "model.txt").unlink()
    (path / "model.txt").symlink_to(outside)
    assert "symlink" in rejected(path, keyring, "layout").detail


def test_symlinked_manifest(root: Path, key: SigningKey, keyring: Keyring, tmp_path: Path) -> None:
    path = publish_version(root, key, "1.0.0")
    copy = tmp_path / "manifest.sig"
    copy.write_bytes((path / "manifest.sig").read_bytes())
    (path / "manifest.sig").unlink()
    (path / "manifest.sig").symlink_to(copy)
    rejected(path, keyring, "layout")


def test_symlinked_version_directory(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (root / VERTICAL / "v2.0.0").symlink_to(path)
    rejected(root / VERTICAL / "v2.0.0", keyring, "layout")


def test_subdirectory_in_version(root: Path, key: SigningKey, keyring: Keyring) -> None:
    path = publish_version(root, key, "1.0.0")
    (path / "extra").mkdir()
    rejected(path, keyring, "layout")


@pytest.mark.parametrize(
    "relative", ["auto/v9.9.9", "auto/vX", "auto/latest", "auto/v1.0", "Not-A-Vertical/v1.0.0"]
)
def test_bad_directories(root: Path, keyring: Keyring, relative: str) -> None:
    for name in ["auto/vX", "auto/latest", "auto/v1.0", "Not-A-Vertical/v1.0.0"]:
        (root / name).mkdir(parents=True)
    rejected(root / relative, keyring, "layout")


def test_not_a_directory(root: Path, keyring: Keyring) -> None:
    (root / "auto").mkdir()
    (root / "auto" / "v1.0.0").write_text("file")
    rejected(root / "auto" / "v1.0.0", keyring, "layout")


# --- describe ----------------------------------------------------------------------------


def test_describe(root: Path, key: SigningKey, keyring: Keyring) -> None:
    publish_version(root, key, "1.0.0", auc=0.7)
    publish_version(root, key, "1.1.0", auc=0.8)
    bad = publish_version(root, key, "1.10.0", auc=0.9)
    (root / VERTICAL / "v2.0.0").mkdir()
    activate(root, VERTICAL, "1.1.0", keyring)
    overwrite(bad / "model.txt", b"tampered")

    infos = describe(root, VERTICAL, keyring)
    assert [i.version for i in infos] == ["1.0.0", "1.1.0", "1.10.0", "2.0.0"]
    assert [i.active for i in infos] == [False, True, False, False]
    assert [i.verified for i in infos] == [True, True, False, False]
    assert infos[0].problem is None
    assert infos[2].problem is not None and infos[2].problem.startswith("hash check failed")
    assert infos[3].problem is not None and "manifest.json is missing" in infos[3].problem
    assert [i.auc for i in infos] == [0.7, 0.8, 0.9, None]
    assert infos[1].precision == 0.72 and infos[1].recall == 0.64
    assert infos[1].created_at == "2024-05-01T12:00:00Z"
    assert infos[3].created_at is None and infos[3].precision is None


def test_describe_without_keyring(root: Path, key: SigningKey) -> None:
    publish_version(root, key, "1.0.0")
    broken = publish_version(root, key, "1.1.0")
    overwrite(broken / "manifest.json", b"{}")
    infos = describe(root, VERTICAL, None)
    assert [i.verified for i in infos] == [None, None]
    assert infos[0].problem is None and infos[0].auc == 0.81
    assert infos[1].auc is None
    assert infos[1].problem is not None and infos[1].problem.startswith("manifest check failed")
    assert describe(root, "life", None) == []
