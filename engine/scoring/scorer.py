"""The one call the service makes per lead (``Scorer.score``) and per batch.

``score`` validates and encodes the lead straight into the predictor's input buffer,
runs LightGBM's single-row C path, then adds confidence and price. A ``Scorer`` holds
one ``LoadedModel`` reference per vertical; ``install`` swaps a reference in one step,
so a request that already fetched its model finishes on that version and reports it.

A ``Scorer`` is meant to be used from one thread (a worker's event loop): the
predictor's input buffer and FastConfig are per model, not per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from engine.config import ModelConfig
from engine.errors import LeadError, ModelUnavailable, UnknownVertical
from engine.pricing.demand import DemandTracker, SlidingWindowDemand
from engine.pricing.pricer import Pricer
from engine.scoring.confidence import confidence
from engine.scoring.model import LoadedModel
from engine.scoring.result import LeadFailure, ScoreResult

Clock = Callable[[], float]


class _Lane:
    """Everything a vertical's requests need, found with one dictionary lookup."""

    __slots__ = ("currency", "model", "pricer", "threshold", "top_k", "tracks_demand")

    def __init__(self, config: ModelConfig, vertical: str) -> None:
        settings = config.verticals[vertical]
        self.pricer = Pricer(settings.pricing)
        self.currency = settings.pricing.currency
        self.tracks_demand = settings.pricing.demand is not None
        self.threshold = config.threshold(vertical)
        self.top_k = settings.explain_top_k
        self.model: LoadedModel | None = None


class Scorer:
    """Scores leads of every configured vertical with the installed model versions."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        clock: Clock = time.time,
        demand: DemandTracker | None = None,
    ) -> None:
        """Create a scorer with no models installed.

        Args:
            config: The model configuration (verticals, thresholds, pricing).
            clock: Returns epoch seconds; injectable so prices are reproducible.
            demand: Shared demand counter; in-process sliding windows by default.
        """
        self.config = config
        self._clock = clock
        windows = {
            name: v.pricing.demand.window_seconds
            for name, v in config.verticals.items()
            if v.pricing.demand is not None
        }
        self._demand: DemandTracker = demand or SlidingWindowDemand(300, windows)
        self._lanes = {name: _Lane(config, name) for name in config.verticals}

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        """The installed model of each vertical that has one."""
        return {name: lane.model for name, lane in self._lanes.items() if lane.model}

    def install(self, model: LoadedModel) -> LoadedModel | None:
        """Make ``model`` the one that scores its vertical; return the one it replaced.

        Raises:
            UnknownVertical: The model's vertical is not configured.
        """
        if model.vertical not in self.config.verticals:
            raise UnknownVertical(model.vertical, list(self.config.verticals))
        lane = self._lanes[model.vertical]
        previous, lane.model = lane.model, model
        return previous

    def threshold(self, vertical: str) -> float:
        """The acceptance threshold of ``vertical`` (from the configuration)."""
        return self._lanes[vertical].threshold

    def model(self, vertical: str) -> LoadedModel:
        """Return the installed model of ``vertical``.

        Raises:
            UnknownVertical: Not a configured vertical.
            ModelUnavailable: Configured, but no model is installed.
        """
        lane = self._lanes.get(vertical)
        if lane is None or lane.model is None:
            self._unavailable(vertical)
        return lane.model

    def _unavailable(self, vertical: str) -> NoReturn:
        if vertical not in self.config.verticals:
            raise UnknownVertical(vertical, list(self.config.verticals))
        raise ModelUnavailable(vertical, "no verified version is loaded")

    def score(
        self,
        vertical: str,
        lead: Mapping[str, Any],
        *,
        explain: bool = False,
        now: float | None = None,
    ) -> ScoreResult:
        """Validate, encode, predict, and add confidence and price for one lead.

        Args:
            vertical: The lead's vertical.
            lead: Feature name to JSON-typed value.
            explain: Also return the strongest reasons.
            now: Epoch seconds to price at; the scorer's clock when omitted.

        Raises:
            UnknownVertical: Not a configured vertical.
            ModelUnavailable: No model installed for it.
            LeadError: The lead is invalid; ``field`` names the input.
        """
        lane = self._lanes.get(vertical)
        if lane is None or lane.model is None:
            self._unavailable(vertical)
        model = lane.model
        if type(lead) is not dict and not isinstance(lead, Mapping):
            raise LeadError("lead_data", "must be an object", "type")
        predictor = model.predictor
        completeness = model.encoder.encode_into(lead, predictor.row)
        score = predictor.predict_row()
        reasons = (
            model.reasons(np.ctypeslib.as_array(predictor.row).copy(), lane.top_k)
            if explain
            else None
        )
        if now is None:
            now = self._clock()
        rate = self._demand.record(vertical, now) if lane.tracks_demand else 0.0
        price, factors = lane.pricer.price(score, lead, now, rate)
        return ScoreResult(
            score=score,
            confidence=confidence(completeness, model.reliability(score)),
            price=price,
            market_factors=factors,
            model_version=model.version,
            accepted=score >= lane.threshold,
            currency=lane.currency,
            reasons=reasons,
        )

    def score_batch(
        self,
        vertical: str,
        leads: Sequence[Mapping[str, Any]],
        *,
        explain: bool = False,
        now: float | None = None,
    ) -> list[ScoreResult | LeadFailure]:
        """Score many leads of one vertical with LightGBM's batch path.

        A lead that fails validation gets a ``LeadFailure`` at its position; the others
        are scored as ``score`` would score them, by the same model version.

        Raises:
            UnknownVertical: Not a configured vertical.
            ModelUnavailable: No model installed for it.
        """
        lane = self._lanes.get(vertical)
        if lane is None or lane.model is None:
            self._unavailable(vertical)
        model = lane.model
        encoder = model.encoder
        matrix = np.empty((len(leads), encoder.num_features), dtype=np.float64)
        results: list[ScoreResult | LeadFailure | None] = [None] * len(leads)
        valid: list[int] = []
        completeness: list[float] = []
        for position, lead in enumerate(leads):
            try:
                if not isinstance(lead, Mapping):
                    raise LeadError("lead_data", "must be an object", "type")
                completeness.append(encoder.encode_into(lead, matrix[len(valid)]))
            except LeadError as exc:
                results[position] = LeadFailure(position, exc.field, exc.reason, exc.code)
                continue
            valid.append(position)
        encoded = matrix[: len(valid)]
        scores = model.predictor.predict_matrix(encoded).tolist()
        contributions = model.predictor.contributions(encoded) if explain and valid else None
        if now is None:
            now = self._clock()
        pricer, tracks, currency = lane.pricer, lane.tracks_demand, lane.currency
        threshold, top_k = lane.threshold, lane.top_k
        for k, position in enumerate(valid):
            score = scores[k]
            rate = self._demand.record(vertical, now) if tracks else 0.0
            price, factors = pricer.price(score, leads[position], now, rate)
            results[position] = ScoreResult(
                score=score,
                confidence=confidence(completeness[k], model.reliability(score)),
                price=price,
                market_factors=factors,
                model_version=model.version,
                accepted=score >= threshold,
                currency=currency,
                reasons=(
                    model.reasons_from(contributions[k, :-1], top_k)
                    if contributions is not None
                    else None
                ),
            )
        return [r for r in results if r is not None]
