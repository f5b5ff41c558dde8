"""Archive segment files: append-only JSON lines, one open segment per worker and vertical.

On disk (``LEAD_ARCHIVE_DIR``; directories created with mode 0700)::

    <archive dir>/<vertical>/<start>-<pid>-<seg8>.jsonl.open   being written by one worker
    <archive dir>/<vertical>/<start>-<pid>-<seg8>.jsonl        closed: complete, fsynced

``<start>`` is the UTC time the segment was opened (``YYYYMMDDTHHMMSS.ffffffZ``), ``<pid>`` the
writing worker's process id and ``<seg8>`` the first 8 hex digits of the segment's salt
(``engine.archive.codec``), so names never collide and sort by age. Each line is one
record (``engine.archive.codec``). Files are created with mode 0600 and opened with
``O_APPEND``; a segment is fsynced, renamed from ``.jsonl.open`` to ``.jsonl`` and its
directory fsynced when it reaches the size limit, when the archive key rotates, and when
the worker stops gracefully. A ``.jsonl.open`` file that no worker writes any more was
left by a crash: its records are readable, its last line may be cut short.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from engine.archive.errors import ArchiveError
from engine.store.layout import fsync_dir

DIR_VARIABLE = "LEAD_ARCHIVE_DIR"
OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"


class Segment:
    """One open segment file of one vertical."""

    def __init__(self, directory: Path, seg: str) -> None:
        """Create and open a new segment file in ``directory`` (made 0700 if absent).

        Args:
            directory: The vertical's directory in the archive.
            seg: The segment's salt in hex (its first 8 digits name the file).

        Raises:
            OSError: The directory or file cannot be created.
        """
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        start = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        self.path = directory / f"{start}-{os.getpid()}-{seg[:8]}{OPEN_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd: int | None = os.open(self.path, flags, 0o600)
        self.size = 0
        fsync_dir(directory)  # the new name survives a crash, so its records are found

    def append(self, data: bytes) -> None:
        """Append whole records (``O_APPEND``; a short write is continued)."""
        assert self._fd is not None, "segment is closed"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def close(self) -> Path:
        """Fsync, close and rename to ``.jsonl``; return the closed file's path."""
        if self._fd is None:
            return self.path
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        closed = self.path.with_name(self.path.name.removesuffix(OPEN_SUFFIX) + CLOSED_SUFFIX)
        self.path.replace(closed)
        fsync_dir(closed.parent)
        self.path = closed
        return closed

    def abandon(self) -> None:
        """Close the file descriptor after a write error, keeping the ``.open`` name."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def prepare_directory(directory: Path) -> None:
    """Create the archive directory (mode 0700) and check that it can be written.

    Raises:
        ArchiveError: It cannot be created or written; the message names the variable.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ArchiveError(
            f"{DIR_VARIABLE}={directory}: cannot create it: {exc.strerror}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ArchiveError(f"{DIR_VARIABLE}={directory}: not writable by this user")


def segment_files(directory: Path) -> list[Path]:
    """Every segment file (closed and open) directly in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and (p.name.endswith(CLOSED_SUFFIX) or p.name.endswith(OPEN_SUFFIX))
    ]
    return sorted(files, key=lambda p: p.name)
