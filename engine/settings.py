"""Where the engine finds its config, models and keys; read from the environment once.

| variable | default | meaning |
| --- | --- | --- |
| ``CONFIG_PATH`` | ``config/models.yaml`` of this checkout | model configuration |
| ``MODEL_PATH`` | the config's ``model_base_path`` | root of the model store |
| ``MODEL_SIGNING_KEY`` | ``var/keys/model-signing.key`` | Ed25519 private key (training) |
| ``MODEL_TRUSTED_KEYS`` | ``var/keys/trusted`` | public key(s) that loading trusts |

Relative paths are relative to the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from engine.config import ModelConfig, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "models.yaml"
DEFAULT_SIGNING_KEY = Path("var/keys/model-signing.key")
DEFAULT_TRUSTED_KEYS = Path("var/keys/trusted")


class EnginePaths(msgspec.Struct, frozen=True):
    """Resolved locations of the engine's inputs."""

    config_path: Path
    model_path: Path
    signing_key: Path
    trusted_keys: Path


def resolve_paths(
    environ: Mapping[str, str] = os.environ,
    *,
    config_path: str | None = None,
    model_path: str | None = None,
    config: ModelConfig | None = None,
) -> tuple[EnginePaths, ModelConfig]:
    """Resolve paths from explicit values, then the environment, then defaults.

    Args:
        environ: The environment to read.
        config_path: Overrides ``CONFIG_PATH``.
        model_path: Overrides ``MODEL_PATH``.
        config: An already loaded configuration (skips reading ``config_path``).

    Returns:
        The paths and the loaded configuration.

    Raises:
        ConfigError: The configuration file is missing or invalid.
    """
    cfg_path = Path(config_path or environ.get("CONFIG_PATH") or DEFAULT_CONFIG)
    loaded = config if config is not None else load_config(cfg_path)
    models = Path(model_path or environ.get("MODEL_PATH") or loaded.model_base_path)
    return (
        EnginePaths(
            config_path=cfg_path,
            model_path=models,
            signing_key=Path(environ.get("MODEL_SIGNING_KEY") or DEFAULT_SIGNING_KEY),
            trusted_keys=Path(environ.get("MODEL_TRUSTED_KEYS") or DEFAULT_TRUSTED_KEYS),
        ),
        loaded,
    )
