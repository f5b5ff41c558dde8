"""Typed results of scoring, encoded straight to JSON by the API layer."""

from __future__ import annotations

import msgspec


class Reason(msgspec.Struct, frozen=True, gc=False):
    """One feature's push on a score, in log-odds (LightGBM's SHAP contribution).

    Attributes:
        feature: The feature name.
        contribution: Its contribution to the raw score (positive pushes up).
        direction: ``"up"`` or ``"down"``.
    """

    feature: str
    contribution: float
    direction: str


class ScoreResult(msgspec.Struct, omit_defaults=True, gc=False):
    """The outcome of scoring one lead.

    Attributes:
        score: Probability that the lead converts.
        confidence: How much to trust the score (``engine.scoring.confidence``).
        price: What to pay for the lead, in ``currency``, rounded to cents.
        market_factors: Every market multiplier applied to the price.
        model_version: The model version that scored the lead.
        accepted: ``score >= threshold`` of the vertical.
        currency: ISO 4217 code of ``price``.
        reasons: The strongest contributions, when asked for.
    """

    score: float
    confidence: float
    price: float
    market_factors: dict[str, float]
    model_version: str
    accepted: bool
    currency: str
    reasons: list[Reason] | None = None


class LeadFailure(msgspec.Struct, frozen=True, gc=False):
    """A lead of a batch that failed validation; the others are still scored.

    Attributes:
        index: Position of the lead in the batch.
        field: The offending input (``lead_data.<feature>``).
        reason: Why it was rejected.
        code: ``missing``, ``type`` or ``range``.
    """

    index: int
    field: str
    reason: str
    code: str
