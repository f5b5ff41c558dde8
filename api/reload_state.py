"""The reload generation shared by the master and every worker: a tiny mmap'd file.

A reload (API call, or SIGHUP to the master) bumps the generation; each worker polls it
cheaply (one 8-byte read from shared memory), loads the versions the pointers name off
its hot path, swaps them in, and acknowledges the generation in its slot, so whoever
asked for the reload can wait until every live worker has switched.

Layout (``RUN_DIR/reload.state``, 4096 bytes, little-endian):

| offset | size | field |
| --- | --- | --- |
| 0 | 8 | magic ``b"MLSRLD01"`` |
| 8 | 8 | generation (u64), only ever increases |
| 64 + 32 * slot | 8 | pid of the worker in ``slot`` (0 = free) |
| 72 + 32 * slot | 8 | generation that worker has loaded |
| 80 + 32 * slot | 8 | when it acknowledged (ns since the epoch) |

Bumps take an exclusive ``flock`` on the file so two reloads never lose an increment.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
from pathlib import Path

import msgspec

MAGIC = b"MLSRLD01"
SIZE = 4096
MAX_SLOTS = 64
_GENERATION = struct.Struct("<Q")
_SLOT = struct.Struct("<QQQ")
_SLOTS_AT = 64
_SLOT_SIZE = 32


class WorkerSlot(msgspec.Struct, frozen=True):
    """What one worker has acknowledged."""

    slot: int
    pid: int
    generation: int
    acknowledged_at: float


class ReloadState:
    """A handle on the shared reload file (one per process)."""

    def __init__(self, path: Path) -> None:
        """Open an existing state file.

        Raises:
            ValueError: The file is not a reload state file.
        """
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(self._fd, SIZE)
        except ValueError:
            os.close(self._fd)
            raise
        if self._map[:8] != MAGIC:
            self.close()
            raise ValueError(f"{path} is not a reload state file")

    @classmethod
    def create(cls, path: Path) -> ReloadState:
        """Create (or reset) the state file at generation 0 and open it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(MAGIC + bytes(SIZE - len(MAGIC)))
        tmp.replace(path)
        return cls(path)

    def generation(self) -> int:
        """Return the current generation (a read from shared memory)."""
        value: int = _GENERATION.unpack_from(self._map, 8)[0]
        return value

    def bump(self) -> int:
        """Increase the generation by one and return the new value."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            generation = self.generation() + 1
            _GENERATION.pack_into(self._map, 8, generation)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return generation

    def acknowledge(self, slot: int, pid: int, generation: int) -> None:
        """Record that the worker in ``slot`` serves ``generation``."""
        _SLOT.pack_into(self._map, _offset(slot), pid, generation, time.time_ns())

    def release(self, slot: int, pid: int) -> None:
        """Free ``slot`` if ``pid`` still holds it (a replaced worker's slot)."""
        if _SLOT.unpack_from(self._map, _offset(slot))[0] == pid:
            _SLOT.pack_into(self._map, _offset(slot), 0, 0, 0)

    def workers(self) -> list[WorkerSlot]:
        """Return the occupied slots whose process is alive."""
        result = []
        for slot in range(MAX_SLOTS):
            pid, generation, at = _SLOT.unpack_from(self._map, _offset(slot))
            if pid and _alive(pid):
                result.append(WorkerSlot(slot, pid, generation, at / 1e9))
        return result

    def close(self) -> None:
        """Unmap and close the file."""
        if not self._map.closed:
            self._map.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _offset(slot: int) -> int:
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"worker slot {slot} is outside 0..{MAX_SLOTS - 1}")
    return _SLOTS_AT + _SLOT_SIZE * slot


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
