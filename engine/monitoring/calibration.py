"""Score calibration fitted on the holdout at training time and stored in the manifest.

LightGBM's raw scores rank leads well but are not always probabilities: boosting with
early stopping tends to push them toward the extremes or squeeze them toward the base
rate. Estimated performance (CBPE, ``engine.monitoring.performance``) reads each score
as the probability that the lead converts, so it needs a map from raw score to observed
conversion rate. Training fits one on the holdout, which the model never saw, and
stores it in the version's manifest.

The map is isotonic regression (monotone, no shape assumed), stored as its knots: the
calibrated value of a raw score is the linear interpolation between the two nearest
knots, clipped to the first and last knot outside their range. Platt scaling (a
sigmoid of the score) was not chosen: it assumes the miscalibration is logistic in
shape, and a LightGBM model's typically is not. Isotonic needs more holdout rows to be
smooth, which a lead vertical's training set has (hundreds to thousands of holdout rows).

Only the knots are kept, at most ``MAX_KNOTS`` of them, so a manifest stays small and
applying the map is one ``numpy.interp``. scikit-learn is imported only when fitting:
the serving path loads manifests, and must not pay for (or depend on) scikit-learn.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

MAX_KNOTS = 200


class Calibration(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A monotone map from raw model score to probability of conversion.

    Attributes:
        method: How the map was fitted; ``"isotonic"`` (isotonic regression).
        x: Raw scores of the knots, strictly increasing, in [0, 1].
        y: Calibrated probability at each knot, non-decreasing, in [0, 1].
    """

    method: Literal["isotonic"]
    x: list[float]
    y: list[float]

    def __post_init__(self) -> None:
        # Runs on decoding too (msgspec turns the ValueError into a ValidationError), so
        # a malformed map in a manifest is rejected at load, not met while estimating.
        x = np.asarray(self.x, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64)
        if len(x) == 0 or len(x) != len(y):
            raise ValueError("calibration needs as many x as y knots, at least one")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("calibration knots must be finite")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("calibration x must increase strictly and y must not decrease")
        if y[0] < 0 or y[-1] > 1:
            raise ValueError("calibrated probabilities must lie in [0, 1]")

    def apply(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Return the calibrated probability of each raw score.

        Between knots the map is linear; below the first knot it is the first knot's
        value and above the last the last's (clipping, as scikit-learn's
        ``out_of_bounds="clip"``). NaN stays NaN.
        """
        values = np.asarray(scores, dtype=np.float64)
        return np.interp(values, self.x, self.y).astype(np.float64, copy=False)


def fit_calibration(scores: npt.ArrayLike, labels: npt.ArrayLike) -> Calibration:
    """Fit an isotonic calibration of ``scores`` to the 0/1 ``labels``.

    Args:
        scores: Raw model scores of held-out leads (finite, in [0, 1]).
        labels: Their outcomes, 0/1 or bool, same length.

    Returns:
        The fitted map with at most ``MAX_KNOTS`` knots.

    Raises:
        ValueError: Lengths differ, no rows, or a score is not finite.
    """
    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{len(x)} scores but {len(y)} labels")
    if x.size == 0:
        raise ValueError("cannot calibrate without scores")
    if not np.isfinite(x).all():
        raise ValueError("scores must be finite")

    from sklearn.isotonic import IsotonicRegression  # training only

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(x, y)
    knots_x = np.asarray(model.X_thresholds_, dtype=np.float64)
    knots_y = np.clip(np.asarray(model.y_thresholds_, dtype=np.float64), 0.0, 1.0)
    knots_x, knots_y = _thin(*_drop_collinear(knots_x, knots_y), MAX_KNOTS)
    return Calibration(method="isotonic", x=knots_x.tolist(), y=knots_y.tolist())


def _drop_collinear(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Remove inner knots that lie on the line through their neighbours (no-ops)."""
    if len(x) < 3:
        return x, y
    left = (y[1:-1] - y[:-2]) * (x[2:] - x[1:-1])
    right = (y[2:] - y[1:-1]) * (x[1:-1] - x[:-2])
    keep = np.ones(len(x), dtype=np.bool_)
    keep[1:-1] = ~np.isclose(left, right, rtol=0.0, atol=1e-12)
    return x[keep], y[keep]


def _thin(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], limit: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Keep at most ``limit`` knots, evenly spaced by position, always the two ends.

    Any subset of a monotone curve's knots is still monotone. Isotonic regression puts
    its knots where the holdout has data, so even spacing by position keeps the
    resolution where leads are and drops it where they are not.
    """
    if len(x) <= limit:
        return x, y
    picks = np.unique(np.rint(np.linspace(0, len(x) - 1, limit)).astype(np.intp))
    return x[picks], y[picks]
