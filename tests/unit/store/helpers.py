"""Builders shared by the model-store tests: real keys, real files, valid manifests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from engine.store.manifest import (
    DataFingerprint,
    Histogram,
    Manifest,
    ManifestFeature,
    Metrics,
    ReliabilityBand,
    encode_manifest,
)
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey, generate_keypair

VERTICAL = "auto"
FILES = {"model.txt": b"tree\nversion=v4\nnum_leaves=31\n", "encoders.npy": b"\x93NUMPY\x01\x00abc"}


def make_manifest(
    vertical: str, version: str, hashes: dict[str, str], auc: float = 0.81
) -> Manifest:
    return Manifest(
        vertical=vertical,
        version=version,
        created_at="2024-05-01T12:00:00Z",
        features=[
            ManifestFeature(name="age", kind="numerical", index=0, required=True, min=16, max=100),
            ManifestFeature(name="vehicle_make", kind="categorical", index=1),
            ManifestFeature(name="occupation", kind="text", index=2),
        ],
        files=dict(hashes),
        metrics=Metrics(
            auc=auc,
            precision=0.72,
            recall=0.64,
            threshold=0.65,
            brier=0.15,
            log_loss=0.45,
            ece=0.02,
            accepted_rate=0.31,
            n_train=8000,
            n_validation=1000,
            n_holdout=1000,
            positive_rate=0.25,
            best_iteration=120,
        ),
        reliability=[
            ReliabilityBand(
                lower=0.0, upper=0.5, count=600, mean_score=0.2, observed_rate=0.19, reliability=0.9
            ),
            ReliabilityBand(
                lower=0.5, upper=1.0, count=400, mean_score=0.7, observed_rate=0.68, reliability=0.8
            ),
        ],
        importance={"age": 0.5, "vehicle_make": 0.3, "occupation": 0.2},
        reference_histograms={
            "age": Histogram(counts=[10, 20, 30], missing=1, edges=[30.0, 50.0]),
            "vehicle_make": Histogram(
                counts=[5, 5, 2], missing=0, labels=["ford", "toyota", "__other__"]
            ),
        },
        data_fingerprint=DataFingerprint(
            sha256="0" * 64, bytes=12345, rows=10000, positives=2500, source="auto.csv"
        ),
        training={"num_leaves": 31, "learning_rate": 0.05, "params": {"seed": 7}},
        libraries={"python": "3.11.7", "lightgbm": "4.5.0", "numpy": "1.26.4"},
    )


def fields_for(
    vertical: str, version: str, auc: float = 0.81
) -> Callable[[dict[str, str]], Manifest]:
    def build(hashes: dict[str, str]) -> Manifest:
        return make_manifest(vertical, version, hashes, auc=auc)

    return build


def new_key(directory: Path) -> tuple[SigningKey, Keyring]:
    generate_keypair(directory)
    return SigningKey.load(directory / "model-signing.key"), Keyring.load(directory / "trusted")


def publish_version(
    root: Path,
    key: SigningKey,
    version: str,
    vertical: str = VERTICAL,
    files: dict[str, bytes] | None = None,
    auc: float = 0.81,
) -> Path:
    return publish(
        root,
        vertical,
        version,
        FILES if files is None else files,
        fields_for(vertical, version, auc),
        key,
    )


def overwrite(path: Path, data: bytes) -> None:
    """Replace a (read-only) published file's content, as an attacker or accident would."""
    if path.exists():
        path.chmod(0o644)
    path.write_bytes(data)


def resign(version_path: Path, key: SigningKey, manifest_bytes: bytes) -> None:
    """Write new manifest bytes and a valid signature over them."""
    overwrite(version_path / "manifest.json", manifest_bytes)
    overwrite(version_path / "manifest.sig", key.sign(manifest_bytes))


def resign_manifest(version_path: Path, key: SigningKey, manifest: Manifest) -> None:
    resign(version_path, key, encode_manifest(manifest))


def temp_entries(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(name for name in os.listdir(directory) if name.startswith(".tmp-"))
