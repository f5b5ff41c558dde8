"""Samples of scored leads for drift and estimated performance, binned off the request path.

On the request path a scored lead costs one budget check, and while the budget lasts
one append of (the lead as decoded, its score): at most ``SAMPLES_PER_SECOND`` leads
per worker and model are sampled (every lead under light traffic; a fair sample of
each 50 ms tick under heavy traffic: plenty for a PSI over an hour). Once a second
the worker encodes the samples again with the model that scored them, bins them
(``engine.monitoring.drift.DriftBins`` for every feature and the score, and the
200-bin score histogram of CBPE) and adds the counts to the current minute; every
``WRITE_SECONDS`` (or the quality refresh, if shorter) the minutes go to the monitoring
store on its thread, where they add up with the other workers'.

The samples of a model that a reload replaces are binned with that model (each
``ModelSample`` holds its own), so nothing is binned against the wrong reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from api.monitoring_io import StoreIO
from engine.monitoring.drift import DriftBins
from engine.monitoring.performance import score_histogram
from engine.monitoring.quality import SCORE_HISTOGRAM, Role
from engine.monitoring.store import CountRow
from engine.scoring.model import LoadedModel

SAMPLES_PER_SECOND = 100
TICK_SECONDS = 0.05  # the runtime's watcher tick (api.runtime.POLL_SECONDS)
BIN_SECONDS = 1.0
WRITE_SECONDS = 10.0
_PER_TICK = max(1, round(SAMPLES_PER_SECOND * TICK_SECONDS))

Key = tuple[str, str, str, str, int]  # vertical, version, role, name, minute


class ModelSample:
    """The sampled leads of one served model since the last binning."""

    __slots__ = ("bins", "budget", "model", "pending", "role")

    def __init__(self, model: LoadedModel, role: Role) -> None:
        self.model = model
        self.role = role
        self.bins = DriftBins.from_manifest(model.manifest)
        self.budget = _PER_TICK
        self.pending: list[tuple[Mapping[str, Any], float]] = []

    def counts(self) -> dict[str, Any]:
        """Encode and bin what was sampled; empty the sample."""
        pending, self.pending = self.pending, []
        encoder = self.model.encoder
        matrix = np.empty((len(pending), encoder.num_features), dtype=np.float64)
        leads = []
        for row, (lead, _score) in enumerate(pending):
            encoder.encode_into(lead, matrix[row])  # validated when it was scored
            leads.append(lead)
        scores = np.array([score for _lead, score in pending], dtype=np.float64)
        counts: dict[str, Any] = dict(self.bins.count(matrix, leads, scores))
        counts[SCORE_HISTOGRAM] = score_histogram(scores)
        return counts


class QualitySampler:
    """The worker's samples per vertical (see the module docstring)."""

    def __init__(
        self,
        models: Callable[[], Mapping[str, LoadedModel]],
        io: StoreIO,
        write_seconds: float = WRITE_SECONDS,
        clock: Callable[[], float] = time.time,
        challengers: Callable[[], Mapping[str, LoadedModel]] = dict,
    ) -> None:
        self._models = models
        self._challenger_models = challengers
        self._io = io
        self._write_seconds = write_seconds
        self._clock = clock
        self.champions: dict[str, ModelSample] = {}
        self.challengers: dict[str, ModelSample] = {}
        self._retired: list[ModelSample] = []
        self._minutes: dict[Key, Any] = {}
        self._next_bin = 0.0
        self._next_write = 0.0
        self.refresh()

    def take(self, vertical: str, lead: Mapping[str, Any], score: float, version: str) -> None:
        """Sample a lead the vertical's champion ``version`` just scored (the hot path).

        A lead scored by another version (a reload between the install of a model and
        ``refresh``) is not sampled: it would be binned against the wrong reference.
        """
        sample = self.champions.get(vertical)
        if sample is not None and sample.budget and sample.model.version == version:
            sample.budget -= 1
            sample.pending.append((lead, score))

    def take_challenger(
        self, vertical: str, lead: Mapping[str, Any], score: float, version: str
    ) -> None:
        """Sample a lead the vertical's shadow challenger ``version`` just scored."""
        sample = self.challengers.get(vertical)
        if sample is not None and sample.budget and sample.model.version == version:
            sample.budget -= 1
            sample.pending.append((lead, score))

    def refresh(self) -> None:
        """Follow the installed models, champions and challengers (start, every reload)."""
        self.champions = self._follow(self.champions, self._models(), "champion")
        self.challengers = self._follow(self.challengers, self._challenger_models(), "challenger")

    def _follow(
        self, samples: dict[str, ModelSample], models: Mapping[str, LoadedModel], role: Role
    ) -> dict[str, ModelSample]:
        following: dict[str, ModelSample] = {}
        for vertical, model in models.items():
            current = samples.get(vertical)
            if current is not None and current.model is model:
                following[vertical] = current
            else:
                following[vertical] = ModelSample(model, role)
        # Replaced or dropped samples are binned once more, with their own model.
        self._retired.extend(s for v, s in samples.items() if following.get(v) is not s)
        return following

    def tick(self) -> None:
        """Every watcher tick: renew budgets; bin once a second; write every few."""
        for sample in (*self.champions.values(), *self.challengers.values()):
            sample.budget = _PER_TICK
        now = self._clock()
        if now >= self._next_bin:
            self._next_bin = now + BIN_SECONDS
            self._bin(now)
        if now >= self._next_write:
            self._next_write = now + self._write_seconds
            self.write()

    def _bin(self, now: float) -> None:
        minute = int(now // 60)
        samples = [*self.champions.values(), *self.challengers.values(), *self._retired]
        self._retired = []
        for sample in samples:
            if not sample.pending:
                continue
            version = sample.model.version
            vertical = sample.model.vertical
            for name, counts in sample.counts().items():
                key = (vertical, version, sample.role, name, minute)
                found = self._minutes.get(key)
                self._minutes[key] = counts if found is None else found + counts

    def write(self) -> None:
        """Hand the binned minutes to the store's thread."""
        if not self._minutes:
            return
        minutes, self._minutes = self._minutes, {}
        rows = [
            CountRow(vertical, version, role, name, minute, [int(c) for c in counts])
            for (vertical, version, role, name, minute), counts in minutes.items()
        ]
        self._io.submit(lambda store: store.add_counts(rows))

    def close(self) -> None:
        """Bin and write what is left (at worker stop)."""
        self._bin(self._clock())
        self.write()
