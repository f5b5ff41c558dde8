"""Process wiring: pinned workers with stable slots that survive a worker's death."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.integration.service import ServiceProcess


def allowed_cpus(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def core_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return " ".join(line.split()[4:6])
    raise AssertionError("no core limit")


def test_replaced_worker_keeps_its_slot_and_core(store, tmp_path):
    server = ServiceProcess(store.env(), tmp_path, workers=2)
    server.start()
    try:
        workers = {w.slot: w.pid for w in server.live_workers()}
        assert sorted(workers) == [0, 1]
        cpus = {slot: allowed_cpus(pid) for slot, pid in workers.items()}
        if len(os.sched_getaffinity(0)) > 1:
            assert cpus[0] != cpus[1] and all("," not in c and "-" not in c for c in cpus.values())
        os.kill(workers[1], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = {w.slot: w.pid for w in server.live_workers()}
            if now.get(1) not in (None, workers[1]) and len(now) == 2:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker in slot 1 was not replaced:\n{server.log()}")
        assert now[0] == workers[0]
        assert allowed_cpus(now[1]) == cpus[1]
        # No process of the service may dump core (its memory holds leads and keys),
        # the replaced worker included.
        for pid in (server.pid, *now.values()):
            assert core_limit(pid) == "0 0", pid
        client = server.client()
        for _ in range(4):
            assert client.request("GET", "/ready").status == 200
        client.close()
        assert "ml_scoring_latency_seconds" in server.metrics()
    finally:
        server.stop()
