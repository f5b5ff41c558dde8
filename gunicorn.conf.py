"""Process wiring of the service (gunicorn master + one pinned uvicorn worker per core).

- The master owns the socket, serves ``/metrics`` on ``METRICS_PORT`` (aggregated over
  all workers by prometheus_client's ``MultiProcessCollector``) and never loads a model:
  LightGBM + OpenMP + fork can hang (LightGBM issues 4751, 6137).
- The master imports the workers' code before forking (``on_starting``), then freezes it
  out of the garbage collector: the workers share those pages copy-on-write instead of
  each importing its own copy. Measured with ``bench/bench_memory.py`` (demo models, 2
  against 8 workers): each extra worker added 38 MiB of PSS before, 31 MiB with the
  imports alone, 33 MiB with ``gc.freeze()`` alone and 18 MiB with both. The freeze
  matters because a collection in a worker writes to the GC header of every tracked
  object it inherited, which copies every page holding one (Instagram's finding, and the
  recipe of the ``gc`` documentation). Code only: no model, and LightGBM's library is
  not opened (``lib_lightgbm`` with its OpenMP runtime stays a worker's business; its
  code pages are shared through the page cache anyway, and the copy-on-write pages that
  loading it in the master could share measured 76 KiB per worker).
- Workers get stable slots (0..N-1): a replaced worker takes the slot of the one it
  replaces, is pinned to the same core (``os.sched_setaffinity``) and acknowledges
  reloads in the same slot of the shared reload state.
- SIGHUP means "reload models in place": the master bumps the shared reload generation
  and every worker switches without restarting (gunicorn's default would restart them:
  a latency spike, cold caches and stale metrics files).
- ``child_exit`` retires a dead worker's metrics files (its gauges dropped, its counters
  folded into one retired file: ``api.metrics_files``) and frees its slot.
- ``when_ready`` exports ``WORKERS`` and the alert thresholds of ``MONITORING_CONFIG``, and
  the master reports its own CPU and memory at every scrape.
- With ``TLS_CERT_FILE`` / ``TLS_KEY_FILE`` set, gunicorn's ``certfile`` / ``keyfile``
  carry them to the workers, which serve TLS 1.3 only (``api.worker``, ``api.tls``).
  Each worker reads the files when it starts (see ``api.tls``).
- A bad setting stops the master before any fork with one line on stderr and exit 1
  (``api.preflight``: settings, config, model store, keys, TLS pair, archive keys, run
  directory, ports), so that it stops the master, not every worker in turn.

Settings come from the environment (``api.settings``); see docs/configuration.md.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import os
import resource
import shutil
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import preflight
from api.logging import logging_config

try:
    _settings = preflight.settings_from(os.environ)
except preflight.PreflightError as exc:
    # One line and exit 1, not gunicorn's "Failed to read config file" and a traceback
    # (SystemExit is not an Exception, so gunicorn lets it through).
    sys.exit(f"error: {exc}")
# Before anything imports prometheus_client, in the master and so in every worker.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_settings.metrics_dir.resolve())

bind = _settings.bind
workers = _settings.workers
worker_class = "api.worker.ServiceWorker"
wsgi_app = "api.app:create_app()"
preload_app = False  # models load after fork, in each worker
keepalive = 75  # longer than typical load balancer idle timeouts
timeout = 30
graceful_timeout = 20
proc_name = "ml-service"
# None (plain HTTP) unless both TLS settings are given (api.settings checks that).
certfile = str(_settings.tls_cert_file) if _settings.tls_cert_file else None
keyfile = str(_settings.tls_key_file) if _settings.tls_key_file else None
accesslog = None
# gunicorn's control socket defaults to one path per user; keep it per instance so
# several services (tests, benchmarks) can run side by side.
control_socket = str((_settings.run_dir / "gunicorn.ctl").resolve())
logconfig_dict = logging_config(_settings.log_level)

_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
# The code every worker runs: the application (the engine with it) and what uvicorn
# imports as a worker starts (its event loop, lifespan and websocket protocol modules).
_WORKER_CODE = ("api.app", "uvloop")
_UVICORN_INTERNALS = (
    "uvicorn.lifespan.on",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.websockets.auto",
)
# The master's handle on the shared reload state, opened in on_starting.
_master: dict[str, Any] = {}


def _import_worker_code() -> None:
    """Import the workers' code in the master, then exempt it from garbage collection.

    Call it before any fork and after the metrics directory is reset: ``api.app`` imports
    ``api.metrics`` (prometheus_client in multiprocess mode). That is safe for the workers'
    metrics: a value file is opened for the pid that first writes a value, and
    prometheus_client reopens every value under its own pid in a process whose pid changed
    (a forked worker), so no worker writes to the master's files.
    """
    for name in _WORKER_CODE:
        importlib.import_module(name)
    for name in _UVICORN_INTERNALS:
        # uvicorn's own module layout: should a release move one, only memory is lost.
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(name)
    # Collect first so that no garbage is frozen, then move every object the imports
    # made into the permanent generation: a collection in a worker never touches them,
    # so their pages stay shared. Objects made later, in the master or a worker, are
    # collected as usual.
    gc.collect()
    gc.freeze()


def on_starting(server: Any) -> None:
    """Fail fast on a bad setting; no core dumps; reset run state; preload code."""
    from api.reload_state import ReloadState

    # `ml-service serve` has run these checks already; gunicorn started by hand has not.
    # Either way, before any fork: one line and exit 1 (api.preflight).
    try:
        preflight.check(_settings, ports=not preflight.inherits_sockets())
    except preflight.PreflightError as exc:
        sys.exit(f"error: {exc}")
    # No core dumps from the master or the workers it forks: a worker's memory holds
    # leads in flight, token caches and archive keys, which must never reach the disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from api.lead_keys import ensure_key

    ensure_key(_settings.monitoring_key_path)  # before any worker: all read the same one
    metrics_dir = _settings.metrics_dir
    shutil.rmtree(metrics_dir, ignore_errors=True)
    # A previous run's quality figures describe models that may no longer be served.
    (_settings.run_dir / "quality.json").unlink(missing_ok=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    _import_worker_code()  # after the reset above: see its docstring
    _master["state"] = ReloadState.create(_settings.reload_state_path)


def when_ready(server: Any) -> None:
    """Serve /metrics from the master and make SIGHUP reload models in place."""
    from api import metrics
    from api.metrics_files import serve_metrics
    from api.process_stats import ProcessReporter
    from api.quality import QualityCollector, snapshot_path

    env = _settings.environment
    metrics.WORKERS_CONFIGURED.labels(env).set(workers)
    # MONITORING_CONFIG is the one place the alert rules' thresholds come from.
    for name, value in _settings.monitoring.alert_thresholds().items():
        metrics.ALERT_THRESHOLD.labels(name, env).set(value)
    master = ProcessReporter("master", env, interval=0.0)  # sampled at every scrape
    # Model quality, computed by the worker in slot 0 (api.quality_publisher).
    quality = QualityCollector(snapshot_path(_settings.run_dir), env)
    serve_metrics(_settings.metrics_port, refresh=master.sample, extra=[quality])

    def handle_hup() -> None:
        generation = _master["state"].bump()
        server.log.info("SIGHUP: reload generation %d signalled to every worker", generation)

    server.handle_hup = handle_hup
    server.log.info(
        "ml-service ready: %d workers on %s, metrics on :%d",
        workers,
        bind,
        _settings.metrics_port,
    )
    if certfile is not None:
        from api.tls import certificate_not_after

        server.log.info(
            "TLS 1.3 only, certificate %s valid until %s", certfile, certificate_not_after(certfile)
        )


def pre_fork(server: Any, worker: Any) -> None:
    """Give the new worker the lowest free slot (stable across replacements)."""
    used = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    worker.slot = next(i for i in itertools.count() if i not in used)


def post_fork(server: Any, worker: Any) -> None:
    """Pin the worker to its core and tell the app its slot."""
    os.environ["SERVICE_WORKER_SLOT"] = str(worker.slot)
    if _CPUS and _settings.pin_workers:
        os.sched_setaffinity(0, {_CPUS[worker.slot % len(_CPUS)]})


def child_exit(server: Any, worker: Any) -> None:
    """Retire the dead worker's metrics files and free its reload slot."""
    from api.metrics_files import retire_process

    retire_process(worker.pid)
    if "state" in _master:
        _master["state"].release(getattr(worker, "slot", 0), worker.pid)
