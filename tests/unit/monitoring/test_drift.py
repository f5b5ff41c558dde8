"""PSI drift: bin layout, counting, the PSI formula, and real populations through a real model.

The population tests train the auto model with the project's pipeline on 20,000
synthetic rows (about 1 s), so the reference holds 14,000 training rows and 3,000
holdout scores: a 4,000-row model's 600 holdout scores alone would put the score's PSI
on an unshifted population near 0.04 by sampling noise alone (docs/quality.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.monitoring.drift import (
    EPSILON,
    MIN_LEADS,
    SCORE,
    DriftBins,
    drift,
    is_missing,
    psi,
)
from engine.scoring.model import LoadedModel, load_model
from engine.store.manifest import Histogram, Manifest
from engine.training.synth import generate

LEADS = 5000  # per population; PSI noise with 22 bins is ~21 * (1/14000 + 1/5000) = 0.006
LIVE_SEED = 2024  # the training data uses seed 11


# ---------------------------------------------------------------------------- psi()


def test_identical_distributions_have_zero_psi():
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    # Shares, not counts, are compared: ten times the volume is the same population.
    assert psi([10, 20, 30], [100, 200, 300]) == pytest.approx(0.0, abs=1e-15)
    assert psi([5, 0, 5], [50, 0, 50]) == pytest.approx(0.0, abs=1e-15)


def test_psi_matches_a_hand_computed_value():
    # r = (0.5, 0.3, 0.2), a = (0.3, 0.3, 0.4); with no smoothing to speak of:
    # (0.3-0.5) ln(0.3/0.5) + 0 + (0.4-0.2) ln(0.4/0.2) = 0.2 ln(5/3) + 0.2 ln 2
    expected = 0.2 * math.log(5 / 3) + 0.2 * math.log(2)
    assert expected == pytest.approx(0.240795, abs=1e-6)
    assert psi([50, 30, 20], [30, 30, 40], epsilon=1e-12) == pytest.approx(expected, rel=1e-9)
    # The default smoothing moves a value with no empty bin by well under 0.1 %.
    assert psi([50, 30, 20], [30, 30, 40]) == pytest.approx(expected, rel=1e-3)


def test_psi_smoothing_is_the_documented_one():
    # Shares (1, 0) and (0.5, 0.5), each plus eps, over 1 + 2 eps.
    eps = 0.01
    r = np.array([1 + eps, eps]) / (1 + 2 * eps)
    a = np.array([0.5 + eps, 0.5 + eps]) / (1 + 2 * eps)
    expected = float(np.sum((a - r) * np.log(a / r)))
    assert psi([7, 0], [3, 3], epsilon=eps) == pytest.approx(expected, rel=1e-12)


def test_psi_is_symmetric_and_grows_with_the_shift():
    reference = [400, 300, 200, 100]
    slight, strong = [380, 300, 210, 110], [100, 200, 300, 400]
    assert psi(reference, strong) == pytest.approx(psi(strong, reference), rel=1e-12)
    assert psi(reference, slight) == pytest.approx(psi(slight, reference), rel=1e-12)
    assert 0 < psi(reference, slight) < 0.01
    # 0.3 ln 4 + 0.1 ln 1.5 + 0.1 ln 1.5 + 0.3 ln 4: a major shift (> 0.25).
    assert psi(reference, strong) == pytest.approx(
        0.6 * math.log(4) + 0.2 * math.log(1.5), rel=1e-3
    )


def test_psi_empty_bins_stay_finite():
    # A bin empty in the reference but holding 10 % of the live leads: large, finite.
    value = psi([50, 50, 0], [45, 45, 10])
    assert math.isfinite(value) and value > 0.25
    # ...and its size follows the smoothing: about 0.1 * ln(0.1 / eps).
    assert value == pytest.approx(0.1 * math.log(0.1 / EPSILON), rel=0.1)
    # A bin empty on both sides adds nothing.
    assert psi([50, 50, 0], [40, 60, 0]) == pytest.approx(psi([50, 50], [40, 60]), rel=1e-3)


def test_psi_of_nothing_observed_is_zero():
    assert psi([10, 20], [0, 0]) == 0.0
    assert psi([0, 0], [10, 20]) == 0.0


@pytest.mark.parametrize(
    ("reference", "actual", "epsilon"),
    [
        ([1, 2], [1, 2, 3], EPSILON),  # different bins
        ([], [], EPSILON),  # no bins
        ([1, -1], [1, 1], EPSILON),  # negative count
        ([1, math.nan], [1, 1], EPSILON),  # not a count
        ([[1, 2]], [[1, 2]], EPSILON),  # not a vector
        ([1, 2], [1, 2], 0.0),  # no smoothing: an empty bin would be infinite
    ],
)
def test_psi_rejects_bad_input(reference, actual, epsilon):
    with pytest.raises(ValueError):
        psi(reference, actual, epsilon)


# ------------------------------------------------------------- hand-made manifest


def _manifest(histograms: dict[str, Histogram]) -> Manifest:
    """A manifest with three features (numeric, categorical, text) and these histograms."""
    from engine.store.manifest import DataFingerprint, ManifestFeature, Metrics

    return Manifest(
        vertical="auto",
        version="1.0.0",
        created_at="2025-01-01T00:00:00+00:00",
        features=[
            ManifestFeature("age", "numerical", 0, True, 16.0, 100.0),
            ManifestFeature("make", "categorical", 1),
            ManifestFeature("job", "text", 2),
        ],
        files={},
        metrics=Metrics(0.8, 0.5, 0.5, 0.65, 0.2, 0.5, 0.01, 0.3, 10, 3, 3, 0.3, 10),
        reliability=[],
        importance={"age": 0.5, "make": 0.3, "job": 0.2},
        reference_histograms=histograms,
        data_fingerprint=DataFingerprint("0" * 64, 1, 16, 5, "x.csv"),
        training={},
        libraries={},
    )


HAND = {
    "age": Histogram(counts=[3, 4, 5], missing=0, edges=[25.0, 40.5]),
    "make": Histogram(counts=[6, 4, 2], missing=3, labels=["toyota", "ford", "__other__"]),
    "job": Histogram(counts=[7, 6], missing=2, edges=[-0.25]),
    SCORE: Histogram(counts=[8, 8], missing=0, edges=[0.5]),
}


@pytest.fixture
def hand() -> DriftBins:
    return DriftBins.from_manifest(_manifest(HAND))


def test_bin_layout_follows_the_manifest(hand):
    assert hand.names == ("age", "make", "job", SCORE)
    assert hand.sizes == {"age": 4, "make": 5, "job": 3, SCORE: 3}
    assert hand.labels("age") == ["< 25", "25–40.5", "≥ 40.5", "missing"]
    assert hand.labels("make") == ["toyota", "ford", "__other__", "unseen", "missing"]
    assert hand.labels("job") == ["< -0.25", "≥ -0.25", "missing"]
    assert hand.labels(SCORE) == ["< 0.5", "≥ 0.5", "missing"]
    assert hand.reference("age").tolist() == [3, 4, 5, 0]
    assert hand.reference("make").tolist() == [6, 4, 2, 0, 3]  # unseen 0, missing last
    assert hand.reference("job").tolist() == [7, 6, 2]
    assert hand.reference(SCORE).tolist() == [8, 8, 0]
    for name in hand.names:
        assert len(hand.labels(name)) == hand.sizes[name] == len(hand.reference(name))
        assert hand.reference(name).dtype == np.int64
    with pytest.raises(ValueError):
        hand.reference("age")[0] = 99  # the reference is read-only
    rounded = {**HAND, "age": Histogram([1, 1, 1], 0, edges=[0.0406718, 5130.000000000001])}
    assert DriftBins.from_manifest(_manifest(rounded)).labels("age") == [
        "< 0.04067",
        "0.04067–5130",
        "≥ 5130",
        "missing",
    ]
    zeros = hand.zeros()
    assert {n: z.tolist() for n, z in zeros.items()} == {n: [0] * s for n, s in hand.sizes.items()}


def test_count_puts_values_on_an_edge_into_the_upper_bin(hand):
    # As in training (evaluation.numeric_histogram): bin i is edges[i-1] <= x < edges[i].
    ages = [16.0, 24.999, 25.0, 40.4, 40.5, 100.0, math.nan]
    matrix = np.array([[a, 0.0, 0.0] for a in ages])
    leads = [{"age": a, "make": "toyota", "job": "x"} for a in ages]
    counts = hand.count(matrix, leads, np.full(len(ages), 0.5))
    assert counts["age"].tolist() == [2, 2, 2, 1]
    assert counts["job"].tolist() == [0, 7, 0]  # -0.25 < 0.0
    assert counts[SCORE].tolist() == [0, 7, 0]  # 0.5 is on the edge: upper bin
    assert all(c.dtype == np.int64 for c in counts.values())


def test_count_tells_unseen_from_missing(hand):
    nan = math.nan
    rows = [
        ({"make": "toyota"}, 0.0),  # code 0
        ({"make": "Ford"}, 1.0),  # code 1
        ({"make": "kia"}, 2.0),  # a known category outside the top labels
        ({"make": "kia"}, 7.0),  # ...however far outside
        ({"make": "rivian"}, nan),  # a value the model has never seen
        ({"make": 29}, nan),  # a number is a value too
        ({"make": None}, nan),  # JSON null
        ({}, nan),  # absent
        ({"make": ""}, nan),  # blank, as a training CSV's empty cell
        ({"make": "   "}, nan),
        ({"make": nan}, nan),  # a Python caller's NaN
    ]
    matrix = np.array([[30.0, code, nan] for _, code in rows])
    leads = [lead for lead, _ in rows]
    counts = hand.count(matrix, leads, np.full(len(rows), 0.1))
    assert dict(zip(hand.labels("make"), counts["make"].tolist(), strict=True)) == {
        "toyota": 1,
        "ford": 1,
        "__other__": 2,
        "unseen": 2,
        "missing": 5,
    }
    # Text is binned on its encoded value only: NaN is missing whatever the lead says.
    assert counts["job"].tolist() == [0, 0, len(rows)]


def test_is_missing():
    assert all(is_missing(v) for v in (None, "", "  \t", math.nan))
    assert not any(is_missing(v) for v in ("x", 0, 0.0, False, "nan", math.inf))


def test_count_adds_up_over_batches_and_checks_shapes(hand):
    rng = np.random.default_rng(5)
    n = 300
    matrix = np.column_stack(
        [rng.uniform(16, 100, n), rng.integers(0, 5, n).astype(float), rng.normal(0, 1, n)]
    )
    matrix[rng.random((n, 3)) < 0.1] = np.nan
    leads = [{"make": "x" if i % 2 else None} for i in range(n)]
    scores = rng.random(n)
    whole = hand.count(matrix, leads, scores)
    parts = hand.zeros()
    for start in range(0, n, 70):
        part = slice(start, start + 70)
        for name, c in hand.count(matrix[part], leads[part], scores[part]).items():
            parts[name] += c
    assert {k: v.tolist() for k, v in parts.items()} == {k: v.tolist() for k, v in whole.items()}
    assert all(int(c.sum()) == n for c in whole.values())
    empty = hand.count(np.empty((0, 3)), [], np.empty(0))
    assert all(int(c.sum()) == 0 for c in empty.values())
    with pytest.raises(ValueError):
        hand.count(matrix[:10], leads, scores)
    with pytest.raises(ValueError):
        hand.count(matrix, leads, scores[:10])
    with pytest.raises(ValueError):
        hand.count(matrix[:, :2], leads, scores)


def test_unseen_and_missing_are_one_bin_for_psi(hand):
    # The reference's "missing" holds training's rare categories too (they encode to
    # NaN), so PSI folds live unseen into missing; the counts keep them apart.
    reference, actual = hand.comparable("make", [6, 4, 2, 2, 1])
    assert reference.tolist() == [6, 4, 2, 3] and actual.tolist() == [6, 4, 2, 3]
    assert drift(hand, {"make": [6, 4, 2, 2, 1], SCORE: [8, 8, 0]}, min_leads=1)["make"] == 0.0
    reference, actual = hand.comparable("age", [1, 2, 3, 4])
    assert reference.tolist() == [3, 4, 5, 0] and actual.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        hand.comparable("make", [1, 2, 3])


def test_drift_waits_for_enough_leads(hand):
    few = {name: hand.reference(name) for name in hand.names}  # 16 leads
    assert drift(hand, few) == {}
    assert drift(hand, few, min_leads=17) == {}
    assert drift(hand, few, min_leads=16) == {name: 0.0 for name in hand.names}
    many = {name: hand.reference(name) * MIN_LEADS for name in hand.names}
    assert drift(hand, many) == {name: 0.0 for name in hand.names}
    shifted = {**many, "age": np.array([0, 0, 1, 0]) * 20 * MIN_LEADS}
    result = drift(hand, shifted)
    assert list(result) == list(hand.names)
    assert result["age"] > 1 and result["make"] == 0.0
    assert list(drift(hand, {SCORE: many[SCORE]})) == [SCORE]  # only what was counted
    assert drift(hand, {"age": many["age"]}) == {}  # no score counts: no leads
    with pytest.raises(KeyError):
        drift(hand, {**many, "colour": [1, 2]})


def test_a_manifest_without_a_histogram_is_refused():
    with pytest.raises(ValueError, match="job"):
        DriftBins.from_manifest(_manifest({k: v for k, v in HAND.items() if k != "job"}))
    wrong = {**HAND, "make": HAND["age"]}
    with pytest.raises(ValueError, match="make"):
        DriftBins.from_manifest(_manifest(wrong))
    with pytest.raises(ValueError, match="age"):
        DriftBins.from_manifest(_manifest({**HAND, "age": HAND["make"]}))


# ------------------------------------------------------- real model, real leads


@pytest.fixture(scope="module")
def auto(demo_config, synth_csv, tmp_path_factory, signing_key, keyring) -> LoadedModel:
    from engine.training.pipeline import train_vertical

    root = tmp_path_factory.mktemp("drift-models")
    report = train_vertical(
        demo_config, "auto", synth_csv("auto", 20_000, 11), "1.0.0", root, signing_key
    )
    return load_model(report.path, keyring)


@pytest.fixture(scope="module")
def auto_bins(auto) -> DriftBins:
    return DriftBins.from_manifest(auto.manifest)


def _json_leads(model: LoadedModel, rows: int, seed: int) -> list[dict[str, object]]:
    """Synthetic leads as a client sends them: numbers as numbers, no empty fields."""
    header, cells = generate(model.vertical, rows, seed)
    kinds = {f.name: f.kind for f in model.manifest.features}
    leads = []
    for row in cells:
        lead: dict[str, object] = {}
        for name, cell in zip(header, row, strict=True):
            if name in kinds and cell != "":
                lead[name] = float(cell) if kinds[name] == "numerical" else cell
        leads.append(lead)
    return leads


def _psi_of(model: LoadedModel, bins: DriftBins, leads: list[dict[str, object]], label: str):
    """Encode and score ``leads`` as a worker does, count them in flushes, return PSI."""
    matrix = np.empty((len(leads), model.encoder.num_features))
    for i, lead in enumerate(leads):
        model.encoder.encode_into(lead, matrix[i])
    scores = model.predictor.predict_matrix(matrix)
    counts = bins.zeros()
    for start in range(0, len(leads), 500):  # a worker's periodic flushes
        batch = slice(start, start + 500)
        for name, c in bins.count(matrix[batch], leads[batch], scores[batch]).items():
            counts[name] += c
    result = drift(bins, counts)
    print(f"\nPSI {label}: " + ", ".join(f"{n} {v:.4f}" for n, v in result.items()))
    return result, counts


@pytest.fixture(scope="module")
def baseline(auto) -> list[dict[str, object]]:
    return _json_leads(auto, LEADS, LIVE_SEED)


def test_manifest_reference_counts_are_the_bins_reference(auto, auto_bins):
    for name in auto_bins.names:
        histogram = auto.manifest.reference_histograms[name]
        reference = auto_bins.reference(name).tolist()
        if histogram.labels is not None:
            assert reference == [*histogram.counts, 0, histogram.missing]
        else:
            assert reference == [*histogram.counts, histogram.missing]
    assert auto_bins.names == (*(f.name for f in auto.manifest.features), SCORE)


def test_leads_like_the_training_data_keep_every_psi_under_0_05(auto, auto_bins, baseline):
    result, counts = _psi_of(auto, auto_bins, baseline, "like training")
    assert set(result) == set(auto_bins.names)
    assert max(result.values()) < 0.05, result
    # The synthetic long tail reaches the unseen bin (models too rare to be kept at
    # training, counted in the reference's missing): PSI folds it into missing.
    assert counts["vehicle_model"][-2] > 0
    unfolded = psi(auto_bins.reference("vehicle_model"), counts["vehicle_model"])
    assert unfolded > result["vehicle_model"]


def test_older_drivers_drift_on_age_and_the_score(auto, auto_bins, baseline):
    top = next(f.max for f in auto.manifest.features if f.name == "age")
    assert top is not None
    older = [{**lead, "age": min(float(lead["age"]) + 25, top)} for lead in baseline]
    result, _ = _psi_of(auto, auto_bins, older, "older drivers (+25 years)")
    _assert_shift(result, affected={"age"}, score_moves=True)


def test_a_new_vehicle_make_drifts_on_vehicle_make(auto, auto_bins, baseline):
    rng = np.random.default_rng(7)
    chosen = rng.random(len(baseline)) < 0.3
    newer = [
        {**lead, "vehicle_make": "Rivian"} if pick else lead
        for lead, pick in zip(baseline, chosen.tolist(), strict=True)
    ]
    result, counts = _psi_of(auto, auto_bins, newer, "new vehicle make (30 % Rivian)")
    assert counts["vehicle_make"][-2] >= chosen.sum()  # Rivian is counted as unseen
    # vehicle_make carries about 1 % of the model's gain: an input alarm, and the
    # score stays as quiet as the untouched features.
    assert auto.manifest.importance["vehicle_make"] < 0.05
    _assert_shift(result, affected={"vehicle_make"}, score_moves=False)
    assert result[SCORE] < 0.05, result


def test_a_missing_rate_jump_drifts_on_that_feature_and_the_score(auto, auto_bins, baseline):
    # usage_type is among the model's strongest features; its training missing rate is
    # 3 %. The score reacts to one feature going missing less than to a value shift
    # (LightGBM sends missing down a learned side): at 60 % missing its PSI is 0.09.
    assert auto.manifest.importance["usage_type"] > 0.1
    rng = np.random.default_rng(8)
    dropped = rng.random(len(baseline)) < 0.8
    thinner = [
        {k: v for k, v in lead.items() if k != "usage_type"} if drop else lead
        for lead, drop in zip(baseline, dropped.tolist(), strict=True)
    ]
    result, counts = _psi_of(auto, auto_bins, thinner, "usage_type dropped from 80 %")
    assert counts["usage_type"][-1] >= dropped.sum()
    _assert_shift(result, affected={"usage_type"}, score_moves=True)


def _assert_shift(result: dict[str, float], affected: set[str], score_moves: bool) -> None:
    for name in affected:
        assert result[name] > 0.1, (name, result)
    if score_moves:
        assert result[SCORE] > 0.1, result
    untouched = {n: v for n, v in result.items() if n not in affected and n != SCORE}
    assert untouched and max(untouched.values()) < 0.05, untouched
