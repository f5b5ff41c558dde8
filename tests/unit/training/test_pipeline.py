from pathlib import Path

import pytest

from engine.errors import StoreError, TrainingError
from engine.store import pointer
from engine.store.layout import list_versions, version_dir
from engine.store.verify import verify_version
from engine.training.pipeline import train_vertical


def no_leftovers(root: Path, vertical: str) -> bool:
    folder = root / vertical
    return not folder.exists() or not any(p.name.startswith(".tmp") for p in folder.iterdir())


def test_trained_version_is_signed_complete_and_active(trained, model_root, keyring):
    report = trained("auto")
    manifest = report.manifest
    assert pointer.read_current(model_root, "auto") == "1.0.0"
    verified = verify_version(version_dir(model_root, "auto", "1.0.0"), keyring)
    assert verified.manifest == manifest
    assert set(manifest.files) == {
        "model.txt",
        "model.layout",
        "report.html",
        "encoders.vehicle_make.values.npy",
        "encoders.vehicle_model.values.npy",
        "encoders.usage_type.values.npy",
        "encoders.occupation.tokens.npy",
        "encoders.occupation.weights.npy",
        "encoders.location.tokens.npy",
        "encoders.location.weights.npy",
    }
    metrics = manifest.metrics
    assert metrics.auc > 0.7 and 0 <= metrics.precision <= 1 and 0 <= metrics.recall <= 1
    assert metrics.n_train + metrics.n_validation + metrics.n_holdout == 4000
    assert metrics.threshold == 0.65
    assert sum(manifest.importance.values()) == pytest.approx(1.0)
    assert set(manifest.reference_histograms) == {f.name for f in manifest.features} | {"__score__"}
    hist = manifest.reference_histograms["age"]
    assert sum(hist.counts) + hist.missing == metrics.n_train
    assert manifest.data_fingerprint.rows == 4000
    assert {"python", "lightgbm", "numpy", "scikit-learn"} <= set(manifest.libraries)
    assert len(report.holdout_leads) == metrics.n_holdout == len(report.holdout_scores)


def test_training_is_reproducible(demo_config, synth_csv, tmp_path, signing_key):
    first = train_vertical(
        demo_config, "life", synth_csv("life", 1500), "1.0.0", tmp_path, signing_key
    )
    second = train_vertical(
        demo_config, "life", synth_csv("life", 1500), "1.0.1", tmp_path, signing_key
    )
    assert (first.path / "model.txt").read_bytes() == (second.path / "model.txt").read_bytes()
    assert first.holdout_scores.tolist() == second.holdout_scores.tolist()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda lines: [lines[0].replace("occupation", "job"), *lines[1:]], "occupation not found"),
        (lambda lines: [lines[0]], "no data rows"),
        (lambda lines: [line[: line.rindex(",")] for line in lines], "converted \\(the target\\)"),
        (
            lambda lines: [lines[0], lines[1].replace(lines[1].split(",")[0], "abc", 1)],
            "column 'age' has 'abc'",
        ),
        (
            lambda lines: [lines[0], "150" + lines[1][lines[1].index(",") :], *lines[2:]],
            "line 2: column 'age' must be at most 100",
        ),
        (
            lambda lines: [lines[0]] + [line[: line.rindex(",")] + ",0" for line in lines[1:]],
            "training needs both classes",
        ),
        (lambda lines: lines[:40], "too few to train"),
    ],
)
def test_bad_input_stops_and_leaves_nothing(
    demo_config, synth_csv, tmp_path, signing_key, mutate, message
):
    lines = synth_csv("auto", 500).read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(mutate(lines)) + "\n")
    root = tmp_path / "models"
    with pytest.raises(TrainingError, match=message):
        train_vertical(demo_config, "auto", bad, "1.0.0", root, signing_key)
    assert list_versions(root, "auto") == [] and no_leftovers(root, "auto")


def test_refuses_existing_version_bad_version_and_unknown_vertical(
    demo_config, synth_csv, trained, model_root, signing_key
):
    trained("auto")
    with pytest.raises(StoreError, match="already exists"):
        train_vertical(demo_config, "auto", synth_csv("auto"), "1.0.0", model_root, signing_key)
    with pytest.raises(TrainingError, match=r"1\.0"):
        train_vertical(demo_config, "auto", synth_csv("auto"), "1.0", model_root, signing_key)
    with pytest.raises(TrainingError, match="unknown vertical 'boat'"):
        train_vertical(demo_config, "boat", synth_csv("auto"), "1.0.0", model_root, signing_key)
    assert no_leftovers(model_root, "auto")
