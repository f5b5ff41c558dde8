"""A model version loaded for serving: encoder, predictor and reliability, all verified.

A ``LoadedModel`` is built only from a ``VerifiedVersion`` (hashes and signature checked,
the exact verified bytes in memory), so nothing unverified is ever parsed. The model's
inputs (names, kinds, bounds) come from its manifest, not from today's config, so a
version always validates leads the way it was trained.

Two predictors:
    Scores come from the compiled tree kernel (``TreeKernel``) when the version carries a
    tree layout (``model.layout``): the file is memory-mapped read-only, so every worker
    of the machine shares one copy of the trees, and the kernel is bit-identical to
    LightGBM and faster. Versions without a layout (models the layout refuses, versions
    published before it existed) are scored by the LightGBM C-API predictor, as before.
    Contributions (reason codes for explain) always come from the LightGBM predictor for
    now: TreeSHAP in the kernel is the next step, after which the per-worker booster goes.

    The layout is mapped from the version directory after ``verify_version`` read and
    hashed it, so the mapping is hashed again against the signed manifest: a file swapped
    in between is refused, never served. Its header must also name ``model.txt`` as its
    source, so scores and reasons come from the same trees.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
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
from engine.store.layout import MODEL_LAYOUT_FILE
from engine.store.manifest import Manifest
from engine.store.signing import Keyring
from engine.store.verify import VerifiedVersion, verify_version

MODEL_FILE = "model.txt"

Predictor = TreeKernel | LightGBMPredictor
"""What scores rows: both have ``row``, ``predict_row``, ``predict_matrix``, ``num_features``."""


class LoadedModel:
    """One verified model version, ready to score.

    Attributes:
        vertical: The vertical it serves.
        version: Its semantic version.
        manifest: Its verified manifest.
        encoder: Validates and encodes leads for it.
        predictor: Scores rows: the tree kernel when the version has a layout, else the
            LightGBM C-API predictor (see the module docstring).
        explainer: The LightGBM C-API predictor, used only for :meth:`contributions`
            (the same object as ``predictor`` when the version has no layout).
        reliability: Score band -> reliability lookup.

    The acceptance threshold and the number of reasons are serving policy, taken from
    the configuration by ``Scorer``, not properties of the artifact.
    """

    __slots__ = (
        "encoder",
        "explainer",
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
        explainer: LightGBMPredictor,
    ) -> None:
        self.vertical = manifest.vertical
        self.version = manifest.version
        self.manifest = manifest
        self.encoder = encoder
        self.predictor = predictor
        self.explainer = explainer
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
            explainer = LightGBMPredictor.from_model_string(model_text)
        except LightGBMError as exc:
            raise ArtifactRejected("model", f"LightGBM cannot load {MODEL_FILE}: {exc}") from exc
        predictor: Predictor = explainer
        try:
            _check_width(MODEL_FILE, explainer.num_features, len(specs))
            if MODEL_LAYOUT_FILE in manifest.files:
                predictor = _open_kernel(verified, hashlib.sha256(model_text).digest())
                _check_width(MODEL_LAYOUT_FILE, predictor.num_features, len(specs))
        except BaseException:
            if predictor is not explainer:
                predictor.close()
            explainer.close()
            raise
        encoder = LeadEncoder(specs, tables, manifest.importance)
        return cls(manifest, encoder, predictor, explainer)

    def contributions(self, matrix: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Per-feature contributions of encoded rows (LightGBM's ``pred_contrib``).

        Args:
            matrix: Shape ``(n, num_features)`` of encoded rows.

        Returns:
            Shape ``(n, num_features + 1)`` in raw-score units; the last column is the bias.
        """
        # The LightGBM predictor until the kernel has TreeSHAP (issue 10, next step).
        return self.explainer.contributions(matrix)

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
        """Free the native models and unmap the layout (after no request uses them)."""
        try:
            if self.predictor is not self.explainer:
                self.predictor.close()
        finally:
            self.explainer.close()


def _check_width(name: str, width: int, expected: int) -> None:
    """Refuse a model whose input width is not the manifest's number of features."""
    if width != expected:
        raise ArtifactRejected("model", f"{name} has {width} features, the manifest {expected}")


def _open_kernel(verified: VerifiedVersion, model_sha256: bytes) -> TreeKernel:
    """Map the version's verified layout and bind the tree kernel to it.

    Raises:
        ArtifactRejected: ``model`` check: the file changed since it was verified, the
            kernel refuses it, or it was not compiled from the version's ``model.txt``.
            It verified, so any of these means a bug or tampering.
    """
    mapping = _map_verified(verified)
    try:
        # The kernel closes the mapping with itself (as TreeKernel.open does).
        kernel = TreeKernel(mapping, _mapping=mapping)
    except LayoutError as exc:
        mapping.close()
        raise ArtifactRejected("model", f"{MODEL_LAYOUT_FILE} does not load: {exc}") from exc
    if kernel.header.source_sha256 != model_sha256:
        kernel.close()
        raise ArtifactRejected(
            "model", f"{MODEL_LAYOUT_FILE} was not compiled from this version's {MODEL_FILE}"
        )
    return kernel


def _map_verified(verified: VerifiedVersion) -> mmap.mmap:
    """Map the layout read-only; refuse it unless its SHA-256 is still the manifest's."""
    path = verified.path / MODEL_LAYOUT_FILE
    expected = verified.manifest.files[MODEL_LAYOUT_FILE].lower()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ArtifactRejected("model", f"cannot open {MODEL_LAYOUT_FILE}: {exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactRejected("model", f"{MODEL_LAYOUT_FILE} is not a regular file")
        try:
            mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:  # ValueError: an empty file
            raise ArtifactRejected("model", f"cannot map {MODEL_LAYOUT_FILE}: {exc}") from None
    finally:
        os.close(fd)
    if hashlib.sha256(mapping).hexdigest() != expected:
        mapping.close()
        raise ArtifactRejected("model", f"{MODEL_LAYOUT_FILE} changed after it was verified")
    return mapping


def load_model(path: Path, keyring: Keyring) -> LoadedModel:
    """Verify the version directory ``path`` and load it for serving.

    Raises:
        ArtifactRejected: A check failed; the message says which.
    """
    return LoadedModel.from_verified(verify_version(path, keyring))
