"""The active version of a vertical: pointer problems, refusals, and cached verdicts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from engine.errors import ArtifactRejected, StoreError
from engine.store import active
from engine.store.active import (
    PENDING,
    REASONS,
    ActiveInspector,
    ActiveState,
    VerticalStatus,
    reason_of,
    status_of,
)
from engine.store.pointer import activate
from engine.store.signing import Keyring, SigningKey
from engine.store.verify import VerifiedVersion, verify_version
from tests.unit.store.helpers import VERTICAL, new_key, overwrite, publish_version


def flip_byte(path: Path) -> bytes:
    """Flip the low bit of a file's first byte; return the original content."""
    original = path.read_bytes()
    overwrite(path, bytes([original[0] ^ 1]) + original[1:])
    return original


@pytest.fixture
def published(root: Path, key: SigningKey, keyring: Keyring) -> Path:
    path = publish_version(root, key, "1.0.0")
    activate(root, VERTICAL, "1.0.0", keyring)
    return path


def test_reason_of_maps_every_error_to_the_fixed_set() -> None:
    for check in ("layout", "signature", "unknown_key", "manifest", "mismatch", "hash"):
        assert reason_of(ArtifactRejected(check, "x")) == check
    assert reason_of(ArtifactRejected("model", "LightGBM refused it")) == "load"
    assert reason_of(StoreError("CURRENT holds garbage")) == "pointer"
    assert reason_of(ValueError("invalid version")) == "pointer"
    assert reason_of(OSError("disk")) == "load"
    assert set(REASONS) == {
        "layout",
        "signature",
        "unknown_key",
        "manifest",
        "mismatch",
        "hash",
        "pointer",
        "load",
    }


def test_inspect_returns_the_verified_bytes_and_manifest_digest(
    root: Path, published: Path, keyring: Keyring
) -> None:
    state, verified = ActiveInspector(root).inspect(VERTICAL, keyring)
    assert isinstance(verified, VerifiedVersion)
    digest = hashlib.sha256((published / "manifest.json").read_bytes()).hexdigest()
    assert state.usable and not state.refused
    assert (state.version, state.digest, state.reason, state.detail) == (
        "1.0.0",
        digest,
        None,
        None,
    )
    assert verified.manifest_sha256 == digest


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"../../etc\n", "holds '../../etc\\n', not a version X.Y.Z"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"1.0.0" + b" " * 100, "over 64 bytes"),
        (b"9.9.9\n", "CURRENT names 9.9.9, which is not published (published: 1.0.0)"),
    ],
    ids=["traversal", "garbage", "oversized", "missing-version"],
)
def test_unusable_pointers_are_refused_as_pointer(
    root: Path, published: Path, keyring: Keyring, content: bytes, expected: str
) -> None:
    overwrite(root / VERTICAL / "CURRENT", content)
    state, verified = ActiveInspector(root).inspect(VERTICAL, keyring)
    assert verified is None and state.refused and state.reason == "pointer"
    assert state.detail is not None and expected in state.detail
    assert str(root) not in state.detail  # no absolute path: /ready shows it


def test_a_symlinked_pointer_is_never_followed(
    root: Path, published: Path, keyring: Keyring, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "secret"
    elsewhere.write_text("1.0.0\n")  # even a valid version through a link is refused
    current = root / VERTICAL / "CURRENT"
    current.unlink()
    current.symlink_to(elsewhere)
    state, _ = ActiveInspector(root).inspect(VERTICAL, keyring)
    assert state.reason == "pointer" and "symlink" in (state.detail or "")


def test_no_pointer_is_reported_but_not_a_refusal(root: Path, keyring: Keyring) -> None:
    state, verified = ActiveInspector(root).inspect(VERTICAL, keyring)
    assert verified is None and not state.refused and not state.usable
    assert state.detail == active.NO_ACTIVE_VERSION


def test_tampered_and_foreign_versions_are_refused_with_their_check(
    root: Path, published: Path, keyring: Keyring, tmp_path: Path
) -> None:
    inspector = ActiveInspector(root)
    original = flip_byte(published / "model.txt")
    state, _ = inspector.inspect(VERTICAL, keyring)
    assert state.reason == "hash" and "model.txt" in (state.detail or "")
    assert (state.detail or "").startswith("CURRENT names 1.0.0, refused: hash check failed")
    overwrite(published / "model.txt", original)
    _, other = new_key(tmp_path / "other")
    state, _ = inspector.inspect(VERTICAL, other)  # a keyring without the signer
    assert state.reason == "unknown_key"


def test_check_reuses_a_verdict_only_while_the_files_are_unchanged(
    root: Path, published: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = verify_version

    def counting(path: Path, ring: Keyring) -> VerifiedVersion:
        calls.append(path)
        return real(path, ring)

    monkeypatch.setattr("engine.store.active.verify_version", counting)
    inspector = ActiveInspector(root)
    # Just written: timestamps too recent to trust (a same-tick change could hide).
    assert inspector.check(VERTICAL, keyring).usable
    assert inspector.check(VERTICAL, keyring).usable
    assert len(calls) == 2
    monkeypatch.setattr(active, "RACY_SECONDS", 0.0)
    inspector.check(VERTICAL, keyring)
    assert inspector.check(VERTICAL, keyring).usable
    assert len(calls) == 3  # unchanged files: the verdict was reused
    # Same size, mtime put back by hand: the ctime (which cannot be set) still tells.
    target = published / "encoders.npy"
    before = target.stat()
    flip_byte(target)
    target.chmod(before.st_mode)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
    state = inspector.check(VERTICAL, keyring)
    assert len(calls) == 4 and state.reason == "hash"
    assert inspector.check(VERTICAL, keyring).reason == "hash"  # refusals are cached too
    assert len(calls) == 4
    _, other = new_key(root.parent / "other-keys")
    assert inspector.check(VERTICAL, other).reason == "unknown_key"  # new keyring: re-verified
    assert len(calls) == 5
    # inspect() always verifies in full, cache or not.
    inspector.inspect(VERTICAL, keyring)
    inspector.inspect(VERTICAL, keyring)
    assert len(calls) == 7


def test_refused_state_keeps_identity_when_a_load_fails(
    root: Path, published: Path, keyring: Keyring
) -> None:
    state, _ = ActiveInspector(root).inspect(VERTICAL, keyring)
    failed = state.refuse("load", "LightGBM refused it")
    assert failed.refused and not failed.usable
    assert (failed.version, failed.digest) == (state.version, state.digest)


def test_status_of_says_what_is_served_against_what_current_names() -> None:
    good = ActiveState(VERTICAL, "1.1.0", "d11", None, None)
    assert status_of(good, "1.1.0", "d11", None) == VerticalStatus("1.1.0", "1.1.0", None, None)
    pending = status_of(good, "1.0.0", "d10", None)
    assert pending.reason == PENDING and pending.problem == (
        "CURRENT names 1.1.0, not loaded here yet (reload to switch); still serving 1.0.0"
    )
    unloadable = status_of(good, "1.0.0", "d10", ("d11", "LightGBM refused it"))
    assert (unloadable.reason, unloadable.problem) == (
        "load",
        "LightGBM refused it; still serving 1.0.0",
    )
    assert status_of(good, "1.0.0", "d10", ("d09", "older")).reason == PENDING
    tampered = ActiveState(VERTICAL, "1.0.0", None, "hash", "CURRENT names 1.0.0, refused: x")
    assert status_of(tampered, "1.0.0", "d10", None).problem == (
        "CURRENT names 1.0.0, refused: x; serving 1.0.0 as verified when it was loaded"
    )
    assert status_of(tampered, None, None, None).problem == (
        "CURRENT names 1.0.0, refused: x; nothing is served"
    )
    absent = ActiveState(VERTICAL, None, None, None, active.NO_ACTIVE_VERSION)
    assert status_of(absent, "1.0.0", "d10", None) == VerticalStatus(
        "1.0.0", None, "pointer", f"{active.NO_ACTIVE_VERSION}; still serving 1.0.0"
    )


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_pointer_that_is_not_a_regular_file_is_refused_without_blocking(
    root: Path, published: Path, keyring: Keyring, kind: str
) -> None:
    current = root / VERTICAL / "CURRENT"
    current.unlink()
    if kind == "directory":
        current.mkdir()
    else:
        os.mkfifo(current)  # opening it for reading would wait for a writer forever
    state, _ = ActiveInspector(root).inspect(VERTICAL, keyring)
    assert state.reason == "pointer" and "not a regular file" in (state.detail or "")
