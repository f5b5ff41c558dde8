"""The model report: one self-contained HTML page per trained model version.

Training renders it from the holdout and stores it in the version directory, where it
is hashed and signed with the rest of the artifact; the service serves those bytes as
they are. The page shows:

- the holdout ROC curve (AUC in the legend) and precision-recall curve (the threshold's
  operating point marked);
- the calibration (reliability) curve: observed conversion rate against mean score per
  equal-width score bin, the diagonal, and the stored calibration map when there is one;
- the holdout score histogram by outcome with the threshold;
- feature importance (share of total gain);
- the metrics table, the training data's fingerprint and the library versions.

The same inputs always give the same bytes (see ``engine.reports.plots``): nothing in
the page depends on the time of rendering, so re-rendering a version's report can be
checked against the stored hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from engine.reports.html import Cell, figure, format_number, page, table
from engine.store.manifest import Manifest

# Metrics in the order and wording of the table; any other key follows, sorted.
METRIC_LABELS: dict[str, str] = {
    "auc": "ROC AUC",
    "precision": "Precision at the threshold",
    "recall": "Recall at the threshold",
    "accepted_rate": "Accepted rate (score \u2265 threshold)",
    "positive_rate": "Conversion rate of the training data",
    "brier": "Brier score (lower is better)",
    "log_loss": "Log loss (lower is better)",
    "ece": "Expected calibration error (10 bins)",
    "n_train": "Training rows",
    "n_validation": "Validation rows (early stopping)",
    "n_holdout": "Holdout rows (every figure here)",
    "best_iteration": "Trees (best iteration)",
}
COUNT_METRICS = frozenset({"n_train", "n_validation", "n_holdout", "best_iteration"})
FINGERPRINT_LABELS: dict[str, str] = {
    "source": "File",
    "sha256": "SHA-256",
    "bytes": "Size (bytes)",
    "rows": "Rows",
    "positives": "Converted rows",
}


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything the model report shows.

    Attributes:
        vertical: The vertical's name.
        version: The model version (``X.Y.Z``).
        created_at: When training ran (ISO 8601), as stored in the manifest.
        holdout_scores: The published model's scores of the holdout rows.
        holdout_labels: Their outcomes (0/1).
        threshold: The vertical's acceptance threshold.
        metrics: Holdout metrics by name (see ``METRIC_LABELS``).
        importance: Normalised gain importance per feature.
        data_fingerprint: sha256, bytes, rows, positives and source of the training CSV.
        calibration_x: Raw-score knots of the stored calibration map, if any.
        calibration_y: Calibrated probability at each knot, if any.
        libraries: Library name -> version used by training.
    """

    vertical: str
    version: str
    created_at: str
    holdout_scores: Sequence[float] | npt.NDArray[np.floating[Any]]
    holdout_labels: Sequence[int] | npt.NDArray[np.integer[Any]]
    threshold: float
    metrics: Mapping[str, float]
    importance: Mapping[str, float]
    data_fingerprint: Mapping[str, object]
    calibration_x: Sequence[float] | None = None
    calibration_y: Sequence[float] | None = None
    libraries: Mapping[str, str] = field(default_factory=dict)


def inputs_from_manifest(
    manifest: Manifest,
    holdout_scores: Sequence[float] | npt.NDArray[np.floating[Any]],
    holdout_labels: Sequence[int] | npt.NDArray[np.integer[Any]],
    calibration_x: Sequence[float] | None = None,
    calibration_y: Sequence[float] | None = None,
) -> ReportInputs:
    """Build the report inputs of a version from its manifest and holdout.

    Args:
        manifest: The version's manifest (metrics, importance, fingerprint, libraries).
        holdout_scores: The published model's holdout scores.
        holdout_labels: Their outcomes.
        calibration_x: Knots of the stored calibration map, when there is one.
        calibration_y: Its values at the knots.
    """
    metrics = msgspec.structs.asdict(manifest.metrics)
    threshold = float(metrics.pop("threshold"))
    return ReportInputs(
        vertical=manifest.vertical,
        version=manifest.version,
        created_at=manifest.created_at,
        holdout_scores=holdout_scores,
        holdout_labels=holdout_labels,
        threshold=threshold,
        metrics={k: float(v) for k, v in metrics.items()},
        importance=dict(manifest.importance),
        data_fingerprint=msgspec.structs.asdict(manifest.data_fingerprint),
        calibration_x=calibration_x,
        calibration_y=calibration_y,
        libraries=dict(manifest.libraries),
    )


def render_model_report(inputs: ReportInputs) -> bytes:
    """Render the report as a self-contained UTF-8 HTML document.

    Args:
        inputs: What to show; see ``ReportInputs``.

    Returns:
        The page; identical bytes for identical inputs.

    Raises:
        ValueError: Scores and labels differ in length, or a calibration map has only
            one of its two coordinate lists (or lists of different lengths).
    """
    from engine.reports import plots  # matplotlib loads only when a page is rendered

    scores = np.asarray(inputs.holdout_scores, dtype=np.float64).ravel()
    labels = np.asarray(inputs.holdout_labels, dtype=np.int64).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{len(scores)} holdout scores but {len(labels)} labels")
    cal_x, cal_y = inputs.calibration_x, inputs.calibration_y
    if (cal_x is None) != (cal_y is None) or (
        cal_x is not None and cal_y is not None and len(cal_x) != len(cal_y)
    ):
        raise ValueError("calibration_x and calibration_y must be given together, same length")

    n, positives = len(scores), int(labels.sum())
    threshold = inputs.threshold
    accepted = scores >= threshold
    hits = int(labels[accepted].sum())
    auc_text = _auc_text(scores, labels)
    operating = (
        f"precision {hits / accepted.sum():.3f}, recall {hits / positives:.3f}"
        if accepted.any() and positives
        else "no holdout lead reaches it"
    )
    ece = inputs.metrics.get("ece")
    ece_text = f" ECE {ece:.4f}." if ece is not None else ""
    map_text = (
        " Green: the calibration map stored with the model (raw score to probability)."
        if cal_x
        else " No calibration map is stored with this model."
    )

    figures = [
        figure(
            "roc",
            f"ROC curve of {n:,} holdout leads ({positives:,} converted). {auc_text}",
            plots.roc_svg(scores, labels),
            "No ROC curve: the holdout holds a single class.",
        ),
        figure(
            "pr",
            f"Precision against recall as the threshold falls. Red marker: the threshold "
            f"{threshold:g} ({operating}). Dashed: the conversion rate, the precision of a "
            "random ranking.",
            plots.precision_recall_svg(scores, labels, threshold),
            "No precision-recall curve: no converted lead in the holdout.",
        ),
        figure(
            "calibration",
            f"Observed conversion rate against mean score in {plots.CALIBRATION_BINS} "
            "equal-width score bins; on the diagonal a score is the probability of "
            f"conversion.{ece_text}{map_text}",
            plots.calibration_svg(scores, labels, cal_x, cal_y),
            "No calibration curve: the holdout is empty.",
        ),
        figure(
            "score-histogram",
            "Holdout scores of converted and not converted leads, each normalised to its "
            f"own total. Leads at or right of the threshold {threshold:g} are accepted "
            f"({accepted.mean() if n else 0.0:.1%} of the holdout).",
            plots.score_histogram_svg(scores, labels, threshold),
            "No histogram: the holdout is empty.",
        ),
    ]
    importance = figure(
        "importance",
        "Share of the model's total split gain per feature"
        + (
            f" (the {plots.MAX_BARS} largest of {len(inputs.importance)})."
            if len(inputs.importance) > plots.MAX_BARS
            else "."
        ),
        plots.importance_svg(inputs.importance),
        "No feature importance recorded.",
    )

    body = (
        '<h2>Holdout performance</h2>\n<div class="grid">'
        + "".join(figures)
        + "</div>\n<h2>Feature importance</h2>\n"
        + importance
        + '\n<div class="tables">'
        + f"<section><h2>Metrics</h2>{_metrics_table(inputs)}</section>"
        + f"<section><h2>Training data</h2>{_fingerprint_table(inputs)}</section>"
        + f"<section><h2>Libraries</h2>{_libraries_table(inputs)}</section>"
        + "</div>"
    )
    title = f"Model report: {inputs.vertical} v{inputs.version}"
    subtitle = (
        f"Trained {inputs.created_at} \u00b7 holdout of {n:,} leads "
        f"({positives:,} converted) \u00b7 threshold {threshold:g}"
    )
    footer = (
        f"Self-contained report of {inputs.vertical} v{inputs.version}; plots drawn by "
        f"matplotlib {_matplotlib_version()}. Nothing on this page loads from a network."
    )
    return page(title, subtitle, body, footer)


def _auc_text(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> str:
    from engine.reports import plots

    try:
        fpr, tpr = plots.roc_points(scores, labels)
    except ValueError:
        return ""
    return (
        f"AUC {plots.area(fpr, tpr):.4f}: the chance that a random converted lead scores "
        "above a random non-converted one."
    )


def _metrics_table(inputs: ReportInputs) -> str:
    metrics = dict(inputs.metrics)
    rows: list[list[Cell | str]] = [
        ["Threshold (accept when score \u2265)", Cell(format_number(inputs.threshold), "num")]
    ]
    ordered = [k for k in METRIC_LABELS if k in metrics] + sorted(
        k for k in metrics if k not in METRIC_LABELS
    )
    for key in ordered:
        value = metrics[key]
        shown: float | int = int(value) if key in COUNT_METRICS else float(value)
        rows.append([METRIC_LABELS.get(key, key), Cell(format_number(shown), "num")])
    return table(("Metric", "Value"), rows, table_id="metrics")


def _fingerprint_table(inputs: ReportInputs) -> str:
    data = dict(inputs.data_fingerprint)
    keys = [k for k in FINGERPRINT_LABELS if k in data] + sorted(
        k for k in data if k not in FINGERPRINT_LABELS
    )
    rows: list[list[Cell | str]] = []
    for key in keys:
        value = data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            cell = Cell(format_number(value), "num")
        else:
            cell = Cell(value, "code" if key == "sha256" else "")
        rows.append([FINGERPRINT_LABELS.get(key, key), cell])
    return table(("Field", "Value"), rows, table_id="data-fingerprint")


def _libraries_table(inputs: ReportInputs) -> str:
    rows = [[name, inputs.libraries[name]] for name in sorted(inputs.libraries)]
    return table(("Library", "Version"), rows, table_id="libraries")


def _matplotlib_version() -> str:
    import matplotlib

    return str(matplotlib.__version__)
