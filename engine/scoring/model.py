"""A model version loaded for serving: encoder, predictor and reliability, all verified.

A ``LoadedModel`` is built only from a ``VerifiedVersion`` (hashes and signature checked,
the exact verified bytes in memory), so nothing unverified is ever parsed. The model's
inputs (names, kinds, bounds) come from its manifest, not from today's config, so a
version always validates leads the way it was trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.config import FeatureSpec
from engine.errors import ArtifactRejected
from engine.features.encoder import LeadEncoder
from engine.features.tables import EncoderTables
from engine.inference.lgbm_capi import LightGBMError, LightGBMPredictor
from engine.scoring.confidence import ReliabilityTable
from engine.scoring.result import Reason
from engine.store.manifest import Manifest
from engine.store.signing import Keyring
from engine.store.verify import VerifiedVersion, verify_version

MODEL_FILE = "model.txt"


class LoadedModel:
    """One verified model version, ready to score.

    Attributes:
        vertical: The vertical it serves.
        version: Its semantic version.
        manifest: Its verified manifest.
        encoder: Validates and encodes leads for it.
        predictor: The LightGBM C API predictor.
        reliability: Score band -> reliability lookup.

    The acceptance threshold and the number of reasons are serving policy, taken from
    the configuration by ``Scorer``, not properties of the artifact.
    """

    __slots__ = (
        "encoder",
        "feature_names",
        "manifest",
        "predictor",
        "reliability",
        "version",
        "vertical",
    )

    def __init__(
        self,
        manifest: Manifest,
        encoder: LeadEncoder,
        predictor: LightGBMPredictor,
    ) -> None:
        self.vertical = manifest.vertical
        self.version = manifest.version
        self.manifest = manifest
        self.encoder = encoder
        self.predictor = predictor
        self.reliability = ReliabilityTable(manifest.reliability)
        self.feature_names = tuple(s.name for s in encoder.specs)

    @classmethod
    def from_verified(cls, verified: VerifiedVersion) -> LoadedModel:
        """Build a servable model from a verified version.

        Raises:
            ArtifactRejected: ``model`` check: the model or its tables do not load, or
                disagree with the manifest's features.
        """
        manifest = verified.manifest
        specs = tuple(
            FeatureSpec(f.name, f.kind, f.index, f.required, f.min, f.max)
            for f in manifest.features
        )
        if [s.index for s in specs] != list(range(len(specs))):
            raise ArtifactRejected("model", "manifest feature indexes are not 0..n-1 in order")
        try:
            tables = EncoderTables.from_files(specs, verified.files)
        except ValueError as exc:
            raise ArtifactRejected("model", str(exc)) from exc
        model_text = verified.files.get(MODEL_FILE)
        if model_text is None:
            raise ArtifactRejected("model", f"{MODEL_FILE} is not part of the version")
        try:
            predictor = LightGBMPredictor.from_model_string(model_text)
        except LightGBMError as exc:
            raise ArtifactRejected("model", f"LightGBM cannot load {MODEL_FILE}: {exc}") from exc
        if predictor.num_features != len(specs):
            predictor.close()
            raise ArtifactRejected(
                "model",
                f"{MODEL_FILE} has {predictor.num_features} features, the manifest {len(specs)}",
            )
        encoder = LeadEncoder(specs, tables, manifest.importance)
        return cls(manifest, encoder, predictor)

    def reasons(self, row: np.ndarray, top_k: int) -> list[Reason]:
        """Return the ``top_k`` strongest feature contributions for one encoded row."""
        contributions = self.predictor.contributions(row.reshape(1, -1))[0, :-1]
        return self.reasons_from(contributions, top_k)

    def reasons_from(self, contributions: np.ndarray, top_k: int) -> list[Reason]:
        """Pick the ``top_k`` strongest non-zero contributions (ties by feature order)."""
        order = sorted(range(len(contributions)), key=lambda i: (-abs(float(contributions[i])), i))
        reasons = []
        for i in order[:top_k]:
            value = float(contributions[i])
            if value == 0.0:
                break
            reasons.append(
                Reason(self.feature_names[i], round(value, 6), "up" if value > 0 else "down")
            )
        return reasons

    def close(self) -> None:
        """Free the native model (after no request uses it any more)."""
        self.predictor.close()


def load_model(path: Path, keyring: Keyring) -> LoadedModel:
    """Verify the version directory ``path`` and load it for serving.

    Raises:
        ArtifactRejected: A check failed; the message says which.
    """
    return LoadedModel.from_verified(verify_version(path, keyring))
