"""Isotonic score calibration: its shape, its effect, and its life in the signed manifest."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, log_loss

from engine.config import feature_specs
from engine.monitoring.calibration import MAX_KNOTS, Calibration, fit_calibration
from engine.scoring.model import load_model
from engine.store.layout import version_dir
from engine.store.manifest import decode_manifest, encode_manifest
from engine.store.verify import verify_version
from engine.training.csvdata import read_training_csv
from engine.training.evaluation import expected_calibration_error
from engine.training.pipeline import train_vertical
from engine.training.synth import write_csv


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def auto(trained):
    return trained("auto")


def test_trained_calibration_is_monotone_bounded_and_small(auto):
    calibration = auto.manifest.calibration
    assert calibration is not None and calibration.method == "isotonic"
    x, y = np.array(calibration.x), np.array(calibration.y)
    assert 2 <= len(x) == len(y) <= MAX_KNOTS
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    assert x[0] >= 0 and x[-1] <= 1 and y[0] >= 0 and y[-1] <= 1
    grid = calibration.apply(np.linspace(-0.5, 1.5, 2001))
    assert np.all(np.diff(grid) >= 0) and grid.min() >= 0 and grid.max() <= 1


def test_calibration_does_not_worsen_the_holdout(auto):
    raw = auto.holdout_scores
    labels = auto.holdout_labels
    calibrated = auto.manifest.calibration.apply(raw)
    # Isotonic regression minimises every proper scoring rule among monotone maps on the
    # data it was fitted to, and the identity is one such map.
    assert brier_score_loss(labels, calibrated) <= brier_score_loss(labels, raw)
    eps = 1e-15
    raw_loss = log_loss(labels, np.clip(raw, eps, 1 - eps))
    assert log_loss(labels, np.clip(calibrated, eps, 1 - eps)) <= raw_loss
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(raw, labels)


@pytest.fixture(scope="module")
def weighted(demo_config, synth_csv, signing_key, keyring, tmp_path_factory):
    """An auto model trained with ``scale_pos_weight``: its raw scores overstate conversion.

    Class weights are a common training choice for rare positives and the plainest case
    of a good ranker whose raw scores are not probabilities. Returns the training report,
    and raw scores and outcomes of 5,000 fresh leads (another seed).
    """
    vertical = demo_config.verticals["auto"]
    training = msgspec.structs.replace(vertical.training, params={"scale_pos_weight": 4.0})
    config = msgspec.structs.replace(
        demo_config,
        verticals={
            **demo_config.verticals,
            "auto": msgspec.structs.replace(vertical, training=training),
        },
    )
    root = tmp_path_factory.mktemp("weighted")
    report = train_vertical(config, "auto", synth_csv("auto"), "1.0.0", root, signing_key)
    path = root / "fresh.csv"
    write_csv("auto", 5000, 77, path)
    data = read_training_csv(path, feature_specs(vertical), vertical.training)
    model = load_model(report.path, keyring)
    matrix = np.empty((len(data.leads), model.encoder.num_features))
    for i, lead in enumerate(data.leads):
        model.encoder.encode_into(lead, matrix[i])
    raw = model.predictor.predict_matrix(matrix)
    model.close()
    return report, raw, data.labels


def test_calibration_corrects_weighted_scores_on_fresh_leads(weighted):
    """On leads neither the model nor the calibration saw, calibrated scores are right."""
    report, raw, labels = weighted
    calibrated = report.manifest.calibration.apply(raw)
    raw_ece = expected_calibration_error(raw, labels)
    calibrated_ece = expected_calibration_error(calibrated, labels)
    print(f"fresh leads, weighted model: ECE raw {raw_ece:.4f}, calibrated {calibrated_ece:.4f}")
    assert raw_ece > 0.1  # the weights inflate raw scores: the case under test
    assert calibrated_ece < 0.04
    assert brier_score_loss(labels, calibrated) < brier_score_loss(labels, raw)
    # What estimated performance gets out of it: the expected conversion rate.
    observed = float(labels.mean())
    assert abs(float(calibrated.mean()) - observed) < 0.03
    assert float(raw.mean()) - observed > 0.1


def test_fit_recovers_a_known_miscalibration():
    rng = np.random.default_rng(5)
    z = rng.normal(-0.5, 1.5, 40_000)
    truth = sigmoid(z)
    scores = sigmoid(z / 2.5)  # squeezed toward 0.5, as an under-fitted booster's are
    labels = rng.random(len(z)) < truth
    calibration = fit_calibration(scores, labels)
    grid = np.quantile(scores, np.linspace(0.05, 0.95, 19))
    expected = sigmoid(2.5 * np.log(grid / (1 - grid)))
    assert np.max(np.abs(calibration.apply(grid) - expected)) < 0.05
    # The raw scores are far off there; the test would fail without the calibration.
    assert np.max(np.abs(grid - expected)) > 0.15


def test_many_knots_are_thinned_without_losing_the_curve():
    rng = np.random.default_rng(9)
    scores = rng.random(200_000)
    labels = rng.random(len(scores)) < scores**2
    full = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, labels)
    assert len(full.X_thresholds_) > MAX_KNOTS  # the case under test
    calibration = fit_calibration(scores, labels)
    assert len(calibration.x) <= MAX_KNOTS
    assert calibration.x[0] == full.X_thresholds_[0]
    assert calibration.x[-1] == full.X_thresholds_[-1]
    assert np.all(np.diff(calibration.y) >= 0)
    # Thinning costs nothing measurable against the true curve: the isotonic fit's own
    # noise is far larger than what dropping knots between close neighbours changes.
    grid = np.linspace(0, 1, 10_001)
    thinned_error = np.abs(calibration.apply(grid) - grid**2).mean()
    full_error = np.abs(full.predict(grid) - grid**2).mean()
    assert thinned_error < full_error + 0.001
    assert np.max(np.abs(calibration.apply(grid) - full.predict(grid))) < 0.05


def test_apply_clips_outside_the_knots_and_keeps_nan():
    calibration = Calibration(method="isotonic", x=[0.2, 0.4, 0.8], y=[0.1, 0.3, 0.9])
    out = calibration.apply([0.0, 0.2, 0.3, 0.6, 0.8, 1.0, math.nan])
    assert out[:6] == pytest.approx([0.1, 0.1, 0.2, 0.6, 0.9, 0.9])
    assert math.isnan(out[6])
    assert out.dtype == np.float64
    assert calibration.apply(0.5).shape == ()


def test_collinear_knots_are_dropped():
    # One positive in the middle block: isotonic gives a step; the flat runs' inner
    # points are implied by their ends.
    scores = np.linspace(0, 1, 9)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    calibration = fit_calibration(scores, labels)
    assert calibration.x == [0.0, 0.375, 0.5, 1.0]
    assert calibration.y == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [1], "2 scores but 1 labels"),
        ([], [], "without scores"),
        ([0.1, math.nan], [0, 1], "finite"),
    ],
)
def test_fit_rejects_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        fit_calibration(scores, labels)


def test_calibration_survives_the_signed_manifest(auto, model_root, keyring):
    verified = verify_version(version_dir(model_root, "auto", "1.0.0"), keyring)
    assert verified.manifest.calibration == auto.manifest.calibration
    again = decode_manifest(encode_manifest(auto.manifest))
    assert again == auto.manifest
    assert isinstance(again.calibration, Calibration)


def test_manifests_without_calibration_still_load(auto):
    document = json.loads(encode_manifest(auto.manifest))
    del document["calibration"]
    old = decode_manifest(json.dumps(document).encode())
    assert old.calibration is None
    document["calibration"] = None
    assert decode_manifest(json.dumps(document).encode()).calibration is None


def test_a_malformed_calibration_is_rejected(auto):
    document = json.loads(encode_manifest(auto.manifest))
    document["calibration"] = {"method": "magic", "x": [0.0], "y": [0.0]}
    with pytest.raises(msgspec.ValidationError, match="calibration"):
        decode_manifest(json.dumps(document).encode())
    document["calibration"] = {"method": "isotonic", "x": [0.0], "y": [0.0], "z": 1}
    with pytest.raises(msgspec.ValidationError, match="z"):
        decode_manifest(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([], [], "at least one"),
        ([0.1, 0.2], [0.5], "as many"),
        ([0.2, 0.2], [0.1, 0.3], "increase strictly"),
        ([0.1, 0.2], [0.4, 0.3], "not decrease"),
        ([0.1, 0.2], [0.4, 1.3], r"\[0, 1\]"),
        ([0.1, math.inf], [0.4, 0.5], "finite"),
    ],
)
def test_malformed_knots_are_rejected_when_decoded(x, y, message):
    # msgspec.convert validates like the manifest decoder, and keeps inf (JSON cannot).
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({"method": "isotonic", "x": x, "y": y}, Calibration)
    with pytest.raises(ValueError, match=message):
        Calibration(method="isotonic", x=x, y=y)
