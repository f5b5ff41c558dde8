"""A worker's models: initial load, in-place hot reload, the admin operations, and why.

Every worker owns one ``Scorer``. Models load after fork (LightGBM + OpenMP must never
be initialised in the master), verified from the signed store. A reload never restarts
a worker:

1. Someone bumps the shared generation (``api.reload_state``): the reload or rollback
   API after updating the ``CURRENT`` pointers, or the master on SIGHUP.
2. Each worker's watcher task sees the new generation within ``POLL_SECONDS``, re-reads
   the trusted model-signing keys (``api.credentials``: a reload is also how a key is
   trusted or dropped), re-reads every pointer and verifies in full the version each
   names, changed or not
   (``engine.store.active``; verification and LightGBM's parser run in a thread, off the
   event loop). Only versions whose content differs from what is served are loaded.
3. Back on the event loop it swaps the ``Scorer``'s references: load before unload.
   Scoring is synchronous on the loop, so no request is ever between two versions: each
   response is computed entirely by one version and reports it. The old native model is
   freed right after the swap, because nothing can still be using it.
4. It runs the ``reload_hooks`` (e.g. re-reading the token keyring), then acknowledges
   the generation in its slot.

Only versions that verify (signature by a trusted key, then every file's hash) are ever
loaded, at start and at every reload; the model is built from the very bytes that were
hashed. A version that is refused leaves the previous one serving (none at start: the
vertical answers 503). Every refusal is visible:

- counted in ``ml_model_rejections_total{vertical,reason}`` (``reason`` from
  ``engine.store.active.REASONS``) and logged as an error, once per worker and attempt;
- in ``status``: per vertical, what is served, what ``CURRENT`` names, and the problem
  (``reason`` + sentence) while they disagree or the active version does not verify.
  ``/ready`` and ``GET /api/v1/models`` report it, and ``ml_model_active_unserved`` is 1
  while there is a problem. ``status`` is refreshed by every load, by ``audit`` (which
  ``GET /api/v1/models`` calls) and every ``AUDIT_SECONDS`` by a background task, so a
  worker that did not run a refused reload itself, or files tampered with in place,
  show up too. Audits reuse verdicts while the files are unchanged (cheap), and never
  load anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

from api import credentials, metrics
from api.reload_state import ReloadState, WorkerSlot
from engine.cache import PredictionCache, RemoteCache
from engine.cache.keys import CacheKeyer
from engine.config import ModelConfig
from engine.errors import ArtifactRejected, EngineError, StoreError, UnknownVertical
from engine.pricing.demand import DemandTracker
from engine.scoring.model import LoadedModel
from engine.scoring.scorer import Scorer
from engine.store import layout, pointer
from engine.store.active import (
    PENDING,
    ActiveInspector,
    ActiveState,
    VerticalStatus,
    reason_of,
    status_of,
)
from engine.store.signing import Keyring
from engine.store.verify import verify_version

POLL_SECONDS = 0.05
AUDIT_SECONDS = 2.0
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
    """A requested reload was refused; nothing was changed.

    Attributes:
        vertical: The vertical at fault.
        reason: The message for the caller: names the vertical, the version and why.
        check: Why, as a member of ``engine.store.active.REASONS``.
    """

    def __init__(self, vertical: str, detail: str, check: str = "load") -> None:
        self.vertical = vertical
        self.reason = f"{vertical}: {detail}"
        self.check = check
        super().__init__(self.reason)


def _hook_name(hook: Callable[[], object]) -> str:
    return str(getattr(hook, "__qualname__", type(hook).__name__))


class ModelRuntime:
    """The models of one worker process, their reload machinery and their status."""

    def __init__(
        self,
        config: ModelConfig,
        model_root: Path,
        keyring: Keyring,
        state: ReloadState,
        slot: int,
        environment: str,
        keyring_source: Path | None = None,
        cache: PredictionCache | None = None,
        keyer: CacheKeyer | None = None,
        remote: RemoteCache | None = None,
        demand: DemandTracker | None = None,
    ) -> None:
        self.config = config
        self.model_root = model_root
        self.keyring = keyring
        # Where the trusted model-signing keys live; re-read before every reload.
        self.keyring_source = keyring_source
        self.state = state
        self.slot = slot
        self.environment = environment
        self.scorer = Scorer(config, cache=cache, keyer=keyer, remote=remote, demand=demand)
        self.status: dict[str, VerticalStatus] = {}
        self.generation = -1
        self._inspector = ActiveInspector(model_root)
        # Manifest digests of the installed models: equal digests mean identical files.
        self._digests: dict[str, str] = {}
        # vertical -> (manifest digest, why): a verified version that did not load.
        self._load_failures: dict[str, tuple[str, str]] = {}
        self._status_epoch = 0
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # Called on every watcher tick (and at stop): e.g. flushing buffered metrics.
        self.tick_hooks: list[Callable[[], None]] = []
        # Called on the event loop at every reload this worker makes (not the initial
        # load): the watcher's sync (SIGHUP, another worker's API reload, rollback) and
        # a successful reload API call it answers. A failing hook is logged and counted
        # in ml_reload_hook_failures_total; it never stops the reload or other hooks.
        self.reload_hooks: list[Callable[[], object]] = []

    @property
    def problems(self) -> dict[str, str]:
        """Each vertical with a problem, and the problem (see ``VerticalStatus``)."""
        return {v: s.problem for v, s in self.status.items() if s.problem is not None}

    # -- loading (in a thread) -------------------------------------------------------

    def _load_pointed(
        self, skip: Collection[str] = ()
    ) -> tuple[dict[str, LoadedModel], dict[str, ActiveState]]:
        """Verify what every ``CURRENT`` names; load what differs from what is served."""
        loaded: dict[str, LoadedModel] = {}
        states: dict[str, ActiveState] = {}
        try:
            for vertical in self.config.verticals:
                if vertical in skip:
                    continue
                try:
                    state, verified = self._inspector.inspect(vertical, self.keyring)
                except Exception as exc:  # an unreadable store must not stop the others
                    state = ActiveState(vertical, None, None, reason_of(exc), str(exc))
                    verified = None
                if verified is not None and self._digests.get(vertical) != state.digest:
                    try:
                        loaded[vertical] = LoadedModel.from_verified(verified)
                    except (EngineError, ValueError, OSError) as exc:
                        state = state.refuse(
                            "load",
                            f"CURRENT names {state.version}, which verifies but does not "
                            f"load: {exc}",
                        )
                states[vertical] = state
        except BaseException:
            for model in loaded.values():
                model.close()
            raise
        return loaded, states

    def _load_requested(
        self, versions: dict[str, str]
    ) -> tuple[dict[str, LoadedModel], dict[str, ActiveState]]:
        """Verify and load the requested versions, all or nothing."""
        loaded: dict[str, LoadedModel] = {}
        states: dict[str, ActiveState] = {}
        try:
            for vertical, version in versions.items():
                path = layout.version_dir(self.model_root, vertical, version)
                if not os.path.lexists(path):
                    published = ", ".join(layout.list_versions(self.model_root, vertical))
                    raise ReloadFailed(
                        vertical,
                        f"version {version} does not exist (published: {published or 'none'})",
                        "pointer",
                    )
                try:
                    verified = verify_version(path, self.keyring)
                except ArtifactRejected as exc:
                    raise ReloadFailed(
                        vertical, f"version {version} refused: {exc}", reason_of(exc)
                    ) from None
                digest = verified.manifest_sha256
                states[vertical] = ActiveState(vertical, version, digest, None, None)
                if self._digests.get(vertical) == digest:
                    continue  # served already, byte for byte
                try:
                    loaded[vertical] = LoadedModel.from_verified(verified)
                except (EngineError, ValueError, OSError) as exc:
                    raise ReloadFailed(
                        vertical, f"version {version} verifies but does not load: {exc}"
                    ) from None
        except BaseException:
            for model in loaded.values():
                model.close()
            raise
        return loaded, states

    def _activate(self, versions: dict[str, str]) -> None:
        for vertical, version in versions.items():
            try:
                pointer.activate(self.model_root, vertical, version, self.keyring)
            except (ArtifactRejected, StoreError) as exc:  # changed since it was loaded
                raise ReloadFailed(
                    vertical, f"version {version} not activated: {exc}", reason_of(exc)
                ) from None

    def _check_all(self) -> dict[str, ActiveState]:
        states = {}
        for vertical in self.config.verticals:
            try:
                states[vertical] = self._inspector.check(vertical, self.keyring)
            except Exception as exc:  # report it; the next audit tries again
                states[vertical] = ActiveState(vertical, None, None, reason_of(exc), str(exc))
        return states

    # -- on the event loop -----------------------------------------------------------

    def _install(
        self, models: dict[str, LoadedModel], states: dict[str, ActiveState], serving: bool = True
    ) -> None:
        for vertical, model in models.items():
            previous = self.scorer.install(model)
            digest = states[vertical].digest
            if digest is not None:
                self._digests[vertical] = digest
            self._load_failures.pop(vertical, None)
            self._publish_model_metrics(model, previous)
            if previous is not None and previous is not model:
                previous.close()
        if models:
            _freeze_heap(collect=not serving)

    def _publish_model_metrics(self, model: LoadedModel, previous: LoadedModel | None) -> None:
        env = self.environment
        if previous is not None and previous.version != model.version:
            metrics.MODEL_INFO.labels(model.vertical, previous.version, env).set(0)
        metrics.MODEL_INFO.labels(model.vertical, model.version, env).set(1)

    def _refused(self, vertical: str, version: str | None, reason: str, detail: str) -> None:
        """Count and log one refusal (one worker, one attempt)."""
        metrics.MODEL_REJECTIONS.labels(vertical, reason, self.environment).inc()
        log.error(
            "model version refused",
            extra={"vertical": vertical, "version": version, "reason": reason, "problem": detail},
        )

    def _record_refusals(self, states: dict[str, ActiveState]) -> None:
        for state in states.values():
            if state.reason is None:
                continue
            self._refused(state.vertical, state.version, state.reason, state.detail or "")
            if state.reason == "load" and state.digest is not None:
                self._load_failures[state.vertical] = (state.digest, state.detail or "")

    def _set_status(self, states: dict[str, ActiveState]) -> None:
        """Recompute every vertical's status from fresh pointer states; log changes."""
        installed = self.scorer.models
        status: dict[str, VerticalStatus] = {}
        for vertical in self.config.verticals:
            model = installed.get(vertical)
            new = status_of(
                states[vertical],
                model.version if model is not None else None,
                self._digests.get(vertical),
                self._load_failures.get(vertical),
            )
            old = self.status.get(vertical)
            status[vertical] = new
            metrics.MODEL_UNSERVED.labels(vertical, self.environment).set(
                0 if new.problem is None else 1
            )
            metrics.MODEL_LOADED.labels(vertical, self.environment).set(model is not None)
            if new.reason is not None and (
                old is None
                or (old.reason, old.active, old.served) != (new.reason, new.active, new.served)
            ):
                # Pending is the normal moment between moving CURRENT and reloading.
                log.log(
                    logging.INFO if new.reason == PENDING else logging.WARNING,
                    "model problem",
                    extra={"vertical": vertical, "reason": new.reason, "problem": new.problem},
                )
            elif new.reason is None and old is not None and old.reason is not None:
                log.info(
                    "model problem resolved", extra={"vertical": vertical, "version": new.served}
                )
        self.status = status
        self._status_epoch += 1

    def _run_reload_hooks(self) -> None:
        for hook in self.reload_hooks:
            try:
                hook()
            except Exception:  # a failing hook must not stop the reload or the others
                metrics.RELOAD_HOOK_FAILURES.labels(self.environment).inc()
                log.exception("reload hook failed", extra={"hook": _hook_name(hook)})

    def load_initial(self) -> None:
        """Load every vertical's active version (at worker start, before serving)."""
        generation = self.state.generation()
        loaded, states = self._load_pointed()
        self._install(loaded, states, serving=False)
        self._record_refusals(states)
        self._set_status(states)
        self._acknowledge(generation)

    def _acknowledge(self, generation: int) -> None:
        self.generation = generation
        self.state.acknowledge(self.slot, os.getpid(), generation)
        metrics.RELOAD_GENERATION.labels(self.environment).set(generation)

    def _refresh_keyring(self) -> None:
        """Re-read the trusted model-signing keys, so a reload trusts or drops keys too.

        A keyring that does not load keeps the previous one (``api.credentials``).
        """
        source = self.keyring_source
        if source is None:
            return

        def load() -> dict[str, object]:
            self.keyring = Keyring.load(source)
            return {"key_ids": sorted(self.keyring.key_ids)}

        credentials.refresh("model_keys", load, self.environment)

    async def sync(self) -> None:
        """Bring this worker to the shared generation (verify, load, swap, acknowledge)."""
        async with self._lock:
            generation = self.state.generation()
            if generation <= self.generation:
                return
            self._refresh_keyring()
            loaded, states = await asyncio.to_thread(self._load_pointed)
            self._install(loaded, states)
            self._record_refusals(states)
            self._set_status(states)
            outcome = "success" if all(s.usable for s in states.values()) else "failure"
            metrics.RELOADS.labels(outcome, self.environment).inc()
            self._run_reload_hooks()
            self._acknowledge(generation)

    async def audit(self) -> None:
        """Refresh ``status`` from the store without loading anything.

        Verdicts are reused while a version's files are unchanged, so this is cheap. A
        reload that finishes meanwhile wins: its view is at least as fresh.
        """
        epoch = self._status_epoch
        states = await asyncio.to_thread(self._check_all)
        if epoch == self._status_epoch:
            self._set_status(states)

    # -- background tasks ------------------------------------------------------------

    def start_watching(self) -> None:
        """Start polling the shared generation, and auditing, on the running loop."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._audit_loop())]

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

    async def _audit_loop(self) -> None:
        while True:
            await asyncio.sleep(AUDIT_SECONDS)
            try:
                await self.audit()
            except Exception:  # keep auditing; the next round may succeed
                log.exception("model audit failed unexpectedly")

    async def stop(self) -> None:
        """Stop the background tasks and free the native models."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._run_tick_hooks()
        for model in self.scorer.models.values():
            model.close()

    # -- admin operations ------------------------------------------------------------

    async def reload(self, versions: dict[str, str] | None) -> int:
        """Activate ``versions`` (or re-read every pointer) and signal all workers.

        With ``versions``, each is verified and loaded here first; if any fails, nothing
        changes. Then they are activated (``CURRENT``) and every other vertical is
        re-read as a SIGHUP would (a problem there is reported, not fatal). Without
        ``versions``, every pointer is re-read and every active version verified: if any
        vertical is refused (or has no ``CURRENT``), nothing changes.

        Returns:
            The new generation.

        Raises:
            UnknownVertical: A requested vertical is not configured.
            ReloadFailed: A version is missing, refused by a check, or does not load.
        """
        async with self._lock:
            self._refresh_keyring()
            if versions:
                for vertical in versions:
                    if vertical not in self.config.verticals:
                        raise UnknownVertical(vertical, list(self.config.verticals))
                try:
                    loaded, states = await asyncio.to_thread(self._load_requested, versions)
                except ReloadFailed as exc:
                    self._refused(exc.vertical, versions.get(exc.vertical), exc.check, exc.reason)
                    metrics.RELOADS.labels("failure", self.environment).inc()
                    raise
                try:
                    await asyncio.to_thread(self._activate, versions)
                    others, other_states = await asyncio.to_thread(self._load_pointed, versions)
                except BaseException as exc:
                    for model in loaded.values():
                        model.close()
                    if isinstance(exc, ReloadFailed):
                        self._refused(exc.vertical, versions[exc.vertical], exc.check, exc.reason)
                        metrics.RELOADS.labels("failure", self.environment).inc()
                    raise
                loaded.update(others)
                states.update(other_states)
                self._record_refusals(other_states)
            else:
                loaded, states = await asyncio.to_thread(self._load_pointed)
                self._record_refusals(states)
                failed = [s for s in states.values() if not s.usable]
                if failed:
                    for model in loaded.values():
                        model.close()
                    self._set_status(states)
                    metrics.RELOADS.labels("failure", self.environment).inc()
                    first = failed[0]
                    raise ReloadFailed(
                        first.vertical, first.detail or "refused", first.reason or "pointer"
                    )
            self._install(loaded, states)
            self._set_status(states)
            metrics.RELOADS.labels("success", self.environment).inc()
            self._run_reload_hooks()
            generation = self.state.bump()
            self._acknowledge(generation)
            return generation

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
            self._refresh_keyring()
            try:
                await asyncio.to_thread(pointer.rollback, self.model_root, vertical, self.keyring)
            except ArtifactRejected as exc:
                self._refused(vertical, None, reason_of(exc), f"rollback target refused: {exc}")
                raise
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
