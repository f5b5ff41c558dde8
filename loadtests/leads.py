"""Leads for the load test: the training data's synthetic generator, and invalid leads.

``LeadPool`` draws each vertical's leads from ``engine.training.synth`` (the generator
``make models`` trains on, with another seed), so scores, confidences and prices spread
as they do in production and the true outcome of every lead is known for the feedback.
Cells become JSON as a client sends them: numbers as numbers, missing cells left out.

``INVALID_CASES`` are the client mistakes a real integration makes (a number sent as a
string, a required field left out, a value out of range, an unknown vertical or field,
a truncated body); each knows the status and error type the service must answer with.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.config import ModelConfig, feature_specs, load_config
from engine.settings import DEFAULT_CONFIG
from engine.training.synth import SYNTH_VERTICALS, generate

Lead = dict[str, Any]


@dataclass(frozen=True)
class PooledLead:
    """One synthetic lead as a client sends it, and whether it converted."""

    vertical: str
    data: Lead
    converted: bool


def _cell(cell: str, numerical: bool) -> Any:
    if not numerical:
        return cell
    number = float(cell)
    return int(number) if number.is_integer() and "." not in cell else number


class LeadPool:
    """Pre-generated leads per vertical, drawn by weight (generated once per process).

    Args:
        weights: Share of leads per vertical (``LOADTEST_VERTICALS``); every vertical
            must be one the synthetic generator knows.
        size: Leads generated per vertical (a lead is reused after ``size`` draws).
        seed: Seed of the generator.
        config: The model configuration (which features are numerical).

    Raises:
        ValueError: A vertical the generator does not know, or one missing from ``config``.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        size: int,
        seed: int,
        config: ModelConfig | None = None,
    ) -> None:
        config = config or load_config(DEFAULT_CONFIG)
        unknown = [v for v in weights if v not in SYNTH_VERTICALS or v not in config.verticals]
        if unknown:
            raise ValueError(
                f"no synthetic leads for {', '.join(unknown)}; known: {', '.join(SYNTH_VERTICALS)}"
            )
        self.verticals = [v for v, w in weights.items() if w > 0]
        self.weights = [weights[v] for v in self.verticals]
        self.leads: dict[str, list[PooledLead]] = {}
        for vertical in self.verticals:
            specs = feature_specs(config.verticals[vertical])
            numerical = {s.name for s in specs if s.kind == "numerical"}
            header, rows = generate(vertical, size, seed)
            self.leads[vertical] = [
                PooledLead(
                    vertical,
                    {
                        name: _cell(cell, name in numerical)
                        for name, cell in zip(header[:-1], row[:-1], strict=True)
                        if cell != ""
                    },
                    row[-1] == "1",
                )
                for row in rows
            ]

    def vertical(self, rng: random.Random) -> str:
        """A vertical drawn by weight."""
        return rng.choices(self.verticals, self.weights)[0]

    def draw(self, rng: random.Random, vertical: str | None = None) -> PooledLead:
        """A lead of ``vertical`` (or of a vertical drawn by weight)."""
        chosen = vertical or self.vertical(rng)
        return rng.choice(self.leads[chosen])


@dataclass(frozen=True)
class InvalidCase:
    """A client mistake: how to make it from a valid lead, and the answer it must get."""

    name: str
    status: int
    error_type: str
    body: Callable[[PooledLead, ModelConfig], bytes]


def _numerical_field(lead: PooledLead, config: ModelConfig) -> str:
    """A numerical feature of the lead's vertical, a required one if there is one."""
    numerical = [s for s in feature_specs(config.verticals[lead.vertical]) if s.kind == "numerical"]
    return next((s.name for s in numerical if s.required), numerical[0].name)


def _request(vertical: str, data: Lead, **extra: Any) -> bytes:
    return json.dumps({"vertical": vertical, "lead_data": data, **extra}).encode()


def _number_as_text(lead: PooledLead, config: ModelConfig) -> bytes:
    name = _numerical_field(lead, config)
    return _request(lead.vertical, {**lead.data, name: "thirty-five"})


def _missing_required(lead: PooledLead, config: ModelConfig) -> bytes:
    specs = feature_specs(config.verticals[lead.vertical])
    required = {s.name for s in specs if s.required}
    return _request(lead.vertical, {k: v for k, v in lead.data.items() if k not in required})


def _out_of_range(lead: PooledLead, config: ModelConfig) -> bytes:
    specs = feature_specs(config.verticals[lead.vertical])
    bounded = next(s for s in specs if s.kind == "numerical" and s.max is not None)
    assert bounded.max is not None
    return _request(lead.vertical, {**lead.data, bounded.name: bounded.max * 10 + 1})


def _unknown_vertical(lead: PooledLead, config: ModelConfig) -> bytes:
    return _request("boat", lead.data)


def _unknown_field(lead: PooledLead, config: ModelConfig) -> bytes:
    return _request(lead.vertical, lead.data, priority="high")


def _truncated(lead: PooledLead, config: ModelConfig) -> bytes:
    whole = _request(lead.vertical, lead.data)
    return whole[: len(whole) // 2]


INVALID_CASES: Sequence[InvalidCase] = (
    InvalidCase("number as text", 422, "validation_error", _number_as_text),
    InvalidCase("required field missing", 422, "validation_error", _missing_required),
    InvalidCase("out of range", 422, "validation_error", _out_of_range),
    InvalidCase("unknown vertical", 404, "unknown_vertical", _unknown_vertical),
    InvalidCase("unknown field", 422, "validation_error", _unknown_field),
    InvalidCase("truncated json", 400, "invalid_json", _truncated),
)
