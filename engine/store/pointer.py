"""The active version of each vertical, and its activation history.

Files this module owns, in ``<root>/<vertical>/``:

- ``CURRENT``: the active version as ``X.Y.Z`` followed by a newline (surrounding
  whitespace is tolerated on read). It is the single source of truth: the service
  serves the version it names, and nothing else is consulted to decide that. It must be
  a regular file of at most ``MAX_CURRENT_BYTES``: a symlink (which could point the
  reader at any file on the host) or anything else is refused as corrupt.
- ``HISTORY``: the activation stack, one version per line, oldest first, newest last.
  Its top is normally the ``CURRENT`` version. Activating pushes; rolling back pops.
- ``SHADOW`` (optional): a shadow challenger version, same format as ``CURRENT``; it is
  scored beside the active version and never answers (``set_shadow``, ``read_shadow``).
- ``.lock``: an empty file locked (``flock``) while a pointer change is in progress, so
  two operators cannot interleave updates. Dot-prefixed, so listings ignore it.

Both files are replaced atomically (temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), but not together, so a crash can leave them
disagreeing. The write order makes every such state recoverable exactly: ``activate``
writes ``HISTORY`` (with the new version pushed) *before* ``CURRENT``, and ``rollback``
writes ``CURRENT`` *before* ``HISTORY`` (with the old version popped). Either way the
interrupted state has ``CURRENT`` somewhere in ``HISTORY`` with extra entries after it,
so readers reconcile by cutting ``HISTORY`` after the last occurrence of ``CURRENT``
(or appending ``CURRENT`` when it does not occur, e.g. after a manual edit; without
``CURRENT`` nothing is active and the stack is empty). A missing
``HISTORY`` (an older store) makes rollback fall back to the highest published version
below the current one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import StoreError
from engine.store.layout import (
    atomic_write,
    fsync_dir,
    is_version,
    list_versions,
    parse_version,
    version_dir,
    vertical_dir,
)
from engine.store.signing import Keyring
from engine.store.verify import verify_version

CURRENT_NAME = "CURRENT"
HISTORY_NAME = "HISTORY"
SHADOW_NAME = "SHADOW"
LOCK_NAME = ".lock"
MAX_CURRENT_BYTES = 64
MAX_HISTORY_BYTES = 1 << 20


def _vertical_dir(root: Path, vertical: str) -> Path:
    try:
        return vertical_dir(root, vertical)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def _shown(path: Path) -> str:
    """Name a pointer file as ``<vertical>/<name>``: no absolute path in messages."""
    return f"{path.parent.name}/{path.name}"


def _read_text(path: Path, limit: int) -> str | None:
    """Read a small pointer file without following a symlink; None when it is absent."""
    # O_NONBLOCK: opening a FIFO planted as CURRENT must not hang the reader.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{_shown(path)} is a symlink, not a file") from None
        raise StoreError(f"cannot read {_shown(path)}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{_shown(path)} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise StoreError(f"cannot read {_shown(path)}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise StoreError(f"{_shown(path)} is over {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"{_shown(path)} is not UTF-8 text") from None


def read_current(root: Path, vertical: str) -> str | None:
    """Return the active version of a vertical.

    Args:
        root: The model root.
        vertical: The vertical name.

    Returns:
        The version named by ``CURRENT``, or None when there is no ``CURRENT``.

    Raises:
        StoreError: ``CURRENT`` is a symlink or not a regular file, is over
            ``MAX_CURRENT_BYTES``, is not UTF-8 or does not hold a valid version; or the
            vertical name is invalid.
    """
    return _read_pointer(_vertical_dir(root, vertical) / CURRENT_NAME)


def _read_pointer(path: Path) -> str | None:
    """The version a pointer file (``CURRENT``, ``SHADOW``) names, or None without one."""
    text = _read_text(path, MAX_CURRENT_BYTES)
    if text is None:
        return None
    version = text.strip()
    if not is_version(version):
        raise StoreError(f"{_shown(path)} holds {text[:40]!r}, not a version X.Y.Z")
    return version


def _read_raw_history(root: Path, vertical: str) -> list[str] | None:
    path = _vertical_dir(root, vertical) / HISTORY_NAME
    text = _read_text(path, MAX_HISTORY_BYTES)
    if text is None:
        return None
    stack = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if not is_version(entry):
            raise StoreError(
                f"{_shown(path)} line {number} holds {entry[:40]!r}, not a version X.Y.Z"
            )
        stack.append(entry)
    return stack


def _reconcile(history: list[str], current: str | None) -> list[str]:
    """Make the stack agree with ``CURRENT`` (see the module docstring)."""
    if current is None:
        return []
    if history and history[-1] == current:
        return list(history)
    if current in history:
        last = len(history) - 1 - history[::-1].index(current)
        return history[: last + 1]
    return [*history, current]


def read_history(root: Path, vertical: str) -> list[str]:
    """Return the activation stack of a vertical, oldest first, reconciled with CURRENT.

    Args:
        root: The model root.
        vertical: The vertical name.

    Returns:
        The stack, whose last entry is the active version when there is one; without a
        ``HISTORY`` file, just the active version (or nothing).

    Raises:
        StoreError: ``CURRENT`` or ``HISTORY`` is corrupt, or the vertical name is
            invalid.
    """
    current = read_current(root, vertical)
    return _reconcile(_read_raw_history(root, vertical) or [], current)


def _format_stack(stack: list[str]) -> bytes:
    return "".join(f"{version}\n" for version in stack).encode("ascii")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise StoreError(f"{directory} does not exist") from None
    except OSError as exc:
        raise StoreError(f"cannot lock {directory}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc


def _existing_version_dir(root: Path, vertical: str, version: str) -> Path:
    try:
        path = version_dir(root, vertical, version)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if not os.path.lexists(path):
        published = ", ".join(list_versions(root, vertical)) or "none"
        raise StoreError(f"{vertical} has no version {version} (published: {published})")
    return path


def activate(root: Path, vertical: str, version: str, keyring: Keyring) -> str | None:
    """Make ``version`` the active version of ``vertical``, after verifying it fully.

    ``HISTORY`` (with ``version`` pushed) is written before ``CURRENT``; both atomically.

    Args:
        root: The model root.
        vertical: The vertical name.
        version: The version to activate, ``X.Y.Z``.
        keyring: The trusted keys to verify the version with.

    Returns:
        The previously active version (``version`` itself when it already was active,
        in which case nothing is written), or None when none was.

    Raises:
        StoreError: Invalid name, no such version, or the pointer files are corrupt or
            cannot be written.
        ArtifactRejected: The version failed verification; nothing was changed.
    """
    path = _existing_version_dir(root, vertical, version)
    directory = path.parent
    with _locked(directory):
        verify_version(path, keyring)
        previous = read_current(root, vertical)
        if previous == version:
            return previous
        stack = read_history(root, vertical)
        stack.append(version)
        _write(directory / HISTORY_NAME, _format_stack(stack))
        _write(directory / CURRENT_NAME, f"{version}\n".encode("ascii"))
        return previous


def rollback(root: Path, vertical: str, keyring: Keyring) -> tuple[str, str]:
    """Re-activate the version that was active before the current one.

    Pops the current version (and any repeats of it) off the activation stack and
    activates the entry below, which must verify. Repeated rollbacks walk further back.
    Without a ``HISTORY`` file, the target is the highest published version below the
    current one. ``CURRENT`` is written before ``HISTORY`` (see the module docstring).

    Args:
        root: The model root.
        vertical: The vertical name.
        keyring: The trusted keys to verify the target with.

    Returns:
        ``(from_version, to_version)``.

    Raises:
        StoreError: Nothing to roll back to, invalid name, or the pointer files are
            corrupt or cannot be written.
        ArtifactRejected: The target failed verification; nothing was changed.
    """
    directory = _vertical_dir(root, vertical)
    if not directory.is_dir():
        raise StoreError(f"nothing to roll back to: {vertical} has no models in {root}")
    with _locked(directory):
        current = read_current(root, vertical)
        if current is None:
            raise StoreError(f"nothing to roll back to: {vertical} has no active version")
        history = _read_raw_history(root, vertical)
        reconciled: list[str] = []
        if history is None:
            below = parse_version(current)
            stack = [v for v in list_versions(root, vertical) if parse_version(v) < below]
            if not stack:
                raise StoreError(
                    f"nothing to roll back to: no HISTORY and no version of {vertical} "
                    f"below {current}"
                )
        else:
            reconciled = _reconcile(history, current)
            stack = list(reconciled)
            while stack and stack[-1] == current:
                stack.pop()
            if not stack:
                raise StoreError(
                    f"nothing to roll back to: {current} is the oldest activation of {vertical}"
                )
        target = stack[-1]
        verify_version(version_dir(root, vertical, target), keyring)
        if history is not None and history != reconciled:
            # Persist the reconciliation first: CURRENT must be found in the HISTORY
            # that a crash right after writing CURRENT would leave behind.
            _write(directory / HISTORY_NAME, _format_stack(reconciled))
        _write(directory / CURRENT_NAME, f"{target}\n".encode("ascii"))
        _write(directory / HISTORY_NAME, _format_stack(stack))
        return current, target


def read_shadow(root: Path, vertical: str) -> str | None:
    """Return the shadow (challenger) version of a vertical, or None when none is set.

    ``SHADOW`` is read with the same checks as ``CURRENT`` (a regular file of at most
    ``MAX_CURRENT_BYTES`` holding ``X.Y.Z``).

    Raises:
        StoreError: ``SHADOW`` is corrupt, or the vertical name is invalid.
    """
    return _read_pointer(_vertical_dir(root, vertical) / SHADOW_NAME)


def set_shadow(root: Path, vertical: str, version: str | None, keyring: Keyring) -> str | None:
    """Make ``version`` the vertical's shadow challenger (after verifying it), or clear it.

    A shadow version is scored next to the active one, after each response, and never
    answers a caller; promoting it is an ordinary ``activate``.

    Returns:
        The previous shadow version, or None.

    Raises:
        StoreError: Invalid name, no such version, the version is the active one, or the
            pointer cannot be written.
        ArtifactRejected: The version failed verification; nothing was changed.
    """
    directory = _vertical_dir(root, vertical)
    if version is None:
        with _locked(directory):
            previous = read_shadow(root, vertical)
            try:
                (directory / SHADOW_NAME).unlink(missing_ok=True)
                fsync_dir(directory)
            except OSError as exc:
                raise StoreError(f"cannot clear {directory / SHADOW_NAME}: {exc}") from exc
            return previous
    path = _existing_version_dir(root, vertical, version)
    with _locked(path.parent):
        verify_version(path, keyring)
        if read_current(root, vertical) == version:
            raise StoreError(f"{vertical} {version} is the active version, not a challenger")
        previous = read_shadow(root, vertical)
        _write(path.parent / SHADOW_NAME, f"{version}\n".encode("ascii"))
        return previous
