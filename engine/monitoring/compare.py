"""Champion against shadow challenger, on the same leads.

Only leads the champion scored *and* the challenger scored after it (the shadow score
is stored with the lead, ``ScoredLead.shadow_score``) and whose outcome arrived in the
window are compared, so both realized AUCs rest on exactly the same outcomes. Each
comes with DeLong's 95% interval (``performance.auc_confidence_interval``); two
overlapping intervals mean the difference is not established yet. The estimated AUCs
(CBPE) come from each model's sampled scores over the window, and the agreement says
how differently the two would have acted: the correlation of their scores and the
share of leads on which both make the same accept decision.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from engine.monitoring.performance import auc_confidence_interval, realized
from engine.monitoring.quality import ServedModel, estimated_rows
from engine.monitoring.store import MonitoringStore


class Side(msgspec.Struct, frozen=True):
    """One model's figures in a comparison."""

    version: str
    realized_auc: float | None
    auc_interval: tuple[float, float] | None  # DeLong, 95%
    estimated_auc: float | None
    sampled_leads: int  # behind the estimate


class Agreement(msgspec.Struct, frozen=True):
    """How the two models' scores relate on the compared leads."""

    correlation: float | None
    decision_agreement: float | None  # share of leads both accept or both refuse
    mean_absolute_difference: float | None


class Comparison(msgspec.Struct, frozen=True):
    """Champion and challenger on the same leads over one window."""

    vertical: str
    window_hours: float
    outcomes: int  # leads with an outcome that both models scored
    champion: Side
    challenger: Side
    agreement: Agreement


def _interval(scores: np.ndarray, converted: np.ndarray) -> tuple[float, float] | None:
    try:
        return auc_confidence_interval(scores, converted)
    except ValueError:  # too few outcomes of a class for an interval
        return None


def _side(
    store: MonitoringStore,
    model: ServedModel,
    scores: np.ndarray,
    converted: np.ndarray,
    window: float,
    now: float,
) -> Side:
    figures = realized(scores, converted, model.threshold)
    (estimate,) = estimated_rows(store, model, [window], now)
    return Side(
        model.version, figures.auc, _interval(scores, converted), estimate.auc, estimate.leads
    )


def compare(
    store: MonitoringStore,
    champion: ServedModel,
    challenger: ServedModel,
    window: float,
    now: float,
) -> Comparison:
    """Compare ``challenger`` with ``champion`` over the last ``window`` seconds."""
    labelled = store.labelled(champion.vertical, now - window)
    pairs = [
        (score, shadow, converted)
        for version, score, shadow_version, shadow, converted in zip(
            labelled.versions,
            labelled.scores,
            labelled.shadow_versions,
            labelled.shadow_scores,
            labelled.converted,
            strict=True,
        )
        if version == champion.version
        and shadow_version == challenger.version
        and shadow is not None
    ]
    first = np.array([p[0] for p in pairs], dtype=np.float64)
    second = np.array([p[1] for p in pairs], dtype=np.float64)
    outcomes = np.array([p[2] for p in pairs], dtype=np.bool_)
    correlation = None
    if len(pairs) >= 2 and first.std() > 0 and second.std() > 0:
        correlation = float(np.corrcoef(first, second)[0, 1])
        correlation = correlation if math.isfinite(correlation) else None
    agreement = Agreement(
        correlation,
        float(np.mean((first >= champion.threshold) == (second >= challenger.threshold)))
        if pairs
        else None,
        float(np.mean(np.abs(first - second))) if pairs else None,
    )
    return Comparison(
        champion.vertical,
        window / 3600,
        len(pairs),
        _side(store, champion, first, outcomes, window, now),
        _side(store, challenger, second, outcomes, window, now),
        agreement,
    )
