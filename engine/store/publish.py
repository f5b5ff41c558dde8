"""Publishing a new model version: all of it, signed, or nothing.

``publish`` writes ``<root>/<vertical>/v<X.Y.Z>/`` (layout in ``engine.store.layout``,
checks in ``engine.store.verify``): the given files, ``manifest.json`` listing each
file's SHA-256 (``engine.store.manifest``) and ``manifest.sig`` (``engine.store.signing``).

Everything is first written into a dot-prefixed temporary directory
``<root>/<vertical>/.tmp-v<X.Y.Z>-<random>`` next to the final one; every file and the
directory are fsynced, then the directory is renamed into place (refusing to replace
anything, even an empty directory, where the platform allows) and the parent is fsynced.
A version directory therefore either does not exist or is complete, and it is never
changed afterwards: its files are made read-only and publishing an existing version
fails. On any failure the temporary directory is removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from engine.errors import StoreError
from engine.store.layout import (
    fsync_dir,
    temp_name,
    version_dir,
    write_file_synced,
)
from engine.store.manifest import Manifest, decode_manifest, encode_manifest
from engine.store.signing import SigningKey
from engine.store.verify import MANIFEST_NAME, RESERVED_NAMES, SIGNATURE_NAME

FILE_MODE = 0o444
DIR_MODE = 0o755
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _check_file_name(name: str) -> None:
    if (
        not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or (os.altsep is not None and os.altsep in name)
    ):
        raise StoreError(
            f"invalid file name {name!r}: a plain name, not dot-prefixed, without separators"
        )
    if name in RESERVED_NAMES:
        raise StoreError(f"{name} is written by publish itself; it cannot be a model file")


def _renameat2_noreplace() -> Callable[[bytes, bytes], int] | None:
    """Return libc's ``renameat2(..., RENAME_NOREPLACE)`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int

    def rename(src: bytes, dst: bytes) -> int:
        result: int = func(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE)
        return 0 if result == 0 else ctypes.get_errno()

    return rename


_NOREPLACE = _renameat2_noreplace()


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename a directory, failing with FileExistsError if ``dst`` exists."""
    if _NOREPLACE is not None:
        err = _NOREPLACE(os.fsencode(src), os.fsencode(dst))
        if err == 0:
            return
        if err in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: the filesystem lacks it
            raise OSError(err, os.strerror(err), str(dst))
    # Fallback: a small window in which an empty directory created at ``dst`` would be
    # replaced; a non-empty one still makes rename fail.
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    try:
        src.rename(dst)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(exc.errno, exc.strerror, str(dst)) from None
        raise


def publish(
    root: Path,
    vertical: str,
    version: str,
    files: Mapping[str, bytes],
    manifest_fields: Callable[[dict[str, str]], Manifest],
    signing_key: SigningKey,
) -> Path:
    """Write, sign and publish a new immutable model version.

    Args:
        root: The model root.
        vertical: The vertical name.
        version: The new version, ``X.Y.Z``; it must not exist yet.
        files: The version's files (e.g. ``model.txt``, ``encoders.npy``) by plain name.
        manifest_fields: Called with ``{name: sha256 hex}`` of the files; returns the
            complete manifest, whose ``files``, ``vertical`` and ``version`` must be
            exactly those.
        signing_key: The key that signs ``manifest.json``.

    Returns:
        The final version directory.

    Raises:
        StoreError: Invalid vertical, version or file name; the version exists already;
            the manifest does not match; or writing failed. Nothing is left behind.
    """
    try:
        final = version_dir(root, vertical, version)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    for name in files:
        _check_file_name(name)
    if os.path.lexists(final):
        raise StoreError(f"{vertical} {version} already exists at {final}; versions are immutable")
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / temp_name(final.name)
        tmp.mkdir(mode=0o700)
    except OSError as exc:
        raise StoreError(f"cannot create a temporary directory in {parent}: {exc}") from exc
    try:
        hashes: dict[str, str] = {}
        for name, data in files.items():
            write_file_synced(tmp / name, data, FILE_MODE)
            hashes[name] = hashlib.sha256(data).hexdigest()

        manifest = manifest_fields(dict(hashes))
        if not isinstance(manifest, Manifest):
            raise StoreError(f"manifest_fields returned {type(manifest).__name__}, not Manifest")
        if manifest.files != hashes:
            raise StoreError("the manifest's files do not match the published files' sha256")
        if manifest.vertical != vertical or manifest.version != version:
            raise StoreError(
                f"the manifest is for {manifest.vertical} {manifest.version}, "
                f"not {vertical} {version}"
            )
        manifest_bytes = encode_manifest(manifest)
        try:
            decode_manifest(manifest_bytes)
        except msgspec.DecodeError as exc:
            raise StoreError(f"the manifest would not decode: {exc}") from exc
        write_file_synced(tmp / MANIFEST_NAME, manifest_bytes, FILE_MODE)
        write_file_synced(tmp / SIGNATURE_NAME, signing_key.sign(manifest_bytes), FILE_MODE)
        tmp.chmod(DIR_MODE)
        fsync_dir(tmp)
        try:
            _rename_noreplace(tmp, final)
        except FileExistsError:
            raise StoreError(
                f"{vertical} {version} appeared at {final} while publishing; versions are immutable"
            ) from None
        fsync_dir(parent)
    except OSError as exc:
        _remove(tmp)
        raise StoreError(f"cannot publish {vertical} {version}: {exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return final


def _remove(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(tmp)
