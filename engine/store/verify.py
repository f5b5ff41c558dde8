"""Verification of a model version directory before anything in it is used.

A version directory ``<root>/<vertical>/v<X.Y.Z>/`` (see ``engine.store.layout``) is
accepted only when, in this order:

1. ``layout``: it is a real directory (not a symlink) named ``v<X.Y.Z>`` inside a
   directory with a valid vertical name; every entry in it is a regular file (no
   symlinks, no subdirectories); ``manifest.json`` and ``manifest.sig`` are present.
2. ``signature`` / ``unknown_key``: ``manifest.sig`` (see ``engine.store.signing``) is a
   valid Ed25519 signature over the exact bytes of ``manifest.json`` by a trusted key.
3. ``manifest``: ``manifest.json`` decodes as a manifest (``engine.store.manifest``).
4. ``mismatch``: the manifest's ``vertical`` and ``version`` are the directory's, and
   the files in the directory other than ``manifest.json`` and ``manifest.sig`` are
   exactly the manifest's ``files``.
5. ``hash``: every file's SHA-256 is the one in the manifest.

The bytes that were hashed are returned, so callers load exactly what was verified and
never read the files again, with the SHA-256 of the manifest: two verified versions with
the same manifest digest have identical files. The model files (``model.txt`` and the tree
kernel's ``model.layout``, tens of MB for a large model) are memory-mapped read-only and
hashed through the mapping instead of copied onto the heap: the kernel then scores from
the very pages that were hashed, shared with every other process mapping the file, and a
worker never holds a private copy of the trees, even for a moment. (Published files are
never rewritten in place; one replaced by a new file afterwards is never read.) Messages
name files relative to the model root (``auto/v1.2.0``), never by absolute path, so they
can be shown to API callers.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from engine.errors import ArtifactRejected, StoreError
from engine.store.layout import (
    MODEL_FILE,
    MODEL_LAYOUT_FILE,
    VERTICAL_RE,
    list_versions,
    version_dir,
    version_of_dir_name,
)
from engine.store.manifest import Manifest, decode_manifest
from engine.store.signing import Keyring

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
MAPPED_NAMES: Final = frozenset({MODEL_FILE, MODEL_LAYOUT_FILE})
"""Files verified (and handed over) as read-only mappings rather than bytes."""


@dataclass(frozen=True, slots=True)
class VerifiedVersion:
    """A version that passed every check.

    Attributes:
        path: The version directory.
        manifest: Its decoded manifest.
        key_id: The id of the trusted key that signed the manifest.
        files: Every file named in the manifest but :data:`MAPPED_NAMES`, by name, with the
            exact bytes that were hashed.
        mapped: The files of :data:`MAPPED_NAMES` the manifest names, by name: read-only
            mappings of the files, hashed through the mapping. An empty file (which cannot
            be mapped) is in ``files`` as ``b""`` instead. Whoever loads a mapping owns
            it; the others are closed when the ``VerifiedVersion`` is collected.
        manifest_sha256: SHA-256 (hex) of the exact bytes of ``manifest.json``; since the
            manifest lists every file's hash, it identifies the whole version's content.
    """

    path: Path
    manifest: Manifest
    key_id: str
    files: dict[str, bytes]
    mapped: dict[str, mmap.mmap]
    manifest_sha256: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What ``ml-service models list`` shows about one version.

    Attributes:
        version: The version, e.g. ``1.2.0``.
        active: Whether ``CURRENT`` names it.
        verified: Whether it passed verification; None when no keyring was given.
        problem: Why it is unusable (an ``ArtifactRejected`` message), or None.
        created_at: From the manifest; None when the manifest is unreadable.
        auc: Holdout ROC AUC; None when the manifest is unreadable.
        precision: Holdout precision at the threshold; None when unreadable.
        recall: Holdout recall at the threshold; None when unreadable.
    """

    version: str
    active: bool
    verified: bool | None
    problem: str | None
    created_at: str | None
    auc: float | None
    precision: float | None
    recall: float | None


def _open_regular(path: Path) -> int:
    """Open a regular file without following a symlink (a swapped-in link is refused).

    Returns:
        A read-only file descriptor the caller closes.
    """
    # O_NONBLOCK: a FIFO swapped in after the listing must not hang the reader (the
    # fstat below refuses it); it changes nothing for regular files.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ArtifactRejected("layout", f"{path.name} disappeared during verification") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactRejected("layout", f"{path.name} is a symlink") from None
        raise ArtifactRejected("layout", f"cannot read {path.name}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactRejected("layout", f"{path.name} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_regular(path: Path) -> bytes:
    """Read a regular file without following a symlink."""
    fd = _open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def _map_regular(path: Path) -> mmap.mmap | None:
    """Map a regular file read-only without following a symlink; None when it is empty."""
    fd = _open_regular(path)
    try:
        if os.fstat(fd).st_size == 0:
            return None
        try:
            return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ArtifactRejected("layout", f"cannot map {path.name}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _shown(path: Path) -> str:
    """Name a version directory as ``<vertical>/<name>``: no absolute path in messages."""
    return f"{path.parent.name}/{path.name}"


def _check_directory(path: Path) -> tuple[str, str, set[str]]:
    """Run the layout checks; return (vertical, version, names of the entries)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        raise ArtifactRejected("layout", f"{_shown(path)} does not exist") from None
    except OSError as exc:
        raise ArtifactRejected("layout", f"cannot stat {_shown(path)}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise ArtifactRejected("layout", f"{_shown(path)} is a symlink")
    if not stat.S_ISDIR(mode):
        raise ArtifactRejected("layout", f"{_shown(path)} is not a directory")
    version = version_of_dir_name(path.name)
    if version is None:
        raise ArtifactRejected("layout", f"{path.name!r} is not named v<X.Y.Z>")
    vertical = path.parent.name
    if VERTICAL_RE.fullmatch(vertical) is None:
        raise ArtifactRejected(
            "layout", f"{_shown(path)} is not inside a vertical directory (got {vertical!r})"
        )
    names: set[str] = set()
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise ArtifactRejected("layout", f"{entry.name} is a symlink")
                if not entry.is_file(follow_symlinks=False):
                    raise ArtifactRejected("layout", f"{entry.name} is not a regular file")
                names.add(entry.name)
    except OSError as exc:
        raise ArtifactRejected("layout", f"cannot list {_shown(path)}: {exc.strerror}") from None
    for required in (MANIFEST_NAME, SIGNATURE_NAME):
        if required not in names:
            raise ArtifactRejected("layout", f"{required} is missing")
    return vertical, version, names


def verify_version(path: Path, keyring: Keyring) -> VerifiedVersion:
    """Verify a version directory completely (see the module docstring for the checks).

    Args:
        path: The version directory, ``<root>/<vertical>/v<X.Y.Z>``.
        keyring: The trusted public keys.

    Returns:
        The manifest, the signing key's id and the verified bytes of every file.

    Raises:
        ArtifactRejected: A check failed; ``check`` says which and ``detail`` what.
    """
    # Normalise textually; resolve() would follow a symlinked version directory.
    path = Path(os.path.abspath(path))  # noqa: PTH100
    vertical, version, names = _check_directory(path)

    manifest_bytes = _read_regular(path / MANIFEST_NAME)
    signature_doc = _read_regular(path / SIGNATURE_NAME)
    signer = keyring.verify(manifest_bytes, signature_doc)

    try:
        manifest = decode_manifest(manifest_bytes)
    except msgspec.DecodeError as exc:
        raise ArtifactRejected("manifest", f"{MANIFEST_NAME}: {exc}") from None

    if manifest.vertical != vertical:
        raise ArtifactRejected(
            "mismatch",
            f"manifest is for vertical {manifest.vertical!r} but the directory is in {vertical!r}",
        )
    if manifest.version != version:
        raise ArtifactRejected(
            "mismatch",
            f"manifest is for version {manifest.version!r} but the directory is v{version}",
        )
    present = names - RESERVED_NAMES
    listed = set(manifest.files)
    if present != listed:
        parts = []
        if extra := sorted(present - listed):
            parts.append(f"not in the manifest: {', '.join(extra)}")
        if missing := sorted(listed - present):
            parts.append(f"missing: {', '.join(missing)}")
        raise ArtifactRejected("mismatch", "; ".join(parts))

    files: dict[str, bytes] = {}
    mapped: dict[str, mmap.mmap] = {}
    try:
        for name in sorted(listed):
            mapping = _map_regular(path / name) if name in MAPPED_NAMES else None
            if mapping is not None:
                mapped[name] = mapping
                content: bytes | mmap.mmap = mapping
            else:
                content = files[name] = _read_regular(path / name)
            digest = hashlib.sha256(content).hexdigest()
            if digest != manifest.files[name].lower():
                raise ArtifactRejected(
                    "hash",
                    f"{name}: sha256 {digest} does not match manifest {manifest.files[name]}",
                )
    except BaseException:
        for mapping in mapped.values():
            mapping.close()
        raise
    return VerifiedVersion(
        path=path,
        manifest=manifest,
        key_id=signer,
        files=files,
        mapped=mapped,
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
    )


def _read_manifest_unverified(path: Path) -> tuple[Manifest | None, str | None]:
    """Decode a version's manifest for display only; return (manifest, problem)."""
    try:
        data = _read_regular(path / MANIFEST_NAME)
    except ArtifactRejected as exc:
        return None, str(exc)
    try:
        return decode_manifest(data), None
    except msgspec.DecodeError as exc:
        return None, str(ArtifactRejected("manifest", f"{MANIFEST_NAME}: {exc}"))


def describe(root: Path, vertical: str, keyring: Keyring | None) -> list[VersionInfo]:
    """Describe every published version of a vertical, oldest first.

    With a keyring each version is verified in full (reading every file); without one
    only the manifest is read, unverified, for display.

    Args:
        root: The model root.
        vertical: The vertical name.
        keyring: Trusted keys, or None to skip verification.

    Returns:
        One entry per version directory.

    Raises:
        StoreError: The vertical name is invalid or ``CURRENT`` is corrupt.
    """
    try:
        versions = list_versions(root, vertical)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    from engine.store.pointer import read_current

    current = read_current(root, vertical)
    infos = []
    for version in versions:
        path = version_dir(root, vertical, version)
        manifest: Manifest | None = None
        problem: str | None = None
        verified: bool | None = None
        if keyring is not None:
            try:
                manifest = verify_version(path, keyring).manifest
                verified = True
            except ArtifactRejected as exc:
                verified = False
                problem = str(exc)
        if manifest is None:
            manifest, unreadable = _read_manifest_unverified(path)
            problem = problem or unreadable
        infos.append(
            VersionInfo(
                version=version,
                active=version == current,
                verified=verified,
                problem=problem,
                created_at=manifest.created_at if manifest else None,
                auc=manifest.metrics.auc if manifest else None,
                precision=manifest.metrics.precision if manifest else None,
                recall=manifest.metrics.recall if manifest else None,
            )
        )
    return infos
