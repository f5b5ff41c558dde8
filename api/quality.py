"""Model quality as Prometheus metrics: computed by one worker, exported by the master.

The worker in slot 0 (a replacement takes the slot over) computes a
``engine.monitoring.quality.QualitySnapshot`` every ``quality_refresh_seconds`` of
``MONITORING_CONFIG`` (``api.quality_publisher``) on its store thread,
from the monitoring store that all workers feed, and writes it atomically to
``RUN_DIR/quality.json``. The master reads the file at each scrape and exports:

- ``ml_model_performance{vertical,version,role,kind,window,metric}``: ``kind`` tells
  ``holdout`` (the manifest's, window ``holdout``), ``realized`` (from outcomes) and
  ``estimated`` (CBPE) apart; ``role`` tells ``champion`` from ``challenger``;
  ``metric`` is ``auc``, ``precision``, ``recall`` or ``conversion_rate``.
- ``ml_model_performance_leads{vertical,version,role,kind,window}``: the leads behind
  each figure (outcomes for realized, sampled leads for estimated).
- ``ml_model_drift{vertical,version,role,feature}``: PSI over the drift window, per
  feature and ``__score__``.
- ``ml_quality_snapshot_timestamp_seconds``: when the snapshot was computed.

Exported by the master from one file, not through the multiprocess files: a version
that stops being served simply disappears from the next scrape, where a multiprocess
gauge would keep its last value (prometheus_client cannot remove a series from the
shared files).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from engine.monitoring.quality import QualitySnapshot
from engine.store.layout import atomic_write

SNAPSHOT_FILE = "quality.json"
METRICS = ("auc", "precision", "recall", "conversion_rate")
_DECODER = msgspec.json.Decoder(QualitySnapshot)

log = logging.getLogger("ml_service.quality")


def snapshot_path(run_dir: Path) -> Path:
    """Where the worker in slot 0 writes the snapshot."""
    return run_dir / SNAPSHOT_FILE


def write_snapshot(path: Path, snapshot: QualitySnapshot) -> None:
    """Replace the snapshot file atomically (a scrape never reads half of one)."""
    atomic_write(path, msgspec.json.encode(snapshot))


def read_snapshot(path: Path) -> QualitySnapshot | None:
    """The latest snapshot, or None when there is none (yet) or it is unreadable."""
    try:
        return _DECODER.decode(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError) as exc:
        log.warning("quality snapshot unreadable", extra={"problem": str(exc)})
        return None


class QualityCollector(Collector):
    """Exports the latest snapshot at every scrape (in the master)."""

    def __init__(self, path: Path, environment: str) -> None:
        self._path = path
        self._environment = environment

    def collect(self) -> Iterator[Metric]:
        """Yield the snapshot's metrics (nothing before the first snapshot)."""
        snapshot = read_snapshot(self._path)
        if snapshot is None:
            return
        yield from snapshot_metrics(snapshot, self._environment)


def snapshot_metrics(snapshot: QualitySnapshot, environment: str) -> Iterable[Metric]:
    """The metric families of a snapshot."""
    performance = GaugeMetricFamily(
        "ml_model_performance",
        "Model performance by kind (holdout, realized, estimated), role and window.",
        labels=["vertical", "version", "role", "kind", "window", "metric", "environment"],
    )
    leads = GaugeMetricFamily(
        "ml_model_performance_leads",
        "Leads behind each performance figure (outcomes, or sampled scored leads).",
        labels=["vertical", "version", "role", "kind", "window", "environment"],
    )
    for row in snapshot.performance:
        labels = [row.vertical, row.version, row.role, row.kind, row.window]
        for name in METRICS:
            value = getattr(row, name)
            if value is not None:
                performance.add_metric([*labels, name, environment], value)
        leads.add_metric([*labels, environment], row.leads)
    drift = GaugeMetricFamily(
        "ml_model_drift",
        "Population stability index of a feature (or __score__) over the drift window.",
        labels=["vertical", "version", "role", "feature", "environment"],
    )
    for item in snapshot.drift:
        drift.add_metric(
            [item.vertical, item.version, item.role, item.feature, environment], item.psi
        )
    stamp = GaugeMetricFamily(
        "ml_quality_snapshot_timestamp_seconds",
        "When the model quality figures were computed.",
        labels=["environment"],
    )
    stamp.add_metric([environment], snapshot.generated_at)
    return [performance, leads, drift, stamp]
