"""Serving with the compiled tree kernel (issue 10, step 2), against the LightGBM C-API path.

A freshly trained version carries ``model.layout`` in its signed manifest and is served by
``TreeKernel``; the same version without the layout (as every version published before it
existed) is served by the LightGBM C-API predictor. Both must give bit-identical scores and
the same reasons for every holdout lead, one by one and in batches. A layout that was
tampered with, does not load, belongs to another model, or changed after verification is
refused like any corrupt artifact. Real trained models, real keys, no mocks.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.config import ModelConfig
from engine.errors import ArtifactRejected
from engine.inference.lgbm_capi import LightGBMError, LightGBMPredictor
from engine.inference.tree_kernel import KernelClosed, TreeKernel
from engine.inference.tree_layout import compile_model
from engine.scoring.model import LoadedModel, load_model
from engine.scoring.result import LeadFailure, ScoreResult
from engine.scoring.scorer import Scorer
from engine.store.layout import MODEL_LAYOUT_FILE, version_dir
from engine.store.manifest import decode_manifest
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey
from engine.store.verify import verify_version
from engine.training.pipeline import train_vertical

NOW = 1_764_000_000.0  # fixed clock: prices are reproducible


def bits(value: float) -> str:
    """Exact identity of a float (tells -0.0 from 0.0; NaN equal to itself)."""
    return value.hex() if not math.isnan(value) else "nan"


def republish(
    source: Path,
    root: Path,
    version: str,
    key: SigningKey,
    change: dict[str, bytes | None] | None = None,
) -> Path:
    """Publish a trusted-signed copy of ``source`` as ``auto`` ``version`` under ``root``.

    ``change`` replaces files (a value of None drops the file and its manifest entry).
    """
    manifest = decode_manifest((source / "manifest.json").read_bytes())
    files = {name: (source / name).read_bytes() for name in manifest.files}
    for name, data in (change or {}).items():
        if data is None:
            del files[name]
        else:
            files[name] = data
    return publish(
        root,
        "auto",
        version,
        files,
        lambda hashes: msgspec.structs.replace(manifest, version=version, files=hashes),
        key,
    )


@pytest.fixture(scope="module")
def auto(trained, model_root):
    report = trained("auto")
    return report, version_dir(model_root, "auto", "1.0.0")


@pytest.fixture(scope="module")
def served(auto, keyring, tmp_path_factory, signing_key):
    """(kernel-served model, C-API-served copy of the same version without the layout)."""
    _, path = auto
    legacy = republish(
        path, tmp_path_factory.mktemp("legacy"), "1.0.0", signing_key, {MODEL_LAYOUT_FILE: None}
    )
    kernel_model = load_model(path, keyring)
    capi_model = load_model(legacy, keyring)
    yield kernel_model, capi_model
    kernel_model.close()
    capi_model.close()


def scorer_for(config: ModelConfig, model: LoadedModel) -> Scorer:
    scorer = Scorer(config, clock=lambda: NOW)
    scorer.install(model)
    return scorer


def outputs(results: list[ScoreResult | LeadFailure] | list[ScoreResult]) -> list[Any]:
    """Scores (bit patterns) and reasons of results, for exact comparison."""
    found = []
    for result in results:
        assert isinstance(result, ScoreResult)
        found.append((bits(result.score), result.reasons))
    return found


def test_a_trained_version_carries_the_layout_and_is_served_by_the_kernel(auto, served):
    report, path = auto
    kernel_model, capi_model = served
    assert MODEL_LAYOUT_FILE in report.manifest.files
    layout = (path / MODEL_LAYOUT_FILE).read_bytes()
    assert report.manifest.files[MODEL_LAYOUT_FILE] == hashlib.sha256(layout).hexdigest()
    assert isinstance(kernel_model.predictor, TreeKernel)
    model_sha = hashlib.sha256((path / "model.txt").read_bytes()).digest()
    assert kernel_model.predictor.header.source_sha256 == model_sha
    # Without the layout: the C-API predictor both scores and explains.
    assert MODEL_LAYOUT_FILE not in capi_model.manifest.files
    assert isinstance(capi_model.predictor, LightGBMPredictor)


def test_a_kernel_version_is_scored_and_explained_without_loading_lightgbm(auto, key_dir):
    # In a fresh interpreter: load the version, score and explain; LightGBM's shared
    # library must never have been mapped (no booster, no OpenMP threads, no private trees).
    _, path = auto
    program = f"""
import sys
from pathlib import Path
from engine.scoring.model import load_model
from engine.store.signing import Keyring
model = load_model(Path({str(path)!r}), Keyring.load(Path({str(key_dir / "trusted")!r})))
row = [0.5] * model.predictor.num_features
model.predictor.predict_one(row)
import numpy as np
assert model.reasons(np.array(row), 3)
maps = Path("/proc/self/maps").read_text()
print("lib_lightgbm" in maps, "lightgbm" in sys.modules, type(model.predictor).__name__)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["False", "False", "TreeKernel"]


@pytest.mark.parametrize("explain", [False, True])
def test_kernel_scores_and_reasons_are_those_of_the_capi_path(demo_config, auto, served, explain):
    report, _ = auto
    kernel_model, capi_model = served
    leads = report.holdout_leads
    kernel = scorer_for(demo_config, kernel_model)
    capi = scorer_for(demo_config, capi_model)
    one_by_one = outputs([kernel.score("auto", lead, explain=explain) for lead in leads])
    batch = outputs(kernel.score_batch("auto", leads, explain=explain))
    assert one_by_one == batch
    assert one_by_one == outputs([capi.score("auto", lead, explain=explain) for lead in leads])
    assert batch == outputs(capi.score_batch("auto", leads, explain=explain))
    # And both are LightGBM's own Booster.predict, from training.
    assert [score for score, _ in batch] == [bits(s) for s in report.holdout_scores.tolist()]
    if explain:
        assert all(reasons for _, reasons in batch)


def test_closing_the_model_unmaps_the_layout_or_frees_the_booster(
    auto, keyring, signing_key, tmp_path
):
    _, path = auto
    model = load_model(path, keyring)
    kernel = model.predictor
    assert isinstance(kernel, TreeKernel)
    layout = str(path / MODEL_LAYOUT_FILE)
    mapped = Path("/proc/self/maps").read_text().count(layout)
    model.close()
    assert Path("/proc/self/maps").read_text().count(layout) == mapped - 1
    with pytest.raises(KernelClosed):
        kernel.predict_row()
    with pytest.raises(KernelClosed):
        model.reasons(np.zeros(kernel.num_features), 3)
    model.close()  # twice is harmless
    legacy_path = republish(path, tmp_path, "1.0.1", signing_key, {MODEL_LAYOUT_FILE: None})
    legacy = load_model(legacy_path, keyring)
    legacy.close()
    with pytest.raises(LightGBMError):
        legacy.predictor.predict_row()


def test_a_tampered_layout_is_refused_by_verification(auto, keyring, signing_key, tmp_path):
    _, path = auto
    copy = republish(path, tmp_path, "1.0.1", signing_key)
    layout = copy / MODEL_LAYOUT_FILE
    data = bytearray(layout.read_bytes())
    data[len(data) // 2] ^= 0x01
    layout.chmod(0o644)
    layout.write_bytes(bytes(data))
    with pytest.raises(ArtifactRejected) as refused:
        load_model(copy, keyring)
    assert refused.value.check == "hash" and MODEL_LAYOUT_FILE in refused.value.detail


def test_a_signed_layout_that_does_not_load_is_refused_as_model(
    auto, keyring, signing_key, tmp_path
):
    _, path = auto
    copy = republish(path, tmp_path, "1.0.1", signing_key, {MODEL_LAYOUT_FILE: b"garbage" * 40})
    with pytest.raises(ArtifactRejected) as refused:
        load_model(copy, keyring)
    assert refused.value.check == "model" and "does not load" in refused.value.detail


def other_model(model_text: str) -> str:
    """The same model but for the last digit of the first leaf value (same length)."""
    start = model_text.index("\nleaf_value=") + len("\nleaf_value=")
    end = start + model_text[start:].index(" ") - 1
    digit = model_text[end]
    assert digit.isdigit()
    return model_text[:end] + str((int(digit) + 1) % 10) + model_text[end + 1 :]


def test_a_layout_of_another_model_is_refused(auto, keyring, signing_key, tmp_path):
    _, path = auto
    # A genuine layout with the right width, signed, but not compiled from this model.txt.
    altered = other_model((path / "model.txt").read_text())
    copy = republish(
        path, tmp_path, "1.0.1", signing_key, {MODEL_LAYOUT_FILE: compile_model(altered)}
    )
    with pytest.raises(ArtifactRejected) as refused:
        load_model(copy, keyring)
    assert refused.value.check == "model" and "not compiled from" in refused.value.detail


def test_a_layout_swapped_after_verification_changes_nothing_served(
    demo_config, auto, keyring, signing_key, tmp_path, served
):
    # Verification mapped the file and hashed the mapping: the kernel scores those very
    # pages, so a file put in its place afterwards is never read.
    report, path = auto
    copy = republish(path, tmp_path, "1.0.1", signing_key)
    verified = verify_version(copy, keyring)
    assert MODEL_LAYOUT_FILE in verified.mapped and MODEL_LAYOUT_FILE not in verified.files
    layout = copy / MODEL_LAYOUT_FILE
    altered = compile_model(other_model((path / "model.txt").read_text()))
    layout.unlink()
    layout.write_bytes(altered)
    model = LoadedModel.from_verified(verified)
    try:
        scores = outputs(scorer_for(demo_config, model).score_batch("auto", report.holdout_leads))
        assert [score for score, _ in scores] == [bits(s) for s in report.holdout_scores.tolist()]
    finally:
        model.close()


def test_a_model_the_layout_refuses_is_published_without_it_and_served_by_capi(
    demo_config, synth_csv, tmp_path, signing_key, keyring: Keyring
):
    vertical = demo_config.verticals["auto"]
    training = msgspec.structs.replace(
        vertical.training, params={**vertical.training.params, "linear_tree": True}
    )
    config = msgspec.structs.replace(
        demo_config,
        verticals={
            **demo_config.verticals,
            "auto": msgspec.structs.replace(vertical, training=training),
        },
    )
    lines: list[str] = []
    report = train_vertical(
        config, "auto", synth_csv("auto", 1500), "1.0.0", tmp_path, signing_key, log=lines.append
    )
    assert MODEL_LAYOUT_FILE not in report.manifest.files
    assert not (report.path / MODEL_LAYOUT_FILE).exists()
    assert any("no tree layout" in line and "C-API" in line for line in lines)
    model = load_model(report.path, keyring)
    try:
        assert isinstance(model.predictor, LightGBMPredictor)
        scores = scorer_for(demo_config, model).score_batch("auto", report.holdout_leads)
        expected = [bits(s) for s in report.holdout_scores.tolist()]
        assert [score for score, _ in outputs(scores)] == expected
    finally:
        model.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({MODEL_LAYOUT_FILE: b""}, "model.layout is empty"),
        ({"model.txt": b""}, "model.layout was not compiled from this version's model.txt"),
        ({"model.txt": b"", MODEL_LAYOUT_FILE: None}, "model.txt is empty"),
    ],
)
def test_an_empty_signed_model_file_is_refused_as_model(
    auto, keyring, signing_key, tmp_path, change, message
):
    # An empty file cannot be mapped: verification hands it over as b"" and loading refuses.
    _, path = auto
    copy = republish(path, tmp_path, "1.0.1", signing_key, change)
    verified = verify_version(copy, keyring)
    for name, data in change.items():
        if data is not None:
            assert verified.files[name] == b"" and name not in verified.mapped
    with pytest.raises(ArtifactRejected) as refused:
        LoadedModel.from_verified(verified)
    assert refused.value.check == "model" and message in refused.value.detail
