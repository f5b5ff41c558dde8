"""Names and paths of the model store, and the small file-system helpers it relies on.

On disk, under the model root (``MODEL_PATH``)::

    <root>/<vertical>/                    one directory per vertical
        v<X.Y.Z>/                         one immutable directory per published version
        CURRENT                           the active version (see ``engine.store.pointer``)
        HISTORY                           the activation stack (see ``engine.store.pointer``)
        .tmp-*                            temporary files and directories, never listed

Vertical names match ``[a-z][a-z0-9_]{0,63}`` (the same rule as the configuration).
Versions are strict semantic versions ``X.Y.Z`` of non-negative decimal integers without
leading zeros (``0`` itself is allowed) and without pre-release or build suffixes; the
directory of version ``1.2.0`` is ``v1.2.0``. Versions are ordered numerically, so
``1.10.0`` sorts after ``1.9.0``. Anything else in a vertical directory is ignored by
the listings here (and reported as a layout problem when asked to verify it).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path

VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
"""A version ``X.Y.Z`` (use ``fullmatch``); ASCII digits only, no leading zeros."""

VERTICAL_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A vertical name (use ``fullmatch``)."""

VERSION_DIR_PREFIX = "v"
TEMP_PREFIX = ".tmp-"
# The LightGBM text model every version holds.
MODEL_FILE = "model.txt"
# A version's model report (written by training, hashed in the manifest like any file).
REPORT_FILE = "report.html"
# The model compiled for the tree kernel (``engine.inference.tree_layout``), hashed in the
# manifest like any file. Optional: a model the layout does not support, and every version
# published before the layout existed, lacks it and is served by the LightGBM C-API path.
MODEL_LAYOUT_FILE = "model.layout"


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse a strict ``X.Y.Z`` version.

    Args:
        text: The version, e.g. ``"1.10.0"`` (no ``v`` prefix, no whitespace).

    Returns:
        The three numbers, which compare in version order.

    Raises:
        ValueError: ``text`` is not a strict ``X.Y.Z`` version.
    """
    match = VERSION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid version {text!r}: expected X.Y.Z, e.g. 1.2.0")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


def is_version(text: str) -> bool:
    """Return whether ``text`` is a strict ``X.Y.Z`` version."""
    return VERSION_RE.fullmatch(text) is not None


def check_vertical(vertical: str) -> str:
    """Return ``vertical`` if it is a valid vertical name.

    Raises:
        ValueError: The name could escape the model root or breaks the naming rule.
    """
    if VERTICAL_RE.fullmatch(vertical) is None:
        raise ValueError(f"invalid vertical name {vertical!r}: must match {VERTICAL_RE.pattern}")
    return vertical


def vertical_dir(root: Path, vertical: str) -> Path:
    """Return ``root/vertical`` after checking the vertical name.

    Raises:
        ValueError: Invalid vertical name.
    """
    return root / check_vertical(vertical)


def version_dir(root: Path, vertical: str, version: str) -> Path:
    """Return the directory of one version: ``root/vertical/v{version}``.

    Raises:
        ValueError: Invalid vertical name or version.
    """
    parse_version(version)
    return vertical_dir(root, vertical) / f"{VERSION_DIR_PREFIX}{version}"


def version_of_dir_name(name: str) -> str | None:
    """Return the version named by a directory name ``v<X.Y.Z>``, or None."""
    if name.startswith(VERSION_DIR_PREFIX) and is_version(name[len(VERSION_DIR_PREFIX) :]):
        return name[len(VERSION_DIR_PREFIX) :]
    return None


def sort_versions(versions: list[str]) -> list[str]:
    """Return valid versions sorted in version order (oldest first)."""
    return sorted(versions, key=parse_version)


def list_versions(root: Path, vertical: str) -> list[str]:
    """List the published versions of a vertical, oldest first.

    Only directories named ``v<X.Y.Z>`` count; temporary directories and any other
    entry are ignored. The versions are not verified (see ``engine.store.verify``).

    Args:
        root: The model root.
        vertical: The vertical name.

    Returns:
        Versions (without the ``v``) in semantic-version order; empty when the vertical
        directory does not exist.

    Raises:
        ValueError: Invalid vertical name.
    """
    base = vertical_dir(root, vertical)
    try:
        entries = list(os.scandir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        version = version_of_dir_name(entry.name)
        if version is not None and entry.is_dir():
            found.append(version)
    return sort_versions(found)


def list_verticals(root: Path) -> list[str]:
    """List the verticals that have anything in the store, sorted by name.

    A vertical is a directory with a valid vertical name that holds at least one version
    directory or a ``CURRENT`` pointer; other directories (a key directory, say) are
    not verticals.

    Args:
        root: The model root.

    Returns:
        Vertical names; empty when ``root`` does not exist.
    """
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        if VERTICAL_RE.fullmatch(entry.name) is None or not entry.is_dir():
            continue
        path = Path(entry.path)
        if (path / "CURRENT").is_file() or list_versions(root, entry.name):
            found.append(entry.name)
    return sorted(found)


def temp_name(stem: str) -> str:
    """Return a fresh dot-prefixed temporary name ``.tmp-{stem}-{random}``."""
    return f"{TEMP_PREFIX}{stem}-{secrets.token_hex(8)}"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames, creations) to stable storage."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_synced(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Create ``path`` exclusively (never following a symlink), write ``data``, fsync.

    Raises:
        FileExistsError: ``path`` already exists.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Writes a dot-prefixed temporary file in the same directory (created with ``mode``,
    so a secret is never readable by others, not even briefly), fsyncs it, moves it over
    ``path`` with ``os.replace`` and fsyncs the directory. Readers see either the old or
    the new content, never a mix; on failure the temporary file is removed.
    """
    tmp = path.with_name(temp_name(path.name))
    try:
        write_file_synced(tmp, data, mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
