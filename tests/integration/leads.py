"""Synthetic leads as a client sends them, with whether each converted."""

from __future__ import annotations

from typing import Any

from engine.config import load_config
from engine.settings import DEFAULT_CONFIG
from engine.training.synth import generate

CONFIG = load_config(DEFAULT_CONFIG)


def synthetic_leads(vertical: str, count: int, seed: int) -> list[tuple[dict[str, Any], bool]]:
    """``count`` leads of ``vertical`` (numbers as numbers, empty cells left out)."""
    header, rows = generate(vertical, count, seed)
    numerical = set(CONFIG.verticals[vertical].feature_config.numerical)
    return [
        (
            {
                name: float(cell) if name in numerical else cell
                for name, cell in zip(header[:-1], row[:-1], strict=True)
                if cell != ""
            },
            row[-1] == "1",
        )
        for row in rows
    ]
