"""The one call the service makes per lead (``Scorer.score``) and per batch.

``score`` validates and encodes the lead straight into the predictor's input buffer,
runs LightGBM's single-row C path, then adds confidence and price. A ``Scorer`` holds
one ``LoadedModel`` reference per vertical; ``install`` swaps a reference in one step,
so a request that already fetched its model finishes on that version and reports it.

A ``Scorer`` is meant to be used from one thread (a worker's event loop): the
predictor's input buffer and FastConfig are per model, not per call.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, cast

import numpy as np
import numpy.typing as npt

from engine.cache import PredictionCache, RemoteCache
from engine.cache.keys import CacheKeyer
from engine.config import ModelConfig
from engine.errors import LeadError, ModelUnavailable, UnknownVertical
from engine.pricing.demand import DemandTracker, SlidingWindowDemand
from engine.pricing.pricer import Pricer
from engine.scoring.confidence import confidence
from engine.scoring.model import LoadedModel
from engine.scoring.result import LeadFailure, Reason, ScoreResult

Clock = Callable[[], float]
Output = tuple[float, list[Reason] | None]
"""What a cache holds per key: the model's score, and its reasons when asked for."""


DEFAULT_DEMAND_WINDOW = 300
"""Seconds of demand counted for a vertical whose pricing sets no window."""


def demand_windows(config: ModelConfig) -> dict[str, int]:
    """The demand window of every vertical that prices by demand, in seconds."""
    return {
        name: v.pricing.demand.window_seconds
        for name, v in config.verticals.items()
        if v.pricing.demand is not None
    }


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


class _Batch:
    """A batch between encoding and pricing: its lane, model, encoded rows and failures."""

    __slots__ = ("completeness", "encoded", "lane", "model", "results", "valid")

    def __init__(self, lane: _Lane, model: LoadedModel, size: int) -> None:
        self.lane = lane
        self.model = model
        self.results: list[ScoreResult | LeadFailure | None] = [None] * size
        self.valid: list[int] = []  # positions of the leads that encoded
        self.completeness: list[float] = []
        self.encoded: npt.NDArray[np.float64] = np.empty((0, 0))


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
        remote: RemoteCache | None = None,
    ) -> None:
        """Create a scorer with no models installed.

        Args:
            config: The model configuration (verticals, thresholds, pricing).
            clock: Returns epoch seconds; injectable so prices are reproducible.
            demand: Shared demand counter; in-process sliding windows by default.
            cache: Prediction cache (``engine.cache``): the model's output for a
                vertical, version and encoded row; None scores every lead.
            keyer: Its keys (a fresh random secret when omitted; a remote cache shared
                by several processes needs them to share the secret).
            remote: A cache shared over the network, behind ``cache`` when both are
                given; only the ``*_async`` methods consult it.
        """
        self.config = config
        self._clock = clock
        self._cache = cache
        self.remote = remote
        cached = cache is not None or remote is not None
        self._keyer = keyer or CacheKeyer() if cached else None
        self._demand: DemandTracker = demand or SlidingWindowDemand(
            DEFAULT_DEMAND_WINDOW, demand_windows(config)
        )
        self._lanes = {name: _Lane(config, name) for name in config.verticals}

    @property
    def demand(self) -> DemandTracker:
        """The demand counter the prices read."""
        return self._demand

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
        lane, model, completeness = self._encode(vertical, lead)
        predictor = model.predictor
        if self._cache is None:
            score = predictor.predict_row()
            reasons = (
                model.reasons(np.ctypeslib.as_array(predictor.row).copy(), lane.top_k)
                if explain
                else None
            )
        else:
            score, reasons = self._cached_prediction(lane, model, explain)
        return self._finish(lane, model, lead, completeness, score, reasons, now)

    def _encode(self, vertical: str, lead: Mapping[str, Any]) -> tuple[_Lane, LoadedModel, float]:
        """Validate and encode ``lead`` into its model's input buffer; return its completeness."""
        lane = self._lanes.get(vertical)
        if lane is None or lane.model is None:
            self._unavailable(vertical)
        model = lane.model
        if type(lead) is not dict and not isinstance(lead, Mapping):
            raise LeadError("lead_data", "must be an object", "type")
        return lane, model, model.encoder.encode_into(lead, model.predictor.row)

    def _finish(
        self,
        lane: _Lane,
        model: LoadedModel,
        lead: Mapping[str, Any],
        completeness: float,
        score: float,
        reasons: list[Reason] | None,
        now: float | None,
    ) -> ScoreResult:
        """Add confidence and price to a lead's score."""
        if now is None:
            now = self._clock()
        rate = self._demand.record(model.vertical, now) if lane.tracks_demand else 0.0
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

    @staticmethod
    def _predict_encoded(
        lane: _Lane, model: LoadedModel, explain: bool
    ) -> tuple[float, list[Reason] | None]:
        """The model's output for the row in its predictor's buffer."""
        predictor = model.predictor
        score = predictor.predict_row()
        reasons = (
            model.reasons(np.ctypeslib.as_array(predictor.row).copy(), lane.top_k)
            if explain
            else None
        )
        return score, reasons

    def _key(self, lane: _Lane, model: LoadedModel, explain: bool, row: Any) -> bytes:
        assert self._keyer is not None
        detail = lane.top_k if explain else 0
        return self._keyer.key(model.vertical, model.version, detail, row)

    def _cached_prediction(
        self, lane: _Lane, model: LoadedModel, explain: bool
    ) -> tuple[float, list[Reason] | None]:
        """The model's output for the row just encoded, from the cache when it has it."""
        assert self._cache is not None
        key = self._key(lane, model, explain, memoryview(model.predictor.row))
        hit = self._cache.get(key)
        if hit is not None:
            lane.cache_hits += 1
            return hit  # type: ignore[return-value]
        lane.cache_misses += 1
        value = self._predict_encoded(lane, model, explain)
        self._cache.put(key, value)
        return value

    async def score_async(
        self,
        vertical: str,
        lead: Mapping[str, Any],
        *,
        explain: bool = False,
        now: float | None = None,
    ) -> ScoreResult:
        """``score``, consulting the remote cache too (when there is one).

        The memory cache is asked first (tiered); on its miss the remote cache is awaited,
        and on a miss there too the lead is predicted and the output queued for both. The
        model is fetched once, before the wait, so a reload meanwhile cannot mix versions.

        Raises:
            UnknownVertical: Not a configured vertical.
            ModelUnavailable: No model installed for it.
            LeadError: The lead is invalid; ``field`` names the input.
        """
        remote = self.remote
        if remote is None:
            return self.score(vertical, lead, explain=explain, now=now)
        lane, model, completeness = self._encode(vertical, lead)
        predictor = model.predictor
        key = self._key(lane, model, explain, memoryview(predictor.row))
        local = self._cache
        value = local.get(key) if local is not None else None
        if value is None:
            # Other requests of this model encode into the same buffer while this one
            # waits on the network: keep this row's bytes to put back for a miss.
            row = bytes(predictor.row)
            value = await remote.get(key)
            if value is None and lane.model is not model:
                # A reload installed another version during the wait and freed this one's
                # native model: score the lead afresh with the new version, start to end.
                return self.score(vertical, lead, explain=explain, now=now)
            if value is None:
                lane.cache_misses += 1
                ctypes.memmove(predictor.row, row, len(row))
                value = self._predict_encoded(lane, model, explain)
                remote.put(key, value)
            else:
                lane.cache_hits += 1
            if local is not None:
                local.put(key, value)
        else:
            lane.cache_hits += 1
        score, reasons = cast(Output, value)
        return self._finish(lane, model, lead, completeness, score, reasons, now)

    def _batch_keys(
        self, lane: _Lane, model: LoadedModel, encoded: npt.NDArray[np.float64], explain: bool
    ) -> tuple[list[bytes], list[object | None]]:
        """The rows' cache keys, and what the memory cache holds for each (None: a miss)."""
        keys = [self._key(lane, model, explain, row.data) for row in encoded]
        cache = self._cache
        return keys, [cache.get(key) for key in keys] if cache is not None else [None] * len(keys)

    def _fill_batch(
        self,
        lane: _Lane,
        model: LoadedModel,
        encoded: npt.NDArray[np.float64],
        explain: bool,
        keys: list[bytes],
        found: list[object | None],
    ) -> tuple[list[float], list[list[Reason] | None]]:
        """Predict the rows no cache had, in one batch call; store them; return all outputs."""
        missing = [k for k, value in enumerate(found) if value is None]
        lane.cache_hits += len(keys) - len(missing)
        lane.cache_misses += len(missing)
        if missing:
            rows = encoded[missing]
            predicted = model.predictor.predict_matrix(rows).tolist()
            contributions = model.contributions(rows) if explain else None
            cache, remote = self._cache, self.remote
            for j, k in enumerate(missing):
                reasons = (
                    model.reasons_from(contributions[j, :-1], lane.top_k)
                    if contributions is not None
                    else None
                )
                output = (predicted[j], reasons)
                found[k] = output
                if cache is not None:
                    cache.put(keys[k], output)
                if remote is not None:
                    remote.put(keys[k], output)
        outputs = cast(list[Output], found)  # every None was filled above
        return [o[0] for o in outputs], [o[1] for o in outputs]

    async def _remote_batch(
        self,
        lane: _Lane,
        model: LoadedModel,
        encoded: npt.NDArray[np.float64],
        explain: bool,
    ) -> tuple[list[float], list[list[Reason] | None]] | None:
        """Outputs from memory, then from the remote cache in one round trip, then predicted.

        None when a reload replaced ``model`` during the round trip and some rows still
        need predicting: its native model is freed, so the caller scores afresh.
        """
        assert self.remote is not None
        keys, found = self._batch_keys(lane, model, encoded, explain)
        asked = [k for k, value in enumerate(found) if value is None]
        if asked:
            answers = await self.remote.get_many([keys[k] for k in asked])
            if lane.model is not model and None in answers:
                return None
            cache = self._cache
            for k, value in zip(asked, answers, strict=True):
                if value is not None:
                    found[k] = value
                    if cache is not None:
                        cache.put(keys[k], value)
        return self._fill_batch(lane, model, encoded, explain, keys, found)

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
        batch = self._encode_batch(vertical, leads)
        lane, model, encoded = batch.lane, batch.model, batch.encoded
        if self._cache is None:
            scores = model.predictor.predict_matrix(encoded).tolist()
            contributions = model.contributions(encoded) if explain and batch.valid else None
            explained: list[list[Reason] | None] | None = None
            if contributions is not None:
                explained = [model.reasons_from(c[:-1], lane.top_k) for c in contributions]
        else:
            keys, found = self._batch_keys(lane, model, encoded, explain)
            scores, explained = self._fill_batch(lane, model, encoded, explain, keys, found)
        return self._finish_batch(batch, leads, scores, explained, now)

    async def score_batch_async(
        self,
        vertical: str,
        leads: Sequence[Mapping[str, Any]],
        *,
        explain: bool = False,
        now: float | None = None,
    ) -> list[ScoreResult | LeadFailure]:
        """``score_batch``, consulting the remote cache too (one round trip for the batch).

        Raises:
            UnknownVertical: Not a configured vertical.
            ModelUnavailable: No model installed for it.
        """
        if self.remote is None:
            return self.score_batch(vertical, leads, explain=explain, now=now)
        batch = self._encode_batch(vertical, leads)
        scores: list[float] = []
        explained: list[list[Reason] | None] = []
        if batch.valid:
            outputs = await self._remote_batch(batch.lane, batch.model, batch.encoded, explain)
            if outputs is None:  # a reload freed the model during the wait: start again
                return self.score_batch(vertical, leads, explain=explain, now=now)
            scores, explained = outputs
        return self._finish_batch(batch, leads, scores, explained, now)

    def _encode_batch(self, vertical: str, leads: Sequence[Mapping[str, Any]]) -> _Batch:
        """Validate and encode a batch into its own matrix (safe across an await)."""
        lane = self._lanes.get(vertical)
        if lane is None or lane.model is None:
            self._unavailable(vertical)
        model = lane.model
        encoder = model.encoder
        matrix = np.empty((len(leads), encoder.num_features), dtype=np.float64)
        batch = _Batch(lane, model, len(leads))
        for position, lead in enumerate(leads):
            try:
                if not isinstance(lead, Mapping):
                    raise LeadError("lead_data", "must be an object", "type")
                batch.completeness.append(encoder.encode_into(lead, matrix[len(batch.valid)]))
            except LeadError as exc:
                batch.results[position] = LeadFailure(position, exc.field, exc.reason, exc.code)
                continue
            batch.valid.append(position)
        batch.encoded = matrix[: len(batch.valid)]
        return batch

    def _finish_batch(
        self,
        batch: _Batch,
        leads: Sequence[Mapping[str, Any]],
        scores: list[float],
        explained: list[list[Reason] | None] | None,
        now: float | None,
    ) -> list[ScoreResult | LeadFailure]:
        """Add confidence and price to every valid lead's score; keep the failures."""
        if now is None:
            now = self._clock()
        lane, model, results = batch.lane, batch.model, batch.results
        vertical = model.vertical
        pricer, tracks, currency = lane.pricer, lane.tracks_demand, lane.currency
        threshold = lane.threshold
        for k, position in enumerate(batch.valid):
            score = scores[k]
            rate = self._demand.record(vertical, now) if tracks else 0.0
            price, factors = pricer.price(score, leads[position], now, rate)
            results[position] = ScoreResult(
                score=score,
                confidence=confidence(batch.completeness[k], model.reliability(score)),
                price=price,
                market_factors=factors,
                model_version=model.version,
                accepted=score >= threshold,
                currency=currency,
                reasons=explained[k] if explained is not None else None,
            )
        return [r for r in results if r is not None]
