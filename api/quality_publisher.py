"""The worker in slot 0 computes the quality snapshot and prunes the monitoring store.

Every ``quality_refresh_seconds`` it gathers the models this worker serves (every worker
serves the same ones, a reload apart), and on the store's thread computes the snapshot
(``engine.monitoring.quality.compute_snapshot``) and writes it for the master to export
(``api.quality``). One computation at a time; a slow one delays the next, never a
request. Every hour it also prunes the store (leads past their retention, old
counts). Other workers do nothing here: one set of figures, computed once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from api.monitoring_config import MonitoringConfig
from api.monitoring_io import StoreIO
from api.quality import write_snapshot
from engine.monitoring.quality import ServedModel, compute_snapshot
from engine.monitoring.store import MonitoringStore
from engine.scoring.model import LoadedModel
from engine.scoring.scorer import Scorer

PRUNE_SECONDS = 3600.0
log = logging.getLogger("ml_service.quality")


def served_models(
    scorer: Scorer, challengers: Mapping[str, LoadedModel] | None = None
) -> list[ServedModel]:
    """The champion of every vertical this worker serves, and each shadow challenger."""
    served = [
        ServedModel(vertical, "champion", model.manifest, scorer.threshold(vertical))
        for vertical, model in sorted(scorer.models.items())
    ]
    served.extend(
        ServedModel(vertical, "challenger", model.manifest, scorer.threshold(vertical))
        for vertical, model in sorted((challengers or {}).items())
    )
    return served


class QualityPublisher:
    """Computes and writes the snapshot periodically (see the module docstring)."""

    def __init__(
        self,
        io: StoreIO,
        served: Callable[[], list[ServedModel]],
        monitoring: MonitoringConfig,
        path: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._io = io
        self._served = served
        self._windows = [hours * 3600.0 for hours in monitoring.performance_hours]
        self._drift_window = monitoring.drift_minutes * 60.0
        self._every = float(monitoring.quality_refresh_seconds)
        self._path = path
        self._clock = clock
        self._next = 0.0  # at once: holdout figures are exported from the start
        self._next_prune = 0.0
        self._running = False

    def tick(self) -> None:
        """Start a computation when one is due and none is running."""
        now = self._clock()
        if self._running or now < self._next:
            return
        self._next = now + self._every
        self._running = True
        served = self._served()
        windows, drift_window, path = self._windows, self._drift_window, self._path

        prune = now >= self._next_prune
        if prune:
            self._next_prune = now + PRUNE_SECONDS

        def publish(store: MonitoringStore) -> None:
            try:
                if prune:
                    removed = store.prune(now)
                    log.info("monitoring store pruned", extra={"rows": removed})
                snapshot = compute_snapshot(store, served, windows, drift_window, now)
                write_snapshot(path, snapshot)
            finally:
                self._running = False

        self._io.submit(publish)
