"""Training a vertical's model from CSV and publishing it as a signed version.

Steps: parse the CSV into JSON-typed leads (``csvdata``); split stratified into train,
validation and holdout; fit encoder tables on the train split only; encode every row
with the serving encoder (``LeadEncoder``); replace the train split's text values with
out-of-fold values (their tables never saw the row's own label, so the model cannot
learn a leak it would not have at serving); fit LightGBM with early stopping on the
validation split; reload the saved model text and score the holdout with LightGBM's
own ``Booster.predict``; compute metrics, reliability bands, importance and reference
histograms; fit the score calibration on the holdout (for estimated performance);
render the model report (``report.html``: curves, calibration, importance); compile the
tree layout the serving kernel maps (``model.layout``, see below); publish atomically and
sign. Nothing is written unless every step passes.

The tree layout is optional in a version: a model the layout refuses (``UnsupportedModel``:
say, linear trees) is published without it and served by the LightGBM C-API path, and so
is one whose kernel scores would differ from ``Booster.predict`` on the holdout by a single
bit (a kernel bug must cost speed, never a mis-scored lead). The training log says which.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from engine.config import FeatureSpec, ModelConfig, feature_specs
from engine.errors import LeadError, StoreError, TrainingError
from engine.features.encoder import LeadEncoder, text_value
from engine.features.tables import EncoderTables, fit_categories, fit_token_weights
from engine.inference.tree_kernel import TreeKernel
from engine.inference.tree_layout import UnsupportedModel, compile_model
from engine.monitoring.calibration import fit_calibration
from engine.reports.model_report import inputs_from_manifest, render_model_report
from engine.scoring.confidence import fit_reliability
from engine.store.layout import (
    MODEL_FILE,
    MODEL_LAYOUT_FILE,
    REPORT_FILE,
    parse_version,
    version_dir,
)
from engine.store.manifest import DataFingerprint, Manifest, ManifestFeature, Metrics
from engine.store.pointer import activate as activate_version
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey
from engine.training.csvdata import TrainingData, read_training_csv
from engine.training.evaluation import holdout_metrics, reference_histograms

OUT_OF_FOLD_SPLITS = 5
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "min_data_per_group": 50,
    # One thread: OpenMP threads spin-wait and slow to a crawl when the machine is
    # oversubscribed (tests, a serving worker beside the trainer). Raise it through
    # the vertical's training.params for large data sets on a quiet machine.
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


class TrainingReport(msgspec.Struct):
    """What a training run produced.

    Attributes:
        path: The published version directory.
        manifest: Its manifest.
        holdout_leads: The holdout rows as JSON-typed leads.
        holdout_scores: LightGBM's own scores of those rows from the published model.
        holdout_labels: Their outcomes.
    """

    path: Path
    manifest: Manifest
    holdout_leads: list[dict[str, Any]]
    holdout_scores: npt.NDArray[np.float64]
    holdout_labels: npt.NDArray[np.int8]


def train_vertical(
    config: ModelConfig,
    vertical: str,
    data_path: Path,
    version: str,
    model_root: Path,
    signing_key: SigningKey,
    *,
    activate_with: Keyring | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> TrainingReport:
    """Train, evaluate, sign and publish one version of a vertical's model.

    Args:
        config: The model configuration.
        vertical: Which vertical to train.
        data_path: The training CSV.
        version: The new version (``X.Y.Z``); it must not exist yet.
        model_root: ``MODEL_PATH``.
        signing_key: Signs the manifest.
        activate_with: When given, activate the new version (verified with this keyring).
        log: Receives one line per step.

    Raises:
        TrainingError: The input is unusable; nothing was published.
        StoreError: The version exists or cannot be written.
    """
    if vertical not in config.verticals:
        raise TrainingError(
            f"unknown vertical {vertical!r}; configured: {', '.join(config.verticals)}"
        )
    try:
        parse_version(version)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    if version_dir(model_root, vertical, version).exists():
        raise StoreError(f"{vertical} v{version} already exists; versions are immutable")
    vconfig = config.verticals[vertical]
    specs = feature_specs(vconfig)
    training = vconfig.training
    data = read_training_csv(data_path, specs, training)
    labels = data.labels
    log(f"read {len(labels)} rows from {data.source}, {int(labels.sum())} positive")

    train_idx, valid_idx, hold_idx = _split(
        labels, training.validation_fraction, training.holdout_fraction, training.seed
    )
    tables = _fit_tables(specs, data, train_idx)
    encoder = LeadEncoder(specs, tables, field_prefix="")
    matrix = _encode(encoder, data)
    # Drift (PSI) compares live leads with the training split as serving encodes it;
    # the out-of-fold text values written next are for fitting only.
    serving_train = matrix[train_idx]  # a copy (fancy indexing)
    _out_of_fold_text(specs, data, train_idx, matrix, training.seed)

    import lightgbm  # training only: the service never imports the Python package

    params = {**DEFAULT_PARAMS, "seed": training.seed, **training.params}
    categorical = [s.index for s in specs if s.kind == "categorical"]
    names = [s.name for s in specs]
    train_set = lightgbm.Dataset(
        matrix[train_idx],
        labels[train_idx],
        feature_name=names,
        categorical_feature=categorical,
        free_raw_data=False,
    )
    valid_set = lightgbm.Dataset(matrix[valid_idx], labels[valid_idx], reference=train_set)
    booster = lightgbm.train(
        params,
        train_set,
        num_boost_round=training.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lightgbm.early_stopping(training.early_stopping_rounds, verbose=False)],
    )
    model_text = booster.model_to_string()
    published_model = lightgbm.Booster(model_str=model_text)
    holdout_scores = np.asarray(published_model.predict(matrix[hold_idx]), dtype=np.float64)
    best_iteration = int(booster.best_iteration or booster.current_iteration())
    log(f"trained {best_iteration} trees (early stopping on validation AUC)")

    threshold = config.threshold(vertical)
    scores = holdout_metrics(holdout_scores, labels[hold_idx], threshold)
    gain = np.asarray(published_model.feature_importance(importance_type="gain"), dtype=float)
    importance = {
        n: float(g / gain.sum()) if gain.sum() > 0 else 1 / len(names)
        for n, g in zip(names, gain, strict=True)
    }
    metrics = Metrics(
        threshold=threshold,
        n_train=len(train_idx),
        n_validation=len(valid_idx),
        n_holdout=len(hold_idx),
        positive_rate=float(labels.mean()),
        best_iteration=best_iteration,
        **scores,
    )
    log(
        f"holdout AUC {metrics.auc:.4f}, precision {metrics.precision:.3f} and recall "
        f"{metrics.recall:.3f} at {threshold}"
    )
    # The holdout is the only split the model neither fitted nor early-stopped on, so
    # its scores show how raw scores relate to conversion rates on unseen leads.
    calibration = fit_calibration(holdout_scores, labels[hold_idx])
    log(f"calibrated scores on the holdout ({len(calibration.x)} isotonic knots)")

    created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    reliability = fit_reliability(holdout_scores, labels[hold_idx])
    references = reference_histograms(specs, serving_train, tables.categories, holdout_scores)
    built: list[Manifest] = []

    def build_manifest(hashes: dict[str, str]) -> Manifest:
        built.append(
            Manifest(
                vertical=vertical,
                version=version,
                created_at=created_at,
                features=[
                    ManifestFeature(s.name, s.kind, s.index, s.required, s.min, s.max)
                    for s in specs
                ],
                files=hashes,
                metrics=metrics,
                reliability=reliability,
                importance=importance,
                reference_histograms=references,
                data_fingerprint=DataFingerprint(
                    sha256=data.sha256,
                    bytes=data.size,
                    rows=len(labels),
                    positives=int(labels.sum()),
                    source=data.source,
                ),
                training={
                    "params": params,
                    "num_boost_round": training.num_boost_round,
                    "early_stopping_rounds": training.early_stopping_rounds,
                    "num_trees": published_model.num_trees(),
                    "out_of_fold_splits": OUT_OF_FOLD_SPLITS,
                },
                libraries=_library_versions(),
                calibration=calibration,
            )
        )
        return built[-1]

    # The report is one of the version's files, so its hash is in the signed manifest;
    # it shows everything else of the manifest (the same one, but for the file hashes).
    report = render_model_report(
        inputs_from_manifest(
            build_manifest({}), holdout_scores, labels[hold_idx], calibration.x, calibration.y
        )
    )
    log(f"wrote the model report ({len(report) // 1024} KiB)")
    files = {
        MODEL_FILE: model_text.encode("utf-8"),
        **tables.to_files(),
        REPORT_FILE: report,
    }
    layout = _checked_layout(model_text, matrix[hold_idx], holdout_scores, log)
    if layout is not None:
        files[MODEL_LAYOUT_FILE] = layout
    path = publish(model_root, vertical, version, files, build_manifest, signing_key)
    log(f"published {path}")
    manifest = built[-1]
    if activate_with is not None:
        activate_version(model_root, vertical, version, activate_with)
        log(f"activated {vertical} v{version}")
    return TrainingReport(
        path=path,
        manifest=manifest,
        holdout_leads=[data.leads[i] for i in hold_idx],
        holdout_scores=holdout_scores,
        holdout_labels=labels[hold_idx],
    )


def _checked_layout(
    model_text: str,
    holdout: npt.NDArray[np.float64],
    expected: npt.NDArray[np.float64],
    log: Callable[[str], None],
) -> bytes | None:
    """Compile the tree layout; None (C-API serving) if refused or not bit-identical."""
    try:
        layout = compile_model(model_text)
    except UnsupportedModel as exc:
        log(f"no tree layout ({exc}): this version will be served by the LightGBM C-API path")
        return None
    with TreeKernel.from_bytes(layout) as kernel:
        scores = kernel.predict_matrix(holdout)
    # Compare bit patterns: exact equality that also holds for NaN and tells -0.0 from 0.0.
    if scores.view(np.uint64).tolist() != expected.view(np.uint64).tolist():
        log(
            "warning: the tree kernel's holdout scores differ from LightGBM's; no tree "
            "layout: this version will be served by the LightGBM C-API path"
        )
        return None
    log(f"compiled the tree layout ({len(layout) // 1024} KiB), bit-identical on the holdout")
    return layout


def _split(
    labels: npt.NDArray[np.int8], valid_fraction: float, hold_fraction: float, seed: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    from sklearn.model_selection import train_test_split

    indexes = np.arange(len(labels))
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    if len(labels) < 50 or minority < 6:
        raise TrainingError(
            f"{len(labels)} rows with {minority} in the smaller class are too few to train "
            "and evaluate (need at least 50 rows and 6 of each class)"
        )
    rest, hold = train_test_split(
        indexes, test_size=hold_fraction, stratify=labels, random_state=seed
    )
    train, valid = train_test_split(
        rest,
        test_size=valid_fraction / (1 - hold_fraction),
        stratify=labels[rest],
        random_state=seed,
    )
    return np.sort(train), np.sort(valid), np.sort(hold)


def _fit_tables(
    specs: tuple[FeatureSpec, ...], data: TrainingData, rows: npt.NDArray[np.intp]
) -> EncoderTables:
    categories: dict[str, list[str]] = {}
    token_weights: dict[str, dict[str, float]] = {}
    for spec in specs:
        values = [data.leads[i][spec.name] for i in rows]
        if spec.kind == "categorical":
            categories[spec.name] = fit_categories(values, spec.min_count)
        elif spec.kind == "text":
            token_weights[spec.name] = fit_token_weights(
                values, data.labels[rows], spec.min_count, spec.smoothing
            )
    return EncoderTables(categories, token_weights)


def _encode(encoder: LeadEncoder, data: TrainingData) -> npt.NDArray[np.float64]:
    matrix = np.empty((len(data.leads), encoder.num_features), dtype=np.float64)
    for i, lead in enumerate(data.leads):
        try:
            encoder.encode_into(lead, matrix[i])
        except LeadError as exc:
            raise TrainingError(
                f"{data.source} line {data.lines[i]}: column {exc.field!r} {exc.reason}"
            ) from None
    return matrix


def _out_of_fold_text(
    specs: tuple[FeatureSpec, ...],
    data: TrainingData,
    train_idx: npt.NDArray[np.intp],
    matrix: npt.NDArray[np.float64],
    seed: int,
) -> None:
    from sklearn.model_selection import StratifiedKFold

    text_specs = [s for s in specs if s.kind == "text"]
    if not text_specs:
        return
    folds = StratifiedKFold(OUT_OF_FOLD_SPLITS, shuffle=True, random_state=seed)
    train_labels = data.labels[train_idx]
    for fit_part, apply_part in folds.split(train_idx, train_labels):
        fit_rows, apply_rows = train_idx[fit_part], train_idx[apply_part]
        for spec in text_specs:
            weights = fit_token_weights(
                [data.leads[i][spec.name] for i in fit_rows],
                data.labels[fit_rows],
                spec.min_count,
                spec.smoothing,
            )
            for i in apply_rows:
                text = data.leads[i][spec.name]
                matrix[i, spec.index] = np.nan if text is None else text_value(text, weights)


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("lightgbm", "numpy", "scikit-learn", "ml-service"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions
