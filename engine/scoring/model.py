"""A model version loaded for serving: encoder, predictor and reliability, all verified.

A ``LoadedModel`` is built only from a ``VerifiedVersion`` (hashes and signature checked,
the exact verified bytes in hand), so nothing unverified is ever parsed. The model's
inputs (names, kinds, bounds) come from its manifest, not from today's config, so a
version always validates leads the way it was trained.

One predictor scores and explains:
    The compiled tree kernel (``TreeKernel``) when the version carries a tree layout
    (``model.layout``): ``verify_version`` mapped the file read-only and hashed it through
    the mapping, and the kernel scores from those very pages, shared by every worker of
    the machine. Scores are bit-identical to LightGBM and contributions (reason codes) come
    from the kernel's TreeSHAP, so such a version never loads LightGBM at all: no booster,
    no private copy of the trees in any worker. The layout's header must name the
    version's ``model.txt`` (by SHA-256) as its source, so the trees are the signed ones.

    Versions without a layout (models the layout refuses, versions published before it
    existed) are scored and explained by the LightGBM C-API predictor, as before.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.config import FeatureSpec
from engine.errors import ArtifactRejected
from engine.features.encoder import LeadEncoder
from engine.features.tables import EncoderTables
from engine.inference.lgbm_capi import LightGBMError, LightGBMPredictor
from engine.inference.tree_kernel import TreeKernel
from engine.inference.tree_layout import LayoutError
from engine.scoring.confidence import ReliabilityTable
from engine.scoring.result import Reason
from engine.store.layout import MODEL_FILE, MODEL_LAYOUT_FILE
from engine.store.manifest import Manifest
from engine.store.signing import Keyring
from engine.store.verify import VerifiedVersion, verify_version

Predictor = TreeKernel | LightGBMPredictor
"""What scores rows: both have ``row``, ``predict_row``, ``predict_matrix``,
``contributions`` and ``num_features``."""


class LoadedModel:
    """One verified model version, ready to score.

    Attributes:
        vertical: The vertical it serves.
        version: Its semantic version.
        manifest: Its verified manifest.
        encoder: Validates and encodes leads for it.
        predictor: Scores and explains rows: the tree kernel when the version has a
            layout, else the LightGBM C-API predictor (see the module docstring).
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
        predictor: Predictor,
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
        predictor = _open_predictor(verified)
        try:
            _check_width(predictor, len(specs))
        except BaseException:
            predictor.close()
            raise
        encoder = LeadEncoder(specs, tables, manifest.importance)
        return cls(manifest, encoder, predictor)

    def contributions(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per-feature contributions of encoded rows (LightGBM's ``pred_contrib``).

        Args:
            matrix: Shape ``(n, num_features)`` of encoded rows.

        Returns:
            Shape ``(n, num_features + 1)`` in raw-score units; the last column is the bias.
        """
        return self.predictor.contributions(matrix)

    def reasons(self, row: np.ndarray, top_k: int) -> list[Reason]:
        """Return the ``top_k`` strongest feature contributions for one encoded row."""
        contributions = self.contributions(row.reshape(1, -1))[0, :-1]
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
        """Unmap the layout or free the booster (once no request uses the model)."""
        self.predictor.close()


def _check_width(predictor: Predictor, expected: int) -> None:
    """Refuse a model whose input width is not the manifest's number of features."""
    if predictor.num_features != expected:
        name = MODEL_LAYOUT_FILE if isinstance(predictor, TreeKernel) else MODEL_FILE
        raise ArtifactRejected(
            "model", f"{name} has {predictor.num_features} features, the manifest {expected}"
        )


def _open_predictor(verified: VerifiedVersion) -> Predictor:
    """The tree kernel on the version's layout when it has one, else LightGBM's predictor.

    Both model files' mappings are closed here except the layout's, which the kernel keeps
    (and closes with itself).

    Raises:
        ArtifactRejected: ``model`` check: a model file is missing or empty, the kernel
            refuses the layout, the layout was not compiled from the version's
            ``model.txt``, or LightGBM cannot load ``model.txt``. The files verified, so
            any of these means a bug or tampering before signing.
    """
    mapped = dict(verified.mapped)
    try:
        if MODEL_FILE not in verified.manifest.files:
            raise ArtifactRejected("model", f"{MODEL_FILE} is not part of the version")
        if MODEL_LAYOUT_FILE in verified.manifest.files:
            layout = mapped.pop(MODEL_LAYOUT_FILE, None)
            if layout is None:
                raise ArtifactRejected("model", f"{MODEL_LAYOUT_FILE} is empty")
            model_sha256 = bytes.fromhex(verified.manifest.files[MODEL_FILE])
            return _open_kernel(layout, model_sha256)
        model_text = mapped.get(MODEL_FILE)
        if model_text is None:
            raise ArtifactRejected("model", f"{MODEL_FILE} is empty")
        try:
            return LightGBMPredictor.from_model_string(bytes(model_text))
        except LightGBMError as exc:
            raise ArtifactRejected("model", f"LightGBM cannot load {MODEL_FILE}: {exc}") from exc
    finally:
        for mapping in mapped.values():
            mapping.close()


def _open_kernel(layout: mmap.mmap, model_sha256: bytes) -> TreeKernel:
    """Bind the tree kernel to the verified layout mapping (which it then owns).

    Raises:
        ArtifactRejected: ``model`` check: the kernel refuses the layout, or it was not
            compiled from the version's ``model.txt``.
    """
    try:
        # The SHA-256 of these very pages was just checked: the CRC-32 would add nothing.
        kernel = TreeKernel.from_mapping(layout, verify_checksum=False)
    except LayoutError as exc:
        layout.close()
        raise ArtifactRejected("model", f"{MODEL_LAYOUT_FILE} does not load: {exc}") from exc
    if kernel.header.source_sha256 != model_sha256:
        kernel.close()
        raise ArtifactRejected(
            "model", f"{MODEL_LAYOUT_FILE} was not compiled from this version's {MODEL_FILE}"
        )
    return kernel


def load_model(path: Path, keyring: Keyring) -> LoadedModel:
    """Verify the version directory ``path`` and load it for serving.

    Raises:
        ArtifactRejected: A check failed; the message says which.
    """
    return LoadedModel.from_verified(verify_version(path, keyring))
