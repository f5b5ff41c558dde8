"""Confidence: how much to trust a score, as a number a user can reason about.

``confidence = completeness * reliability(score)``, both in [0, 1]:

- ``completeness`` is the share of the model's total gain importance carried by the
  features this lead supplied with usable values (a number in range, a category seen at
  training, a text with at least one known token). A lead missing its most important
  inputs scores low here, whatever the model says.
- ``reliability(score)`` comes from the holdout set. Holdout scores are cut into bands
  (deciles cut at observed scores; fewer when scores tie or when the holdout has fewer
  than 200 leads per band). For the band the score falls in, take the observed
  conversion rate of the holdout leads in it and its 95% Wilson interval ``[lo, hi]``;
  ``gap = max(|mean_score - lo|, |mean_score - hi|)`` is how far, at 95% confidence,
  the true conversion rate of such leads may be from the score the model gives them.
  ``reliability = 1 - gap`` (clamped to [0, 1]). A well-calibrated band with many
  holdout leads has a small gap; a miscalibrated or thinly populated band a large one.

So a confidence of 0.85 reads: "all but ~X% of the model's signal was present, and on
held-out leads with scores like this one, the true rate was within ~0.1 of the score".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.store.manifest import ReliabilityBand

_Z95 = 1.959963984540054
_floor = math.floor
MIN_PER_BAND = 200


def wilson_interval(positives: int, count: int, z: float = _Z95) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion.

    Args:
        positives: Successes.
        count: Trials (0 gives the uninformative ``(0, 1)``).
        z: The normal quantile (1.96 for 95%).
    """
    if count == 0:
        return 0.0, 1.0
    p = positives / count
    denominator = 1 + z * z / count
    centre = (p + z * z / (2 * count)) / denominator
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def fit_reliability(
    scores: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int8],
    bands: int = 10,
    min_per_band: int = MIN_PER_BAND,
) -> list[ReliabilityBand]:
    """Cut holdout scores into bands and measure each band's reliability.

    Args:
        scores: Holdout probabilities.
        labels: Holdout 0/1 outcomes.
        bands: Most bands to cut (quantile cuts; ties merge bands).
        min_per_band: Fewer bands are cut when the holdout is small, so that each band
            holds about this many leads and its reliability reflects calibration rather
            than sampling noise.

    Returns:
        Bands covering [0, 1] in order; the first starts at 0 and the last ends at 1.
    """
    bands = max(1, min(bands, len(scores) // max(1, min_per_band)))
    # Cut at observed scores (inverted CDF), above the minimum: every band then holds
    # at least the score at its lower edge, so no band is empty.
    cuts = np.quantile(scores, np.linspace(0, 1, bands + 1)[1:-1], method="inverted_cdf")
    lowest = float(scores.min())
    edges = [0.0, *[float(e) for e in np.unique(cuts) if lowest < e < 1.0], 1.0]
    which = np.searchsorted(np.asarray(edges[1:-1]), scores, side="right")
    result: list[ReliabilityBand] = []
    for i in range(len(edges) - 1):
        mask = which == i
        count = int(mask.sum())
        if count:
            positives = int(labels[mask].sum())
            mean_score = float(scores[mask].mean())
            observed = positives / count
        else:
            positives, mean_score, observed = 0, (edges[i] + edges[i + 1]) / 2, 0.0
        lo, hi = wilson_interval(positives, count)
        gap = max(abs(mean_score - lo), abs(mean_score - hi))
        result.append(
            ReliabilityBand(
                lower=edges[i],
                upper=edges[i + 1],
                count=count,
                mean_score=mean_score,
                observed_rate=observed,
                reliability=min(1.0, max(0.0, 1.0 - gap)),
            )
        )
    return result


class ReliabilityTable:
    """Fast lookup of a score's band reliability (a bisect over band edges)."""

    def __init__(self, bands: Sequence[ReliabilityBand]) -> None:
        if not bands:
            raise ValueError("a reliability table needs at least one band")
        self._uppers = [b.upper for b in bands[:-1]]
        self._reliability = [b.reliability for b in bands]

    def __call__(self, score: float) -> float:
        """Return the reliability of the band ``score`` falls in."""
        return self._reliability[bisect.bisect_right(self._uppers, score)]


def confidence(completeness: float, reliability: float) -> float:
    """Combine completeness and reliability into the reported confidence.

    Both inputs are in [0, 1]; the product is rounded half-up to 4 decimals.
    """
    return _floor(completeness * reliability * 10000.0 + 0.5) / 10000.0
