import os
import subprocess
import sys

import pytest

from api.reload_state import MAX_SLOTS, ReloadState


def test_generation_slots_and_release(tmp_path):
    path = tmp_path / "reload.state"
    state = ReloadState.create(path)
    assert state.generation() == 0 and state.workers() == []
    other = ReloadState(path)  # another process's view: the same shared memory
    assert other.bump() == 1 and state.generation() == 1
    state.acknowledge(3, os.getpid(), 1)
    [worker] = other.workers()
    assert (worker.slot, worker.pid, worker.generation) == (3, os.getpid(), 1)
    other.release(3, os.getpid() + 1)  # not its holder: ignored
    assert other.workers()
    other.release(3, os.getpid())
    assert other.workers() == []
    state.close()
    other.close()
    other.close()  # idempotent


def test_dead_workers_are_not_listed(tmp_path):
    state = ReloadState.create(tmp_path / "s")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    state.acknowledge(0, int(dead.stdout), 5)
    assert state.workers() == []


def test_bumps_from_many_processes_are_never_lost(tmp_path):
    path = tmp_path / "s"
    ReloadState.create(path).close()
    code = (
        "import sys; from api.reload_state import ReloadState\n"
        "s = ReloadState(__import__('pathlib').Path(sys.argv[1]))\n"
        "[s.bump() for _ in range(200)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(4)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert ReloadState(path).generation() == 800


def test_rejects_foreign_files_and_bad_slots(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"x" * 4096)
    with pytest.raises(ValueError, match="not a reload state file"):
        ReloadState(junk)
    state = ReloadState.create(tmp_path / "s")
    with pytest.raises(ValueError, match="outside"):
        state.acknowledge(MAX_SLOTS, 1, 1)
