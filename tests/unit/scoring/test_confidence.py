import itertools

import numpy as np
import pytest

from engine.scoring.confidence import (
    ReliabilityTable,
    confidence,
    fit_reliability,
    wilson_interval,
)


def test_wilson_interval_contains_rate_and_shrinks_with_count():
    lo, hi = wilson_interval(30, 100)
    assert lo < 0.3 < hi
    lo2, hi2 = wilson_interval(300, 1000)
    assert hi2 - lo2 < hi - lo
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 50)[0] == pytest.approx(0.0, abs=1e-12)


def test_bands_cover_unit_interval_and_reward_calibration():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 20_000)
    calibrated = (rng.uniform(0, 1, 20_000) < scores).astype(np.int8)
    bands = fit_reliability(scores, calibrated)
    assert bands[0].lower == 0.0 and bands[-1].upper == 1.0
    assert all(a.upper == b.lower for a, b in itertools.pairwise(bands))
    assert sum(b.count for b in bands) == 20_000
    assert min(b.reliability for b in bands) > 0.9
    flipped = fit_reliability(scores, (1 - calibrated).astype(np.int8))
    assert max(b.reliability for b in flipped) < min(b.reliability for b in bands)


def test_tied_scores_merge_bands():
    scores = np.array([0.2] * 50 + [0.8] * 50)
    labels = np.array([0, 1] * 50, dtype=np.int8)
    bands = fit_reliability(scores, labels, min_per_band=10)
    assert len(bands) == 2 and [b.count for b in bands] == [50, 50]


def test_lookup_uses_band_of_score():
    scores = np.linspace(0, 1, 1000)
    labels = (scores > 0.5).astype(np.int8)
    bands = fit_reliability(scores, labels, bands=4, min_per_band=10)
    table = ReliabilityTable(bands)
    for band in bands:
        middle = (band.lower + band.upper) / 2
        assert table(middle) == band.reliability
    assert table(0.0) == bands[0].reliability and table(1.0) == bands[-1].reliability
    with pytest.raises(ValueError):
        ReliabilityTable([])


def test_small_holdouts_get_fewer_bands():
    scores = np.linspace(0.01, 0.99, 600)
    labels = (scores > 0.5).astype(np.int8)
    assert len(fit_reliability(scores, labels)) == 3
    assert len(fit_reliability(scores[:100], labels[:100])) == 1


def test_confidence_combines_and_clamps():
    assert confidence(0.5, 0.8) == 0.4
    assert confidence(1.0, 0.91234) == 0.9123
    assert confidence(1.0, 0.91235) == 0.9124  # half-up
    assert confidence(0.0, 0.9) == 0.0
