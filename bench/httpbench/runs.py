"""Measuring one app: start it, warm it up, load it (and its reload window), stop it.

Also the choice of the median round when the apps run several rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from httpbench.common import SCORE_PATH, progress
from httpbench.load import Load, run_load
from httpbench.parsing import LoadResult
from httpbench.procfs import Memory
from httpbench.reload import Reloader, ReloadLog, post_json
from httpbench.servers import AppSpec, measure_memory, running


@dataclass
class AppRun:
    """What was measured for one app."""

    result: LoadResult
    memory: Memory
    ready: str = ""
    answer: str = ""
    reload_window: LoadResult | None = None
    reload_log: ReloadLog | None = None
    memory_after_reloads: Memory | None = None


def bench_app(
    spec: AppSpec,
    load: Load,
    workdir: Path,
    workers: int,
    warmup: int,
    reload_admin: str | None = None,
) -> AppRun:
    """Start one app, warm it up, measure it (and its reload window), and stop it."""
    progress(f"{spec.label}: starting on port {spec.port}")
    with running(spec, workdir, workers) as server:
        status, body = post_json(spec, SCORE_PATH, load.body_file.read_bytes(), spec.authorization)
        answer = f"{status} {body.decode('utf-8', errors='replace')}"
        if warmup > 0:
            run_load(load, spec, warmup)
        progress(f"{spec.label}: measuring {load.duration} s")
        result = run_load(load, spec, load.duration, server)
        ready = server.ready_body.decode("utf-8", errors="replace")
        run = AppRun(result, measure_memory(server), ready, answer)
        if reload_admin is not None:
            progress(f"{spec.label}: measuring {load.duration} s with reloads")
            reloader = Reloader(spec, reload_admin, load.body_file.read_bytes())
            reloader.start()
            try:
                run.reload_window = run_load(load, spec, load.duration, server)
            finally:
                reloader.stopping.set()
                reloader.join(15)
            run.reload_log = reloader.log
            run.memory_after_reloads = measure_memory(server)
        return run


def pick_median(runs: Sequence[AppRun]) -> AppRun:
    """Return the run with the median throughput (the lower middle one for even counts)."""
    ordered = sorted(runs, key=lambda run: run.result.rps)
    return ordered[(len(ordered) - 1) // 2]
