"""Realized performance from outcomes and estimated performance from scores alone.

Three kinds of performance figure exist for a model version:

- *holdout*: measured once at training time (``Manifest.metrics``);
- *realized*: measured from the outcomes buyers report (``realized``);
- *estimated*: expected from the scores of leads whose outcomes are not known yet,
  confidence-based performance estimation (CBPE, as NannyML does it): if a lead's
  calibrated score is the probability ``p`` that it converts, the lead contributes ``p``
  of a positive and ``1 - p`` of a negative, and the expected confusion-matrix counts
  and the expected ROC AUC follow from the scores (``estimated``,
  ``estimated_from_scores``).

Workers keep only a histogram of raw scores (``score_histogram``, ``SCORE_BINS`` equal
bins over [0, 1]) per minute; the store sums them over a window and ``estimated`` turns
the sum into figures. Everything here is numpy only: the server imports this module.

Expected figures are ratios of expected counts (expected true positives over expected
positives, and so on), as CBPE defines them, not expectations of ratios; the two agree
to O(1/n) and the difference is far below the sampling noise of the realized figure.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import msgspec
import numpy as np
import numpy.typing as npt

from engine.monitoring.calibration import Calibration

SCORE_BINS = 200

# Fewer expected (positive, negative) pairs than this and the expected AUC is undefined.
_MIN_PAIRS = 1e-9

# Tolerance when placing a threshold on the bin grid: 0.6 * 200 is 120.00000000000001
# in floating point, and must still mean "from bin 120 on".
_EDGE_TOLERANCE = 1e-9


class Performance(msgspec.Struct, frozen=True):
    """Classification performance of a set of scored leads.

    Attributes:
        auc: ROC AUC; None when it is undefined (one class only, or no leads).
        precision: Share of accepted leads (``score >= threshold``) that convert; None
            when no lead is accepted.
        recall: Share of converting leads that are accepted; None without positives.
        conversion_rate: Share of leads that convert; None without leads.
        leads: How many leads the figures are computed from.
        positives: Converted leads: the observed count for realized performance, the
            expected count (sum of probabilities) for estimated performance.
    """

    auc: float | None
    precision: float | None
    recall: float | None
    conversion_rate: float | None
    leads: int
    positives: float


def realized(scores: npt.ArrayLike, converted: npt.ArrayLike, threshold: float) -> Performance:
    """Return the performance measured from known outcomes.

    Args:
        scores: Raw model scores, one per lead.
        converted: The leads' outcomes (bool or 0/1), same length.
        threshold: A lead is accepted when ``score >= threshold``.

    Returns:
        ROC AUC (ties count one half, as scikit-learn's ``roc_auc_score``), precision
        and recall at the threshold, conversion rate, and the counts behind them.

    Raises:
        ValueError: Lengths differ, or a score is not finite.
    """
    values, labels = _scores_and_labels(scores, converted)
    leads = len(values)
    positives = int(labels.sum())
    accepted = values >= threshold
    accepted_count = int(accepted.sum())
    true_positives = int(np.count_nonzero(accepted & labels))
    return Performance(
        auc=_rank_auc(values, labels),
        precision=true_positives / accepted_count if accepted_count else None,
        recall=true_positives / positives if positives else None,
        conversion_rate=positives / leads if leads else None,
        leads=leads,
        positives=float(positives),
    )


def score_histogram(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Count raw scores in ``SCORE_BINS`` equal bins over [0, 1].

    Bin ``k`` holds ``k / SCORE_BINS <= score < (k + 1) / SCORE_BINS``; a score of
    exactly 1 falls in the last bin, scores outside [0, 1] in the nearest end bin, and
    non-finite scores are not counted.

    Returns:
        ``SCORE_BINS`` int64 counts.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    which = np.clip(np.floor(values * SCORE_BINS), 0, SCORE_BINS - 1).astype(np.intp)
    return np.bincount(which, minlength=SCORE_BINS).astype(np.int64)


def first_accepted_bin(threshold: float) -> int:
    """Return the first histogram bin counted as accepted at ``threshold``.

    A bin is accepted when its lower edge is at least the threshold, so a threshold
    between two edges is rounded up to the next edge (a multiple of 1 / ``SCORE_BINS``,
    0.005). Thresholds on the grid, such as 0.6 and 0.65, are exact.
    """
    return max(0, min(SCORE_BINS, math.ceil(threshold * SCORE_BINS - _EDGE_TOLERANCE)))


def estimated(
    histogram: npt.ArrayLike, calibration: Calibration | None, threshold: float
) -> Performance:
    """Estimate performance (CBPE) from a histogram of raw scores.

    Each bin's midpoint, mapped through ``calibration`` (taken as-is when None), is the
    probability ``p_i`` that a lead of that bin converts. With ``n_i`` leads in bin
    ``i``, ``P_i = n_i p_i`` positives and ``N_i = n_i (1 - p_i)`` negatives are expected,
    and the expected AUC is the expected share of (positive, negative) pairs of distinct
    leads that the raw score orders correctly, ties counting one half::

        AUC = (sum_i P_i sum_{j<i} N_j + 0.5 sum_i (P_i N_i - n_i p_i (1 - p_i)))
              / (sum_i P_i * sum_i N_i - sum_i n_i p_i (1 - p_i))

    The ``n_i p_i (1 - p_i)`` terms remove the pairs of a lead with itself; they matter
    only for small windows. Bins from ``first_accepted_bin(threshold)`` on are accepted.

    Args:
        histogram: ``SCORE_BINS`` counts, as ``score_histogram`` returns (or their sum
            over several periods).
        calibration: The model version's calibration (``Manifest.calibration``).
        threshold: The acceptance threshold.

    Returns:
        The expected figures; ``positives`` is the expected number of conversions.

    Raises:
        ValueError: The histogram does not have ``SCORE_BINS`` non-negative counts.
    """
    counts = np.asarray(histogram, dtype=np.float64).ravel()
    if counts.shape != (SCORE_BINS,) or not (np.isfinite(counts).all() and (counts >= 0).all()):
        raise ValueError(f"a score histogram has {SCORE_BINS} non-negative counts")
    midpoints = (np.arange(SCORE_BINS, dtype=np.float64) + 0.5) / SCORE_BINS
    p = _probability(midpoints, calibration)
    accepted = np.zeros(SCORE_BINS, dtype=np.bool_)
    accepted[first_accepted_bin(threshold) :] = True
    return _expected(counts, counts * p, counts * (1 - p), counts * p * (1 - p), accepted)


def estimated_from_scores(
    scores: npt.ArrayLike, calibration: Calibration | None, threshold: float
) -> Performance:
    """Estimate performance (CBPE) from individual raw scores, without binning.

    The same estimate as ``estimated`` with one group per distinct score, and exact
    acceptance (``score >= threshold``) instead of the bin grid.

    Raises:
        ValueError: A score is not finite.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")
    distinct, group = np.unique(values, return_inverse=True)
    p = _probability(values, calibration)

    def per_score(weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.bincount(group, weights=weights, minlength=len(distinct)).astype(np.float64)

    return _expected(
        per_score(np.ones_like(p)),
        per_score(p),
        per_score(1 - p),
        per_score(p * (1 - p)),
        distinct >= threshold,
    )


def auc_confidence_interval(
    scores: npt.ArrayLike, converted: npt.ArrayLike, level: float = 0.95
) -> tuple[float, float]:
    """Return DeLong's confidence interval of the ROC AUC of ``scores``.

    DeLong's variance is the variance of each positive's share of negatives it
    outranks, over the positives, plus the same for negatives, over the negatives
    (ties count one half). The interval is the normal one around the AUC, clipped to
    [0, 1]. It is a large-sample interval: with a handful of outcomes of either class
    it is too narrow.

    Args:
        scores: Raw model scores.
        converted: Outcomes (bool or 0/1), same length.
        level: Coverage, in (0, 1).

    Raises:
        ValueError: Fewer than two leads of either class, a length mismatch, a
            non-finite score, or ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values, labels = _scores_and_labels(scores, converted)
    positive = np.sort(values[labels])
    negative = np.sort(values[~labels])
    if len(positive) < 2 or len(negative) < 2:
        raise ValueError(
            f"DeLong needs two leads of each class; have {len(positive)} converted and "
            f"{len(negative)} not"
        )
    # Share of negatives each positive outranks, and of positives each negative is
    # outranked by; ties count one half.
    below = np.searchsorted(negative, positive, side="left")
    tied = np.searchsorted(negative, positive, side="right") - below
    v10 = (below + 0.5 * tied) / len(negative)
    above = len(positive) - np.searchsorted(positive, negative, side="right")
    tied_neg = np.searchsorted(positive, negative, side="right") - np.searchsorted(
        positive, negative, side="left"
    )
    v01 = (above + 0.5 * tied_neg) / len(positive)
    auc = float(v10.mean())
    variance = float(v10.var(ddof=1) / len(positive) + v01.var(ddof=1) / len(negative))
    half = NormalDist().inv_cdf(0.5 + level / 2) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _scores_and_labels(
    scores: npt.ArrayLike, converted: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(converted).ravel().astype(np.bool_)
    if values.shape != labels.shape:
        raise ValueError(f"{len(values)} scores but {len(labels)} outcomes")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")
    return values, labels


def _rank_auc(values: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float | None:
    """Mann-Whitney AUC with mid-ranks for ties; None when a class is absent."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    # Mid-rank (1-based) of every distinct value: ranks before it plus the mean of its own.
    ends = np.cumsum(counts)
    mid_ranks = ends - (counts - 1) / 2.0
    rank_sum = float(mid_ranks[group][labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def _probability(
    scores: npt.NDArray[np.float64], calibration: Calibration | None
) -> npt.NDArray[np.float64]:
    if calibration is None:
        return np.clip(scores, 0.0, 1.0)
    return np.clip(calibration.apply(scores), 0.0, 1.0)


def _expected(
    counts: npt.NDArray[np.float64],
    pos: npt.NDArray[np.float64],
    neg: npt.NDArray[np.float64],
    self_pairs: npt.NDArray[np.float64],
    accepted: npt.NDArray[np.bool_],
) -> Performance:
    """Expected figures from groups ordered by raw score (ascending).

    Args:
        counts: Leads per group.
        pos: Expected positives per group (sum of p).
        neg: Expected negatives per group (sum of 1 - p).
        self_pairs: Per group, sum of p (1 - p): a lead paired with itself.
        accepted: Whether each group's leads are accepted.
    """
    leads = float(counts.sum())
    total_pos = float(pos.sum())
    total_neg = float(neg.sum())
    # Negatives in strictly lower groups, for every group.
    lower_neg = np.cumsum(neg) - neg
    correct = float(np.dot(pos, lower_neg)) + 0.5 * float(np.sum(pos * neg - self_pairs))
    pairs = total_pos * total_neg - float(self_pairs.sum())
    true_pos = float(pos[accepted].sum())
    accepted_leads = float(counts[accepted].sum())
    return Performance(
        # Below one pair's worth, the "pairs" are rounding left over from removing the
        # self-pairs (one lead, or every p at 0 or 1): no ranking to judge.
        auc=correct / pairs if pairs > _MIN_PAIRS else None,
        precision=true_pos / accepted_leads if accepted_leads > 0 else None,
        recall=true_pos / total_pos if total_pos > 0 else None,
        conversion_rate=total_pos / leads if leads > 0 else None,
        leads=round(leads),
        positives=total_pos,
    )
