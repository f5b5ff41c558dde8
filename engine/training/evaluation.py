"""Holdout metrics and reference histograms of a trained model."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from engine.config import FeatureSpec
from engine.store.manifest import Histogram

HISTOGRAM_BINS = 10
TOP_CATEGORIES = 20
SCORE_HISTOGRAM_BINS = 10


def holdout_metrics(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8], threshold: float
) -> dict[str, float]:
    """Return AUC, precision and recall at ``threshold``, Brier, log loss, ECE, accept rate.

    Precision is reported as 0 when no lead reaches the threshold (nothing accepted).
    """
    accepted = scores >= threshold
    true_positive = int(np.sum(accepted & (labels == 1)))
    accepted_count = int(accepted.sum())
    positives = int(labels.sum())
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "precision": true_positive / accepted_count if accepted_count else 0.0,
        "recall": true_positive / positives if positives else 0.0,
        "brier": float(brier_score_loss(labels, scores)),
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(scores, labels),
        "accepted_rate": accepted_count / len(scores),
    }


def expected_calibration_error(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int8], bins: int = 10
) -> float:
    """Return the count-weighted mean |mean score - observed rate| over equal-width bins."""
    which = np.minimum((scores * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if count:
            total += count * abs(float(scores[mask].mean()) - float(labels[mask].mean()))
    return total / len(scores)


def numeric_histogram(values: npt.NDArray[np.float64], bins: int = HISTOGRAM_BINS) -> Histogram:
    """Return a quantile histogram of finite values; NaN counts as missing."""
    present = values[~np.isnan(values)]
    missing = len(values) - len(present)
    if len(present) == 0:
        return Histogram(counts=[0], missing=missing, edges=[])
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    edges = [float(e) for e in np.unique(quantiles) if math.isfinite(e)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return Histogram(counts=[int(c) for c in counts], missing=missing, edges=edges)


def categorical_histogram(codes: npt.NDArray[np.float64], categories: list[str]) -> Histogram:
    """Return counts of the most frequent categories (by code) plus ``__other__``."""
    present = codes[~np.isnan(codes)].astype(np.int64)
    missing = len(codes) - len(present)
    shown = min(TOP_CATEGORIES, len(categories))
    counts = np.bincount(present, minlength=len(categories)) if len(present) else np.zeros(0)
    top = [int(counts[i]) if i < len(counts) else 0 for i in range(shown)]
    other = int(len(present) - sum(top))
    return Histogram(
        counts=[*top, other], missing=missing, labels=[*categories[:shown], "__other__"]
    )


def reference_histograms(
    specs: tuple[FeatureSpec, ...],
    matrix: npt.NDArray[np.float64],
    categories: dict[str, list[str]],
    scores: npt.NDArray[np.float64],
) -> dict[str, Histogram]:
    """Histograms of every encoded feature column and of the score (key ``__score__``).

    Text features are histogrammed on their encoded value, which is what the model sees.
    """
    result: dict[str, Histogram] = {}
    for spec in specs:
        column = matrix[:, spec.index]
        if spec.kind == "categorical":
            result[spec.name] = categorical_histogram(column, categories[spec.name])
        else:
            result[spec.name] = numeric_histogram(column)
    # 10 bins: the reference is the holdout (a few hundred to a few thousand scores), and
    # finer bins would make its own sampling noise read as drift.
    result["__score__"] = numeric_histogram(scores, bins=SCORE_HISTOGRAM_BINS)
    return result
