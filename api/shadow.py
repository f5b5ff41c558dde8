"""Shadow challengers in a worker: loaded like champions, scored after each response.

A vertical's ``SHADOW`` pointer (``engine.store.pointer.set_shadow``) names a version to
compare with the active one on real traffic. Every worker loads it (verified exactly
like a champion: signature, hashes, then the C API) at start and at every reload, and
after a scoring response has been sent scores the same lead with it (``score``). The
shadow score never reaches the caller and is never priced; it is remembered with the
lead for its outcome (``api.lead_memory``) and sampled for drift and estimated
performance (``api.quality_sampler``), labelled ``challenger``.

At every reload a loaded challenger is verified again and dropped if its files changed.
A shadow that cannot be loaded, or that fails on a lead, is counted
(``ml_shadow_failures_total{vertical,reason}``) and logged once per version; the
champion's answers never depend on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from api import metrics
from api.runtime import ModelRuntime
from engine.errors import ArtifactRejected, LeadError, StoreError
from engine.scoring.model import LoadedModel, load_model
from engine.store import layout, pointer
from engine.store.active import reason_of
from engine.store.verify import verify_version

log = logging.getLogger("ml_service.shadow")


class ShadowModels:
    """The shadow challenger of each vertical that has one, in this worker."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self._runtime = runtime
        self.models: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}  # vertical -> version that could not load
        self._lead_failures = {
            v: metrics.SHADOW_FAILURES.labels(v, "lead", runtime.environment)
            for v in runtime.config.verticals
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()  # one refresh at a time (a hook and a route may race)
        # Called after every refresh (e.g. the quality sampler follows the challengers).
        self.on_change: list[Callable[[], None]] = []

    def _pointers(self) -> dict[str, str | None]:
        wanted: dict[str, str | None] = {}
        for vertical in self._runtime.config.verticals:
            try:
                wanted[vertical] = pointer.read_shadow(self._runtime.model_root, vertical)
            except StoreError as exc:
                self._failure(vertical, "pointer", str(exc), "?")
                wanted[vertical] = None
        return wanted

    def _failure(self, vertical: str, reason: str, detail: str, version: str) -> None:
        metrics.SHADOW_FAILURES.labels(vertical, reason, self._runtime.environment).inc()
        if self._failed.get(vertical) != version:  # once per version, not per reload
            self._failed[vertical] = version
            log.error(
                "shadow model refused",
                extra={
                    "vertical": vertical,
                    "version": version,
                    "reason": reason,
                    "problem": detail,
                },
            )

    def _load(self, vertical: str, version: str) -> LoadedModel | None:
        runtime = self._runtime
        path = layout.version_dir(runtime.model_root, vertical, version)
        try:
            return load_model(path, runtime.keyring)
        except ArtifactRejected as exc:
            self._failure(vertical, reason_of(exc), str(exc), version)
        except Exception as exc:  # whatever it is, the champion goes on
            self._failure(vertical, "load", str(exc), version)
        return None

    async def refresh(self) -> None:
        """Follow the ``SHADOW`` pointers: load what changed, drop what was cleared."""
        async with self._lock:
            await self._refresh()

    def _still_valid(self, vertical: str, version: str) -> bool:
        """Re-verify a loaded challenger's files (a reload checks what it keeps, too)."""
        runtime = self._runtime
        try:
            verify_version(
                layout.version_dir(runtime.model_root, vertical, version), runtime.keyring
            )
        except ArtifactRejected as exc:
            self._failure(vertical, reason_of(exc), str(exc), version)
            return False
        return True

    async def _refresh(self) -> None:
        wanted = await asyncio.to_thread(self._pointers)
        for vertical, pointed in wanted.items():
            current = self.models.get(vertical)
            version = pointed
            if current is not None and current.version == pointed:
                if await asyncio.to_thread(self._still_valid, vertical, pointed):
                    continue
                version = None  # its files changed since it was loaded: drop it
            model = None
            if version is not None and version != self._runtime.versions().get(vertical):
                model = await asyncio.to_thread(self._load, vertical, version)
            if model is None:
                self.models.pop(vertical, None)
            else:
                self.models[vertical] = model
                self._failed.pop(vertical, None)
                log.info("shadow model loaded", extra={"vertical": vertical, "version": version})
            if current is not None:
                current.close()  # scoring is synchronous: nothing is using it now
        for listener in self.on_change:
            listener()

    def schedule_refresh(self) -> None:
        """A reload hook: refresh on the event loop, without holding up the reload."""
        task = asyncio.get_running_loop().create_task(self.refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def versions(self) -> dict[str, str]:
        """The shadow version of each vertical that has one loaded."""
        return {vertical: model.version for vertical, model in self.models.items()}

    def score(self, vertical: str, lead: Mapping[str, Any]) -> tuple[str, float] | None:
        """Score ``lead`` with the vertical's shadow (after the response): (version, score)."""
        model = self.models.get(vertical)
        if model is None:
            return None
        try:
            model.encoder.encode_into(lead, model.predictor.row)
            return model.version, model.predictor.predict_row()
        except LeadError:  # the challenger wants inputs the champion did not
            self._lead_failures[vertical].inc()
        except Exception as exc:
            self._failure(vertical, "predict", str(exc), model.version)
        return None

    def close(self) -> None:
        """Free the native models (at worker stop)."""
        for model in self.models.values():
            model.close()
        self.models.clear()
