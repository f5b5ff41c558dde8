"""A snapshot of model quality in production, computed from the monitoring store.

For every served model (the champion of each vertical, and its shadow challenger if
any) and every window:

- **holdout**: the manifest's figures, measured at training on held-out leads;
- **realized**: from the outcomes reported for leads scored in the window
  (``engine.monitoring.performance.realized``), with the number of outcomes behind it;
- **estimated**: from the scores alone (CBPE, ``performance.estimated``) over the
  histogram of raw scores the workers sampled in the window, through the version's
  calibration;
- **drift**: the PSI of every feature and of the score over the drift window, against
  the version's training reference (``engine.monitoring.drift``), once the window holds
  ``drift.MIN_LEADS`` sampled leads.

The snapshot is plain data (msgspec), so a worker computes it on its store thread and
writes it as JSON for the master to export (``api.quality``), and the HTTP layer shows
it as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec
import numpy as np

from engine.monitoring import drift, performance
from engine.monitoring.drift import DriftBins
from engine.monitoring.store import MonitoringStore
from engine.store.manifest import Manifest

Role = Literal["champion", "challenger"]
Kind = Literal["holdout", "realized", "estimated"]
SCORE_HISTOGRAM = "__score_hist__"  # the count name of the CBPE score histogram
HOLDOUT_WINDOW = "holdout"


class ServedModel(msgspec.Struct, frozen=True):
    """A model version a vertical serves, in a role, with its acceptance threshold."""

    vertical: str
    role: Role
    manifest: Manifest
    threshold: float

    @property
    def version(self) -> str:
        """The version served."""
        return self.manifest.version


class PerformanceRow(msgspec.Struct, frozen=True):
    """One kind of performance of one served version over one window."""

    vertical: str
    version: str
    role: Role
    kind: Kind
    window: str
    auc: float | None
    precision: float | None
    recall: float | None
    conversion_rate: float | None
    leads: int
    acceptance_rate: float | None = None  # share of the window's leads at or over threshold


class DriftRow(msgspec.Struct, frozen=True):
    """The PSI of one feature (or ``__score__``) of one served version."""

    vertical: str
    version: str
    role: Role
    feature: str
    psi: float


class QualitySnapshot(msgspec.Struct, frozen=True):
    """Everything above for every served model, as of ``generated_at``."""

    generated_at: float
    drift_window: str
    performance: list[PerformanceRow]
    drift: list[DriftRow]


def window_label(seconds: float) -> str:
    """``1h``, ``24h``, ``168h`` or ``15m``: how windows are labelled."""
    minutes = round(seconds / 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def _row(
    model: ServedModel,
    kind: Kind,
    window: str,
    figures: performance.Performance,
    acceptance_rate: float | None,
) -> PerformanceRow:
    return PerformanceRow(
        model.vertical,
        model.version,
        model.role,
        kind,
        window,
        figures.auc,
        figures.precision,
        figures.recall,
        figures.conversion_rate,
        figures.leads,
        acceptance_rate,
    )


def holdout(model: ServedModel) -> PerformanceRow:
    """The manifest's holdout figures as a row."""
    m = model.manifest.metrics
    return PerformanceRow(
        model.vertical,
        model.version,
        model.role,
        "holdout",
        HOLDOUT_WINDOW,
        m.auc,
        m.precision,
        m.recall,
        m.positive_rate,
        m.n_holdout,
        m.accepted_rate,
    )


def realized_rows(
    store: MonitoringStore, model: ServedModel, windows: Sequence[float], now: float
) -> list[PerformanceRow]:
    """Realized performance of ``model`` over each window (seconds), from outcomes."""
    rows = []
    for seconds in windows:
        labelled = store.labelled(model.vertical, now - seconds)
        # Columns as arrays, filtered with masks: windows can hold hundreds of thousands
        # of outcomes, and this runs on a worker's store thread (it holds the GIL).
        converted = np.asarray(labelled.converted, dtype=np.bool_)
        if model.role == "champion":
            mine = np.asarray(labelled.versions, dtype=object) == model.version
            scores = np.asarray(labelled.scores, dtype=np.float64)[mine]
        else:  # the challenger's own scores of the same leads
            # None (a lead the challenger did not score) becomes NaN and is masked out.
            shadow = np.asarray(
                [np.nan if s is None else s for s in labelled.shadow_scores], dtype=np.float64
            )
            mine = (np.asarray(labelled.shadow_versions, dtype=object) == model.version) & (
                ~np.isnan(shadow)
            )
            scores = shadow[mine]
        converted = converted[mine]
        figures = performance.realized(scores, converted, model.threshold)
        accepted = float(np.mean(scores >= model.threshold)) if len(scores) else None
        rows.append(_row(model, "realized", window_label(seconds), figures, accepted))
    return rows


def estimated_rows(
    store: MonitoringStore, model: ServedModel, windows: Sequence[float], now: float
) -> list[PerformanceRow]:
    """Estimated (CBPE) performance of ``model`` over each window, from sampled scores."""
    rows = []
    for seconds in windows:
        counts = store.counts(
            model.vertical, model.version, model.role, SCORE_HISTOGRAM, now - seconds
        )
        if counts is None:
            counts = [0] * performance.SCORE_BINS
        figures = performance.estimated(counts, model.manifest.calibration, model.threshold)
        total = sum(counts)
        first = performance.first_accepted_bin(model.threshold)
        accepted = sum(counts[first:]) / total if total else None
        rows.append(_row(model, "estimated", window_label(seconds), figures, accepted))
    return rows


def drift_rows(
    store: MonitoringStore, model: ServedModel, bins: DriftBins, seconds: float, now: float
) -> list[DriftRow]:
    """PSI of every feature and the score of ``model`` over the drift window."""
    counts = {}
    for name in bins.names:
        found = store.counts(model.vertical, model.version, model.role, name, now - seconds)
        if found is not None and len(found) == bins.sizes[name]:
            counts[name] = found
    figures = drift.drift(bins, counts)
    return [
        DriftRow(model.vertical, model.version, model.role, name, value)
        for name, value in figures.items()
    ]


def compute_snapshot(
    store: MonitoringStore,
    served: Sequence[ServedModel],
    performance_windows: Sequence[float],
    drift_window: float,
    now: float,
) -> QualitySnapshot:
    """Compute the quality snapshot of every served model (on the store's thread)."""
    rows: list[PerformanceRow] = []
    drifts: list[DriftRow] = []
    for model in served:
        rows.append(holdout(model))
        rows.extend(realized_rows(store, model, performance_windows, now))
        rows.extend(estimated_rows(store, model, performance_windows, now))
        bins = DriftBins.from_manifest(model.manifest)
        drifts.extend(drift_rows(store, model, bins, drift_window, now))
    return QualitySnapshot(now, window_label(drift_window), rows, drifts)
