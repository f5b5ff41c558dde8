"""A worker's models: initial load, in-place hot reload, and the admin operations.

Every worker owns one ``Scorer``. Models load after fork (LightGBM + OpenMP must never
be initialised in the master), verified from the signed store. A reload never restarts
a worker:

1. Someone bumps the shared generation (``api.reload_state``): the reload or rollback
   API after updating the ``CURRENT`` pointers, or the master on SIGHUP.
2. Each worker's watcher task sees the new generation within ``POLL_SECONDS``, re-reads
   the pointers, and loads every changed version in a thread (verification and
   LightGBM's parser run off the event loop; ctypes releases the GIL while it parses).
3. Back on the event loop it swaps the ``Scorer``'s references: load before unload.
   Scoring is synchronous on the loop, so no request is ever between two versions: each
   response is computed entirely by one version and reports it. The old native model is
   freed right after the swap, because nothing can still be using it.
4. It acknowledges the generation in its slot. A version that fails to verify or load
   leaves the old one serving, and the problem is reported by ``/ready``, ``GET
   /api/v1/models``, the logs and ``ml_model_reloads_total{outcome="failure"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from api import metrics
from api.reload_state import ReloadState, WorkerSlot
from engine.config import ModelConfig
from engine.errors import EngineError, UnknownVertical
from engine.scoring.model import LoadedModel, load_model
from engine.scoring.scorer import Scorer
from engine.store import layout, pointer
from engine.store.signing import Keyring

POLL_SECONDS = 0.05
log = logging.getLogger("ml_service.runtime")


def _freeze_heap(collect: bool) -> None:
    """Move everything alive now out of the cyclic collector's sight.

    Loaded models are long-lived (tables, encoders, manifests); letting every full
    collection walk them costs milliseconds at the tail of request latency. Frozen
    objects are still freed by reference counting when a reload drops them. A full
    collection first is only done before serving: on a reload it would stall the loop.
    """
    if collect:
        gc.collect()
    gc.freeze()


class ReloadFailed(EngineError):
    """A requested version did not verify or load; nothing was changed."""

    def __init__(self, vertical: str, reason: str) -> None:
        super().__init__(f"{vertical}: {reason}")
        self.vertical = vertical
        self.reason = reason


class ModelRuntime:
    """The models of one worker process and their reload machinery."""

    def __init__(
        self,
        config: ModelConfig,
        model_root: Path,
        keyring: Keyring,
        state: ReloadState,
        slot: int,
        environment: str,
    ) -> None:
        self.config = config
        self.model_root = model_root
        self.keyring = keyring
        self.state = state
        self.slot = slot
        self.environment = environment
        self.scorer = Scorer(config)
        self.problems: dict[str, str] = {}
        self.generation = -1
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        # Called on every watcher tick (and at stop): e.g. flushing buffered metrics.
        self.tick_hooks: list[Callable[[], None]] = []

    # -- loading ---------------------------------------------------------------------

    def _load(self, vertical: str, version: str) -> LoadedModel:
        path = layout.version_dir(self.model_root, vertical, version)
        return load_model(path, self.keyring)

    def _load_pointed(self) -> tuple[dict[str, LoadedModel], dict[str, str]]:
        """Load every vertical whose ``CURRENT`` differs from what is installed."""
        loaded: dict[str, LoadedModel] = {}
        problems: dict[str, str] = {}
        installed = self.scorer.models
        for vertical in self.config.verticals:
            try:
                version = pointer.read_current(self.model_root, vertical)
                if version is None:
                    problems[vertical] = "no active version (CURRENT is missing)"
                    continue
                current = installed.get(vertical)
                if current is not None and current.version == version:
                    continue
                loaded[vertical] = self._load(vertical, version)
            except (EngineError, ValueError, OSError) as exc:
                problems[vertical] = str(exc)
        return loaded, problems

    def _install(self, models: dict[str, LoadedModel], serving: bool = True) -> None:
        for model in models.values():
            previous = self.scorer.install(model)
            self._publish_model_metrics(model, previous)
            if previous is not None and previous is not model:
                previous.close()
        if models:
            _freeze_heap(collect=not serving)

    def _publish_model_metrics(self, model: LoadedModel, previous: LoadedModel | None) -> None:
        env = self.environment
        m = model.manifest.metrics
        for name, value in (("auc", m.auc), ("precision", m.precision), ("recall", m.recall)):
            metrics.MODEL_PERFORMANCE.labels(model.vertical, name, env).set(value)
        if previous is not None and previous.version != model.version:
            metrics.MODEL_INFO.labels(model.vertical, previous.version, env).set(0)
        metrics.MODEL_INFO.labels(model.vertical, model.version, env).set(1)

    def load_initial(self) -> None:
        """Load every vertical's active version (at worker start, before serving)."""
        generation = self.state.generation()
        loaded, problems = self._load_pointed()
        self._install(loaded, serving=False)
        self.problems = problems
        for vertical, problem in problems.items():
            log.error("model not loaded", extra={"vertical": vertical, "reason": problem})
        self._acknowledge(generation)

    def _acknowledge(self, generation: int) -> None:
        self.generation = generation
        self.state.acknowledge(self.slot, os.getpid(), generation)
        metrics.RELOAD_GENERATION.labels(self.environment).set(generation)

    async def sync(self) -> None:
        """Bring this worker to the shared generation (load, swap, acknowledge)."""
        async with self._lock:
            generation = self.state.generation()
            if generation <= self.generation:
                return
            loaded, problems = await asyncio.to_thread(self._load_pointed)
            self._install(loaded)
            self.problems = problems
            outcome = "failure" if problems else "success"
            metrics.RELOADS.labels(outcome, self.environment).inc()
            for vertical, problem in problems.items():
                log.error(
                    "reload kept the old model", extra={"vertical": vertical, "reason": problem}
                )
            self._acknowledge(generation)

    # -- the watcher -----------------------------------------------------------------

    def start_watching(self) -> None:
        """Start polling the shared generation on the running event loop."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _run_tick_hooks(self) -> None:
        for hook in self.tick_hooks:
            try:
                hook()
            except Exception:  # one failing hook must not stop the others or reloads
                log.exception("tick hook failed")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            self._run_tick_hooks()
            if self.state.generation() > self.generation:
                try:
                    await self.sync()
                except Exception:  # a watcher that dies would silently stop reloads
                    log.exception("reload failed unexpectedly")

    async def stop(self) -> None:
        """Stop the watcher and free the native models."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self._run_tick_hooks()
        for model in self.scorer.models.values():
            model.close()

    # -- admin operations ------------------------------------------------------------

    async def reload(self, versions: dict[str, str] | None) -> int:
        """Activate ``versions`` (or re-read every pointer) and signal all workers.

        Every requested version is verified and loaded here first; if any fails,
        nothing changes and ``ReloadFailed`` says which and why.

        Returns:
            The new generation.

        Raises:
            UnknownVertical: A requested vertical is not configured.
            ReloadFailed: A version is missing, fails verification or does not load.
        """
        async with self._lock:
            if versions:
                for vertical in versions:
                    if vertical not in self.config.verticals:
                        raise UnknownVertical(vertical, list(self.config.verticals))
                loaded = await asyncio.to_thread(self._load_requested, versions)
                try:
                    await asyncio.to_thread(self._activate, versions)
                except BaseException:
                    for model in loaded.values():
                        model.close()
                    raise
            else:
                loaded, problems = await asyncio.to_thread(self._load_pointed)
                if problems:
                    for model in loaded.values():
                        model.close()
                    vertical, reason = next(iter(problems.items()))
                    raise ReloadFailed(vertical, reason)
            self._install(loaded)
            self.problems = {}
            metrics.RELOADS.labels("success", self.environment).inc()
            generation = self.state.bump()
            self._acknowledge(generation)
            return generation

    def _load_requested(self, versions: dict[str, str]) -> dict[str, LoadedModel]:
        loaded: dict[str, LoadedModel] = {}
        try:
            for vertical, version in versions.items():
                if not layout.version_dir(self.model_root, vertical, version).is_dir():
                    raise ReloadFailed(vertical, f"version {version} does not exist")
                try:
                    loaded[vertical] = self._load(vertical, version)
                except (EngineError, ValueError, OSError) as exc:
                    raise ReloadFailed(vertical, f"version {version}: {exc}") from exc
        except ReloadFailed:
            for model in loaded.values():
                model.close()
            raise
        return loaded

    def _activate(self, versions: dict[str, str]) -> None:
        for vertical, version in versions.items():
            pointer.activate(self.model_root, vertical, version, self.keyring)

    async def rollback(self, vertical: str) -> int:
        """Re-activate the version before the current one, and signal all workers.

        Raises:
            UnknownVertical: Not a configured vertical.
            StoreError: Nothing to roll back to.
            ArtifactRejected: The previous version no longer verifies (nothing changed).
        """
        if vertical not in self.config.verticals:
            raise UnknownVertical(vertical, list(self.config.verticals))
        async with self._lock:
            await asyncio.to_thread(pointer.rollback, self.model_root, vertical, self.keyring)
            generation = self.state.bump()
        await self.sync()
        return generation

    async def wait_for_workers(self, generation: int, timeout: float) -> list[WorkerSlot]:
        """Wait until every live worker serves ``generation`` (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            workers = self.state.workers()
            if all(w.generation >= generation for w in workers):
                return workers
            if time.monotonic() >= deadline:
                return workers
            await asyncio.sleep(0.01)

    def versions(self) -> dict[str, str | None]:
        """The version each configured vertical is served with here (None: none)."""
        installed = self.scorer.models
        return {v: (m.version if (m := installed.get(v)) else None) for v in self.config.verticals}
