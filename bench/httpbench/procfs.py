"""Readers of ``/proc``: CPU time samples, resident memory, child processes.

The parsers take the text of a ``/proc`` file and are pure; the readers return empty
text (so zeros) for a process that is gone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_VMRSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB\s*$", re.MULTILINE)


def parse_vmrss_kib(status: str) -> int:
    """Return ``VmRSS`` in KiB from the text of ``/proc/<pid>/status`` (0 if absent)."""
    match = _VMRSS.search(status)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds at one moment.

    Attributes:
        busy: The machine's busy time, summed over all cores.
        total: The machine's total time, summed over all cores.
        ours: Time used so far by the benchmark's own processes (servers, wrk, itself).
        server: Time used so far by the server's processes alone (master and workers).
    """

    busy: float
    total: float
    ours: float
    server: float = 0.0


def parse_proc_stat_cpu(stat: str) -> tuple[int, int]:
    """Return ``(busy, total)`` clock ticks from the aggregate ``cpu`` line of ``/proc/stat``.

    Busy is everything but idle and iowait, so it includes interrupts and the time the
    hypervisor gave to other guests (steal): all of it is capacity the servers lacked.
    """
    fields = [int(v) for v in stat.split("\n", 1)[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - (fields[4] if len(fields) > 4 else 0), total


def parse_pid_cpu_ticks(stat: str) -> int:
    """Return utime + stime clock ticks from ``/proc/<pid>/stat`` (0 when empty)."""
    fields = stat.rpartition(")")[2].split()
    # After the parenthesised command, index 0 is field 3 (state): utime and stime are
    # fields 14 and 15.
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0


def other_cpu_share(before: CpuSample, after: CpuSample) -> float:
    """Return the share of the machine's CPU capacity used by others between two samples.

    Others are every process that is not the benchmark's, interrupts and steal. A high
    share means the figures of that run are polluted by a neighbour.
    """
    total = after.total - before.total
    if total <= 0:
        return float("nan")
    others = (after.busy - before.busy) - (after.ours - before.ours)
    return min(1.0, max(0.0, others / total))


def read_proc_file(path: Path) -> str:
    """Return the text of a ``/proc`` file, empty when it is gone."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def read_proc(pid: int, name: str) -> str:
    """Return ``/proc/<pid>/<name>``, empty when the process is gone."""
    return read_proc_file(Path(f"/proc/{pid}/{name}"))


def children(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (scanning ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_proc(int(entry.name), "stat")
        # Fields after the parenthesised command: state ppid ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return sorted(found)


def gunicorn_master(pid: int) -> int:
    """Return the gunicorn master at or below ``pid`` (a wrapper may not exec)."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        if b"gunicorn" in read_proc(current, "cmdline").encode():
            return current
        queue.extend(children(current))
    return pid


@dataclass(frozen=True)
class Memory:
    """Resident memory of a gunicorn master and its workers, in KiB."""

    master_kib: int
    workers_kib: tuple[int, ...]

    def line(self) -> str:
        """One printable line."""
        each = ", ".join(f"{kib / 1024:.0f}" for kib in self.workers_kib) or "none"
        total = (self.master_kib + sum(self.workers_kib)) / 1024
        return f"master {self.master_kib / 1024:.0f} MiB, workers {each} MiB, total {total:.0f} MiB"


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_sample(pids: Iterable[int]) -> CpuSample:
    """Sample the machine's CPU time and the benchmark's.

    The benchmark's is that of ``pids`` plus this process and its waited-for children
    (wrk runs that have finished).
    """
    busy, total = parse_proc_stat_cpu(read_proc_file(Path("/proc/stat")))
    ticks = sum(parse_pid_cpu_ticks(read_proc(pid, "stat")) for pid in pids)
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system
    server = ticks / _CLOCK_TICKS
    return CpuSample(busy / _CLOCK_TICKS, total / _CLOCK_TICKS, server + mine, server)
