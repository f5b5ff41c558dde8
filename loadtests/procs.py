"""Resident memory and open file descriptors of a process, read from ``/proc`` (Linux).

RSS is ``VmRSS`` of ``/proc/<pid>/status``. Descriptors are the entries of
``/proc/<pid>/fd``, split by what they point at: sockets (``socket:[...]``) follow the
clients' connections, which a load balancer, or the kernel's accept queue, hands to
whichever worker; everything else (files, pipes, eventfds, epoll) belongs to the process
itself and is what a leak would grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessSample:
    """One process at one moment."""

    pid: int
    rss_bytes: int
    sockets: int
    other_fds: int

    @property
    def fds(self) -> int:
        """All open descriptors."""
        return self.sockets + self.other_fds

    @property
    def rss_mib(self) -> float:
        """RSS in MiB."""
        return self.rss_bytes / 2**20


def rss_bytes(pid: int, proc: Path = PROC) -> int:
    """The resident set size of ``pid``.

    Raises:
        ProcessLookupError: No such process (or it has no memory: a zombie).
    """
    try:
        text = (proc / str(pid) / "status").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            kib = line.split()[1]
            return int(kib) * 1024
    raise ProcessLookupError(pid)


def open_fds(pid: int, proc: Path = PROC) -> tuple[int, int]:
    """``(sockets, other descriptors)`` open in ``pid``.

    Raises:
        ProcessLookupError: No such process.
    """
    directory = proc / str(pid) / "fd"
    sockets = other = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for entry in entries:
        try:
            target = str(entry.readlink())
        except OSError:  # closed between the listing and the readlink
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            other += 1
    return sockets, other


def sample(pid: int, proc: Path = PROC) -> ProcessSample:
    """RSS and descriptors of ``pid`` now.

    Raises:
        ProcessLookupError: No such process.
    """
    sockets, other = open_fds(pid, proc)
    return ProcessSample(pid, rss_bytes(pid, proc), sockets, other)
