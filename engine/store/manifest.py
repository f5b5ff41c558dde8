"""The manifest of a model version: what it is, how it was made, and how good it is.

On disk, ``<MODEL_PATH>/<vertical>/v<X.Y.Z>/manifest.json`` is UTF-8 JSON with sorted
keys, written once by training and signed (``manifest.sig``). ``files`` maps every other
file in the version directory (relative name, ``/`` separated) to its SHA-256 hex digest,
so the signature over the manifest covers every byte the service will load.

Fields (``format`` 1):

- ``vertical``, ``version``, ``created_at`` (ISO 8601 UTC), ``format``.
- ``features``: the model's input columns in order (name, kind, bounds, required).
- ``files``: name -> sha256 of ``model.txt`` and every ``encoders.*`` table.
- ``metrics``: holdout ROC AUC, precision and recall at ``threshold``, Brier score,
  log loss, expected calibration error, counts; the training run's best iteration.
- ``reliability``: score bands on the holdout (see ``engine.scoring.confidence``).
- ``calibration``: isotonic map from raw score to probability of conversion, fitted on
  the holdout (see ``engine.monitoring.calibration``); used by estimated performance.
  Optional: ``null`` or absent in manifests written before it existed, which load as
  ``None`` (estimated performance then reads raw scores as probabilities).
- ``importance``: normalised gain importance per feature (sums to 1).
- ``reference_histograms``: per feature and for the score, for drift (PSI).
- ``data_fingerprint``: sha256, size and row counts of the training CSV.
- ``training``: the LightGBM parameters and split sizes used.
- ``libraries``: versions of python, lightgbm, numpy, scikit-learn, ml-service.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from engine.monitoring.calibration import Calibration

MANIFEST_FORMAT = 1


class ManifestFeature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One input column of the model."""

    name: str
    kind: Literal["numerical", "categorical", "text"]
    index: int
    required: bool = False
    min: float | None = None
    max: float | None = None


class Metrics(msgspec.Struct, frozen=True):
    """Holdout metrics of a trained model."""

    auc: float
    precision: float
    recall: float
    threshold: float
    brier: float
    log_loss: float
    ece: float
    accepted_rate: float
    n_train: int
    n_validation: int
    n_holdout: int
    positive_rate: float
    best_iteration: int


class ReliabilityBand(msgspec.Struct, frozen=True):
    """Holdout statistics of the leads whose score falls in ``[lower, upper)``."""

    lower: float
    upper: float
    count: int
    mean_score: float
    observed_rate: float
    reliability: float


class Histogram(msgspec.Struct, frozen=True):
    """A reference distribution for drift checks.

    For numeric values ``edges`` holds the ``k - 1`` inner bin edges of ``k`` bins
    (bin ``i`` is ``edges[i-1] <= x < edges[i]``); for categorical values ``labels``
    names the bins and the last label is ``__other__``. ``missing`` counts absent or
    unknown values. Counts are over the training split.
    """

    counts: list[int]
    missing: int
    edges: list[float] | None = None
    labels: list[str] | None = None


class DataFingerprint(msgspec.Struct, frozen=True):
    """Identity of the training data."""

    sha256: str
    bytes: int
    rows: int
    positives: int
    source: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model version's manifest (see the module docstring for the layout)."""

    vertical: str
    version: str
    created_at: str
    features: list[ManifestFeature]
    files: dict[str, str]
    metrics: Metrics
    reliability: list[ReliabilityBand]
    importance: dict[str, float]
    reference_histograms: dict[str, Histogram]
    data_fingerprint: DataFingerprint
    training: dict[str, Any]
    libraries: dict[str, str]
    format: int = MANIFEST_FORMAT
    # Optional so manifests signed before calibration existed still verify and load.
    calibration: Calibration | None = None


_ENCODER = msgspec.json.Encoder(order="sorted")
_DECODER = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    """Serialise a manifest deterministically (sorted keys, trailing newline)."""
    return msgspec.json.format(_ENCODER.encode(manifest), indent=2) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """Parse manifest bytes.

    Raises:
        msgspec.DecodeError: Not JSON, or not a format-1 manifest (the message names
            the field).
    """
    manifest = _DECODER.decode(data)
    if manifest.format != MANIFEST_FORMAT:
        raise msgspec.ValidationError(f"unsupported manifest format {manifest.format}")
    return manifest
