"""Memory of the real service per worker: RSS and PSS of the master and of every worker.

Starts the service as ``make run`` does (``ml-service serve``: gunicorn with the
repository's ``gunicorn.conf.py``, ``bench/httpbench/servers.py``), all four verticals
loaded, and reads ``/proc/<pid>/smaps_rollup`` of the gunicorn master and of each worker
at two moments:

- ``ready``: every worker serves (``ml_workers_live`` equals the worker count and
  ``ml_model_loaded`` is 1 for every vertical, from the master's ``/metrics``), plus a
  short settle;
- ``loaded``: after a short load of scoring requests (``--requests`` per worker, the four
  verticals in turn, on many keep-alive connections that reconnect often so that every
  worker gets its share).

for two model sets, each with 2 and with 8 workers (``--workers``):

- ``demo``: the demo models (auto v1.1.0 and v1.0.0 on disk, 1.1.0 active; one version of
  each other vertical), trained by the ``ml-service`` commands like ``bench_http``.
- ``large``: one large model per vertical, trained with ``bench_cache.large_config``'s
  parameters (2,000 rounds of 255 leaves at a small learning rate; the pipeline keeps the
  best iteration; the output's header prints each model's trees and text size). The large
  auto model cannot be published under the other verticals: a version's signed manifest
  names its vertical (checked at load) and carries the features leads are encoded with,
  and auto's features are not home's, so a copy would need a forged manifest and would
  refuse every home lead. Each vertical gets its own, trained on its own synthetic leads
  (``--train-jobs`` at a time); that takes several minutes once, and ``--workdir`` keeps
  the models for the next run (with them cached, the default run takes about a minute).

Why PSS: RSS counts every page a process maps, shared or not, so summing it over workers
counts shared code and the page cache once per worker. PSS (proportional set size) splits
each shared page between the processes that map it, so the sum of PSS over the master and
its workers is what the service costs the machine, and its growth per extra worker is what
one more worker costs: ``(total PSS with 8 workers - total PSS with 2) / 6``, the figure
of issue 10 ("each extra worker adds about 32 MiB of PSS with a small model"). USS (pages
only this process maps) is printed beside: memory that no sharing can reclaim. PSS also
splits the pages of shared libraries and of the Python binary with every other process on
the machine that maps them, so other Python processes running meanwhile lower it a
little; run the benchmark on a quiet machine, and compare configs within one run.

``--conf PATH`` (repeatable) runs the same cases with other gunicorn config files, side by
side in one run (each case's configs one after another), e.g. the config of an earlier
commit (``git show HEAD~1:gunicorn.conf.py > /tmp/before.py``) to measure a change of the
process wiring; ``--conf repo`` names the repository's own (``ml-service serve``).

Run ``python bench/bench_memory.py --help`` for the options (``--models``, ``--workers``,
``--requests``, ``--workdir``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import msgspec
from bench_cache import large_config
from httpbench.common import (
    DEFAULT_CONFIG,
    HOST,
    ROOT,
    SCORE_PATH,
    VERTICALS,
    progress,
    stop_servers_on_signals,
)
from httpbench.procfs import children, gunicorn_master, read_proc
from httpbench.servers import AppSpec, Server, ours_spec
from httpbench.workspace import (
    TRAINING_ROWS,
    Workspace,
    mint_tokens,
    open_workspace,
    prepare_models,
)

from engine.config import ModelConfig, load_config
from engine.store.signing import Keyring, SigningKey
from engine.training.pipeline import train_vertical
from engine.training.synth import write_csv

MODEL_SETS = ("demo", "large")
REPO_CONF = "repo"
LARGE_VERSION = "1.0.0"
READY_TIMEOUT_S = 600.0  # 8 workers parsing four large models on a small machine
REQUESTS_PER_CONNECTION = 20  # then reconnect: a new connection may land on another worker
CONNECTIONS_PER_WORKER = 4
MIB = 1024.0

_SMAPS_FIELD = re.compile(r"^(\w+):\s+(\d+)\s+kB\s*$", re.MULTILINE)
_WORKERS_LIVE = re.compile(r"^ml_workers_live\{[^}]*\}\s+(\S+)$", re.MULTILINE)
_MODEL_LOADED = re.compile(r'^ml_model_loaded\{[^}]*vertical="(\w+)"[^}]*\}\s+(\S+)$', re.MULTILINE)


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """Return the ``kB`` fields of ``/proc/<pid>/smaps_rollup`` (empty for a gone process)."""
    return {name: int(value) for name, value in _SMAPS_FIELD.findall(text)}


@dataclass(frozen=True)
class ProcessMemory:
    """Memory of one process, in KiB."""

    rss: int
    pss: int
    uss: int  # private pages: Private_Clean + Private_Dirty

    @classmethod
    def of(cls, pid: int) -> ProcessMemory:
        """Read ``/proc/<pid>/smaps_rollup`` (zeros when the process is gone)."""
        fields = parse_smaps_rollup(read_proc(pid, "smaps_rollup"))
        private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        return cls(fields.get("Rss", 0), fields.get("Pss", 0), private)


@dataclass(frozen=True)
class Snapshot:
    """The master's and every worker's memory at one moment."""

    master: ProcessMemory
    workers: tuple[ProcessMemory, ...]

    @property
    def total_pss(self) -> int:
        """What the service costs the machine: PSS summed over all its processes."""
        return self.master.pss + sum(w.pss for w in self.workers)

    @property
    def total_rss(self) -> int:
        """RSS summed over all processes (counts shared pages once per process)."""
        return self.master.rss + sum(w.rss for w in self.workers)


def snapshot(master: int) -> tuple[Snapshot, tuple[int, ...]]:
    """Read the memory of ``master`` and its children; also return the children's pids."""
    pids = tuple(children(master))
    return Snapshot(ProcessMemory.of(master), tuple(ProcessMemory.of(p) for p in pids)), pids


@dataclass(frozen=True)
class CaseResult:
    """One server run: model set, config, worker count, and its two snapshots."""

    models: str
    conf: str
    workers: int
    ready: Snapshot
    loaded: Snapshot
    ok: int
    failed: int
    replaced: bool  # a worker pid changed during the run (a restart would skew the figures)


# -- models ---------------------------------------------------------------------------


def large_vertical_config(config: ModelConfig, vertical: str) -> ModelConfig:
    """Return ``config`` with ``bench_cache.large_config``'s training applied to ``vertical``.

    ``large_config`` enlarges auto; its changes (rounds, early stopping, and the params it
    overrides) are applied to ``vertical``'s own training block, so each vertical keeps its
    target and splits.
    """
    reference = config.verticals["auto"].training
    large = large_config(config).verticals["auto"].training
    overrides = {k: v for k, v in large.params.items() if reference.params.get(k) != v}
    own = config.verticals[vertical]
    training = msgspec.structs.replace(
        own.training,
        num_boost_round=large.num_boost_round,
        early_stopping_rounds=large.early_stopping_rounds,
        params={**own.training.params, **overrides},
    )
    verticals = {**config.verticals, vertical: msgspec.structs.replace(own, training=training)}
    return msgspec.structs.replace(config, verticals=verticals)


def train_large(space_root: str, large_root: str, vertical: str) -> str:
    """Train and activate ``vertical``'s large model (runs in a pool process)."""
    space = Workspace(Path(space_root))
    data = space.root / f"{vertical}.csv"
    if not data.exists():
        write_csv(vertical, TRAINING_ROWS, 7, data)
    config = large_vertical_config(load_config(DEFAULT_CONFIG), vertical)
    train_vertical(
        config,
        vertical,
        data,
        LARGE_VERSION,
        Path(large_root),
        SigningKey.load(space.keys / "model-signing.key"),
        activate_with=Keyring.load(space.keys / "trusted"),
    )
    return vertical


def prepare_large(space: Workspace, large_root: Path, jobs: int) -> None:
    """Train the verticals' large models that are not in ``large_root`` yet."""
    todo = [v for v in VERTICALS if not (large_root / v / f"v{LARGE_VERSION}").exists()]
    if not todo:
        return
    progress(f"training large models for {', '.join(todo)} ({jobs} at a time; minutes each)")
    # spawn: a fresh interpreter per trainer, nothing inherited from this process.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(train_large, str(space.root), str(large_root), v) for v in todo]
        for future in futures:
            progress(f"  large {future.result()} trained")


def describe_models(root: Path) -> str:
    """One line: each vertical's active version, its trees and model text size."""
    parts = []
    for vertical in VERTICALS:
        version = (root / vertical / "CURRENT").read_text(encoding="utf-8").strip()
        directory = root / vertical / f"v{version}"
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        trees = manifest.get("training", {}).get("num_trees", "?")
        size = (directory / "model.txt").stat().st_size / 1e6
        parts.append(f"{vertical} v{version} {trees} trees {size:.1f} MB")
    return "; ".join(parts)


# -- one server run -------------------------------------------------------------------


def server_spec(space: Workspace, model_root: Path, conf: str, workers: int, token: str) -> AppSpec:
    """The service as ``make run`` starts it, or under another gunicorn config file."""
    spec = ours_spec(space, workers, token)
    spec.env["MODEL_PATH"] = str(model_root)
    if conf != REPO_CONF:
        # What ``ml-service serve`` execs (api.cli.serve_command), with another -c.
        spec.env["BIND"] = f"{HOST}:{spec.port}"
        spec.env["WORKERS"] = str(workers)
        spec.argv = [sys.executable, "-m", "gunicorn", "-c", conf]
    return spec


def metrics_text(spec: AppSpec) -> str:
    """Return the master's ``/metrics`` text (empty when it does not answer)."""
    connection = http.client.HTTPConnection(HOST, int(spec.env["METRICS_PORT"]), timeout=5)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        return response.read().decode() if response.status == 200 else ""
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        connection.close()


def all_serving(text: str, workers: int) -> bool:
    """Whether the metrics show ``workers`` live workers with every vertical loaded."""
    live = _WORKERS_LIVE.search(text)
    loaded = {vertical: float(value) for vertical, value in _MODEL_LOADED.findall(text)}
    return (
        live is not None
        and float(live.group(1)) == workers
        and all(loaded.get(v) == 1.0 for v in VERTICALS)
    )


def wait_serving(server: Server, master: int, workers: int) -> None:
    """Wait until every worker has loaded every vertical.

    Raises:
        RuntimeError: The server exited, or was not ready in time.
    """
    assert server.process is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the service exited:\n{server.log_tail()}")
        if len(children(master)) == workers and all_serving(metrics_text(server.spec), workers):
            return
        time.sleep(0.25)
    raise RuntimeError(f"not serving after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def request_bodies() -> list[bytes]:
    """One scoring request per vertical, from ``examples/leads``."""
    bodies = []
    for vertical in VERTICALS:
        lead = json.loads((ROOT / "examples" / "leads" / f"{vertical}.json").read_text())
        bodies.append(json.dumps({"vertical": vertical, "lead_data": lead}).encode())
    return bodies


def drive_load(spec: AppSpec, total: int, connections: int) -> tuple[int, int]:
    """Send ``total`` scoring requests over ``connections`` threads; return (ok, failed)."""
    bodies = request_bodies()
    headers = {"Authorization": spec.authorization, "Content-Type": "application/json"}
    numbers = itertools.count()  # next() on a count is atomic under the GIL
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def lane() -> None:
        ok = failed = 0
        connection: http.client.HTTPConnection | None = None
        used = 0
        while (i := next(numbers)) < total:
            if connection is None or used >= REQUESTS_PER_CONNECTION:
                if connection is not None:
                    connection.close()
                connection, used = spec.connection(10.0), 0
            try:
                connection.request("POST", SCORE_PATH, bodies[i % len(bodies)], headers)
                response = connection.getresponse()
                response.read()
                ok, failed = (ok + 1, failed) if response.status == 200 else (ok, failed + 1)
                used += 1
            except (OSError, http.client.HTTPException):
                failed += 1
                connection.close()
                connection = None
        if connection is not None:
            connection.close()
        with lock:
            counts["ok"] += ok
            counts["failed"] += failed

    threads = [threading.Thread(target=lane) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts["ok"], counts["failed"]


def run_case(
    space: Workspace,
    model_root: Path,
    models: str,
    conf: str,
    workers: int,
    token: str,
    args: argparse.Namespace,
) -> CaseResult:
    """Start the service, measure it ready and after a short load, stop it."""
    spec = server_spec(space, model_root, conf, workers, token)
    run_dir = Path(spec.env["RUN_DIR"])
    server = Server(spec, space.root / f"memory-{models}-{workers}-{conf_label(conf)}.log")
    try:
        server.start()
        server.wait_ready(workers, timeout=READY_TIMEOUT_S)
        assert server.process is not None
        master = gunicorn_master(server.process.pid)
        wait_serving(server, master, workers)
        time.sleep(args.settle)
        ready, pids = snapshot(master)
        ok, failed = drive_load(spec, args.requests * workers, CONNECTIONS_PER_WORKER * workers)
        time.sleep(args.settle)
        loaded, pids_after = snapshot(master)
        label = conf_label(conf)
        return CaseResult(models, label, workers, ready, loaded, ok, failed, pids != pids_after)
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


# -- report ---------------------------------------------------------------------------


def mib(kib: float) -> str:
    """KiB as MiB, no decimals."""
    return f"{kib / MIB:.0f}"


def spread(values: Sequence[int]) -> str:
    """Mean of ``values`` in MiB, with min-max when they differ by 1 MiB or more."""
    mean = sum(values) / len(values)
    low, high = min(values), max(values)
    return mib(mean) if high - low < MIB else f"{mib(mean)} ({mib(low)}-{mib(high)})"


def print_table(results: Sequence[CaseResult]) -> None:
    """The per-process table, then the increment per extra worker."""
    print("\nMemory in MiB (RSS and PSS from /proc/<pid>/smaps_rollup; USS: private pages);")
    print("workers: mean (min-max). total PSS = master + workers: what the service costs.")
    head = (
        f"  {'conf':<18}{'models':<7}{'workers':>8}  {'phase':<8}{'master RSS/PSS':>15}"
        f"{'worker RSS':>16}{'worker PSS':>16}{'worker USS':>16}{'total PSS':>10}"
    )
    print(head)
    for r in results:
        for phase, snap in (("ready", r.ready), ("loaded", r.loaded)):
            master = f"{mib(snap.master.rss)}/{mib(snap.master.pss)}"
            print(
                f"  {r.conf:<18}{r.models:<7}{r.workers:>8}  {phase:<8}{master:>15}"
                f"{spread([w.rss for w in snap.workers]):>16}"
                f"{spread([w.pss for w in snap.workers]):>16}"
                f"{spread([w.uss for w in snap.workers]):>16}{mib(snap.total_pss):>10}"
            )
        notes = []
        if r.failed:
            notes.append(f"{r.failed} of {r.ok + r.failed} requests FAILED")
        if r.replaced:
            notes.append("a worker was REPLACED during the run")
        if notes:
            print(f"  {'':<18}{'':<7}{'':>8}  ! {'; '.join(notes)}")
    print_increments(results)


def print_increments(results: Sequence[CaseResult]) -> None:
    """Growth of total PSS (and RSS) per extra worker, between the fewest and most workers."""
    counts = sorted({r.workers for r in results})
    if len(counts) < 2:
        return
    few, many = counts[0], counts[-1]
    print(
        f"\nEach extra worker adds (total with {many} workers - total with {few}) / {many - few},"
        " in MiB:"
    )
    print(f"  {'conf':<18}{'models':<7}{'phase':<8}{'PSS':>8}{'RSS':>8}")
    by_key = {(r.conf, r.models, r.workers): r for r in results}
    added: dict[tuple[str, str, str], float] = {}
    for conf, models in dict.fromkeys((r.conf, r.models) for r in results):
        low, high = by_key.get((conf, models, few)), by_key.get((conf, models, many))
        if low is None or high is None:
            continue
        for phase in ("ready", "loaded"):
            a, b = getattr(low, phase), getattr(high, phase)
            pss = (b.total_pss - a.total_pss) / (many - few)
            rss = (b.total_rss - a.total_rss) / (many - few)
            added[conf, models, phase] = pss
            print(f"  {conf:<18}{models:<7}{phase:<8}{pss / MIB:>8.1f}{rss / MIB:>8.1f}")
    for conf, phase in dict.fromkeys((c, p) for c, _, p in added):
        if (conf, "demo", phase) in added and (conf, "large", phase) in added:
            extra = (added[conf, "large", phase] - added[conf, "demo", phase]) / MIB
            print(
                f"  {conf}, {phase}: a large-model worker adds {extra:.1f} MiB of PSS more "
                "than a demo-model worker (issue 10's goal: at most 5)"
            )


# -- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--models",
        default=",".join(MODEL_SETS),
        help="comma-separated model sets: demo, large (default both)",
    )
    parser.add_argument(
        "--workers", default="2,8", help="comma-separated worker counts (default 2,8)"
    )
    parser.add_argument(
        "--conf",
        action="append",
        help="gunicorn config file to run (repeatable; 'repo' is ml-service serve's, the default)",
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="scoring requests per worker (default 200)"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds before each snapshot (default 2)"
    )
    parser.add_argument(
        "--train-jobs",
        type=int,
        default=min(2, len(os.sched_getaffinity(0))),
        help="large models trained at once (default: min(2, cores))",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep keys, data and models here and reuse them next time (default: a temp dir)",
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or set(args.models) - set(MODEL_SETS):
        parser.error(f"--models: choose from {', '.join(MODEL_SETS)}")
    try:
        args.workers = sorted({int(w) for w in args.workers.split(",")})
    except ValueError:
        parser.error("--workers: comma-separated integers")
    if min(args.workers) < 1 or args.requests < 0 or args.train_jobs < 1:
        parser.error("--workers and --train-jobs must be positive, --requests not negative")
    args.conf = args.conf or [REPO_CONF]
    for conf in args.conf:
        if conf != REPO_CONF and not Path(conf).is_file():
            parser.error(f"--conf {conf}: no such file")
    # gunicorn runs from the repository root: hand it absolute paths.
    args.conf = [c if c == REPO_CONF else str(Path(c).resolve()) for c in args.conf]
    return args


def conf_label(conf: str) -> str:
    """A short printable name of a config file."""
    return conf if conf == REPO_CONF else Path(conf).stem[:16]


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the models, run every case, print the table."""
    args = parse_args(argv)
    stop_servers_on_signals()
    with contextlib.ExitStack() as stack:
        space = open_workspace(stack, args.workdir, "bench-memory-")
        prepare_models(space, VERTICALS)
        roots = {"demo": space.models, "large": space.root / "large-models"}
        if "large" in args.models:
            prepare_large(space, roots["large"], args.train_jobs)
        token, _admin = mint_tokens(space)
        for models in args.models:
            print(f"{models}: {describe_models(roots[models])}")
        results = []
        for models, workers, conf in iter_cases(args):
            progress(f"{models} models, {workers} workers, conf {conf_label(conf)}")
            results.append(run_case(space, roots[models], models, conf, workers, token, args))
        print_table(results)
    return 0


def iter_cases(args: argparse.Namespace) -> Iterator[tuple[str, int, str]]:
    """The (models, workers, conf) cases in run order: configs side by side."""
    for models, workers in itertools.product(args.models, args.workers):
        for conf in args.conf:
            yield models, workers, conf


if __name__ == "__main__":
    raise SystemExit(main())
