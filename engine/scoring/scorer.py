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
import numpy.typing as npt

from engine.cache import PredictionCache
from engine.cache.keys import CacheKeyer
from engine.config import ModelConfig
from engine.errors import LeadError, ModelUnavailable, UnknownVertical
from engine.pricing.demand import DemandTracker, SlidingWindowDemand
from engine.pricing.pricer import Pricer
from engine.scoring.confidence import confidence
from engine.scoring.model import LoadedModel
from engine.scoring.result import LeadFailure, Reason, ScoreResult

Clock = Callable[[], float]


class _Lane:
    """Everything a vertical's requests need, found with one dictionary lookup."""

    __slots__ = (
        "cache_hits",
        "cache_misses",
        "currency",
        "model",
        "pricer",
        "threshold",
        "top_k",
        "tracks_demand",
    )

    def __init__(self, config: ModelConfig, vertical: str) -> None:
        settings = config.verticals[vertical]
        self.pricer = Pricer(settings.pricing)
        self.currency = settings.pricing.currency
        self.tracks_demand = settings.pricing.demand is not None
        self.threshold = config.threshold(vertical)
        self.top_k = settings.explain_top_k
        self.model: LoadedModel | None = None
        self.cache_hits = 0  # prediction cache lookups since the metrics last read them
        self.cache_misses = 0


class Scorer:
    """Scores leads of every configured vertical with the installed model versions."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        clock: Clock = time.time,
        demand: DemandTracker | None = None,
        cache: PredictionCache | None = None,
        keyer: CacheKeyer | None = None,
    ) -> None:
        """Create a scorer with no models installed.

        Args:
            config: The model configuration (verticals, thresholds, pricing).
            clock: Returns epoch seconds; injectable so prices are reproducible.
            demand: Shared demand counter; in-process sliding windows by default.
            cache: Prediction cache (``engine.cache``): the model's output for a
                vertical, version and encoded row; None scores every lead.
            keyer: Its keys (a fresh random secret when omitted).
        """
        self.config = config
        self._clock = clock
        self._cache = cache
        self._keyer = keyer or CacheKeyer() if cache is not None else None
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
        if self._cache is None:
            score = predictor.predict_row()
            reasons = (
                model.reasons(np.ctypeslib.as_array(predictor.row).copy(), lane.top_k)
                if explain
                else None
            )
        else:
            score, reasons = self._cached_prediction(lane, model, explain)
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

    def _cached_prediction(
        self, lane: _Lane, model: LoadedModel, explain: bool
    ) -> tuple[float, list[Reason] | None]:
        """The model's output for the row just encoded, from the cache when it has it."""
        assert self._cache is not None and self._keyer is not None
        predictor = model.predictor
        detail = lane.top_k if explain else 0
        key = self._keyer.key(model.vertical, model.version, detail, memoryview(predictor.row))
        hit = self._cache.get(key)
        if hit is not None:
            lane.cache_hits += 1
            return hit  # type: ignore[return-value]
        lane.cache_misses += 1
        score = predictor.predict_row()
        reasons = (
            model.reasons(np.ctypeslib.as_array(predictor.row).copy(), lane.top_k)
            if explain
            else None
        )
        self._cache.put(key, (score, reasons))
        return score, reasons

    def _cached_batch(
        self, lane: _Lane, model: LoadedModel, encoded: npt.NDArray[np.float64], explain: bool
    ) -> tuple[list[float], list[list[Reason] | None]]:
        """Scores (and reasons) of encoded rows, from the cache where it has them.

        The rows it does not have are predicted together in one batch call, then stored.
        """
        assert self._cache is not None and self._keyer is not None
        cache, keyer = self._cache, self._keyer
        detail = lane.top_k if explain else 0
        keys = [keyer.key(model.vertical, model.version, detail, row.data) for row in encoded]
        scores: list[float] = [0.0] * len(keys)
        reasons: list[list[Reason] | None] = [None] * len(keys)
        missing: list[int] = []
        for k, key in enumerate(keys):
            hit = cache.get(key)
            if hit is None:
                missing.append(k)
            else:
                scores[k], reasons[k] = hit  # type: ignore[misc]
        lane.cache_hits += len(keys) - len(missing)
        lane.cache_misses += len(missing)
        if missing:
            rows = encoded[missing]
            predicted = model.predictor.predict_matrix(rows).tolist()
            contributions = model.predictor.contributions(rows) if explain else None
            for j, k in enumerate(missing):
                scores[k] = predicted[j]
                if contributions is not None:
                    reasons[k] = model.reasons_from(contributions[j, :-1], lane.top_k)
                cache.put(keys[k], (scores[k], reasons[k]))
        return scores, reasons

    def take_cache_counts(self) -> dict[str, tuple[int, int]]:
        """Per vertical, (hits, misses) since the last call (the metrics flush)."""
        counts = {}
        for name, lane in self._lanes.items():
            if lane.cache_hits or lane.cache_misses:
                counts[name] = (lane.cache_hits, lane.cache_misses)
                lane.cache_hits = lane.cache_misses = 0
        return counts

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
        if self._cache is None:
            scores = model.predictor.predict_matrix(encoded).tolist()
            contributions = model.predictor.contributions(encoded) if explain and valid else None
            explained: list[list[Reason] | None] | None = None
        else:
            scores, explained = self._cached_batch(lane, model, encoded, explain)
            contributions = None
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
                    else explained[k]
                    if explained is not None
                    else None
                ),
            )
        return [r for r in results if r is not None]
