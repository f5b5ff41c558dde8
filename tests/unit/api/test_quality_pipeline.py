"""The worker's side of model quality, with a real model and a real SQLite store:
sampling and binning, remembering leads, the snapshot, and the master's export.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from api.lead_keys import LeadIdHasher
from api.lead_memory import LeadMemory
from api.monitoring_io import StoreIO
from api.quality import QualityCollector, read_snapshot, snapshot_path, write_snapshot
from api.quality_sampler import _PER_TICK, QualitySampler
from engine.monitoring.drift import DriftBins
from engine.monitoring.quality import SCORE_HISTOGRAM, ServedModel, compute_snapshot
from engine.monitoring.sqlite_store import open_sqlite_store
from engine.monitoring.store import Outcome
from engine.scoring.model import load_model
from engine.scoring.scorer import Scorer


@pytest.fixture
def io(tmp_path):
    store, _ = open_sqlite_store(tmp_path / "monitoring.db")
    handle = StoreIO(store, LeadIdHasher(b"k" * 32))
    yield handle
    handle.close()


@pytest.fixture(scope="module")
def served(trained, keyring, demo_config):
    report = trained("health")
    model = load_model(report.path, keyring)
    scorer = Scorer(demo_config)
    scorer.install(model)
    return report, model, scorer


def drain(io: StoreIO) -> None:
    io.submit(lambda store: None).result(timeout=10)


def test_the_sampler_bins_what_it_sampled_with_its_model(io, served):
    report, model, scorer = served
    clock = [1_800_000_000.0]
    sampler = QualitySampler(lambda: {"health": model}, io, write_seconds=0, clock=lambda: clock[0])
    leads = [dict(lead) for lead in report.holdout_leads[:40]]
    taken = 0
    for lead in leads:
        result = scorer.score("health", lead)
        before = len(sampler.champions["health"].pending)
        sampler.take("health", lead, result.score, result.model_version)
        taken += len(sampler.champions["health"].pending) - before
    assert taken == _PER_TICK  # the budget of one tick, the rest unsampled
    sampler.take("health", leads[0], 0.5, "9.9.9")  # another version's score: not sampled
    assert len(sampler.champions["health"].pending) == _PER_TICK
    sampler.tick()  # bins (due) and writes (write_seconds=0)
    drain(io)
    since = clock[0] - 60
    histogram = io.store.counts("health", model.version, "champion", SCORE_HISTOGRAM, since)
    assert histogram is not None and sum(histogram) == _PER_TICK
    bins = DriftBins.from_manifest(model.manifest)
    for name in bins.names:
        counts = io.store.counts("health", model.version, "champion", name, since)
        assert counts is not None and len(counts) == bins.sizes[name]
        assert sum(counts) == _PER_TICK  # every sampled lead lands in one bin per feature
    # The next tick renews the budget (binning waits for the next second).
    sampler.tick()
    sample = sampler.champions["health"]
    assert sample.budget == _PER_TICK and not sample.pending
    sampler.take("health", leads[0], scorer.score("health", leads[0]).score, model.version)
    assert len(sample.pending) == 1 and sample.budget == _PER_TICK - 1


def test_a_reload_bins_old_samples_with_the_old_model(io, served, trained, keyring):
    _, model, scorer = served
    installed = {"health": model}
    sampler = QualitySampler(lambda: dict(installed), io, write_seconds=0)
    lead = dict(served[0].holdout_leads[0])
    sampler.take("health", lead, scorer.score("health", lead).score, model.version)
    old = sampler.champions["health"]
    replacement = load_model(served[0].path, keyring)  # another object: a reload
    installed["health"] = replacement
    sampler.refresh()
    assert sampler.champions["health"] is not old
    assert sampler.champions["health"].model is replacement
    sampler.close()
    drain(io)
    counts = io.store.counts("health", model.version, "champion", "__score__", time.time() - 60)
    assert counts is not None and sum(counts) == 1


def test_lead_memory_hands_leads_to_the_store_and_bounds_its_backlog(io, served):
    report, _, scorer = served
    memory = LeadMemory(io, "unit", capacity=3)
    result = scorer.score("health", dict(report.holdout_leads[0]))
    for i in range(5):
        memory.keep(f"lead-{i}", "health", result)
    memory.flush()  # five over a capacity of three: the two oldest are dropped
    drain(io)
    outcomes = [Outcome(io.hash_lead_id(f"lead-{i}"), True, time.time()) for i in range(5)]
    statuses = io.store.record_outcomes(outcomes, time.time())
    assert statuses == ["unknown", "unknown", "recorded", "recorded", "recorded"]
    # The store knows them by the keyed hash only: the ids themselves are unknown to it.
    assert io.store.record_outcomes([Outcome("lead-4", True, time.time())], time.time()) == [
        "unknown"
    ]


def test_snapshot_round_trip_and_export(io, served, tmp_path):
    report, model, scorer = served
    now = time.time()
    leads = [dict(lead) for lead in report.holdout_leads[:200]]
    memory = LeadMemory(io, "unit")
    scores = []
    for i, lead in enumerate(leads):
        result = scorer.score("health", lead)
        scores.append(result.score)
        memory.keep(f"h-{i}", "health", result)
    memory.flush()
    drain(io)
    labels = [bool(label) for label in report.holdout_labels[:200]]
    io.store.record_outcomes(
        [Outcome(io.hash_lead_id(f"h-{i}"), labels[i], now) for i in range(200)], now + 1
    )
    served_models = [ServedModel("health", "champion", model.manifest, scorer.threshold("health"))]
    snapshot = compute_snapshot(io.store, served_models, [86400.0], 3600.0, now + 2)
    realized = next(r for r in snapshot.performance if r.kind == "realized")
    assert realized.leads == 200 and realized.window == "24h"
    assert realized.acceptance_rate == pytest.approx(
        float(np.mean(np.array(scores) >= scorer.threshold("health")))
    )
    holdout = next(r for r in snapshot.performance if r.kind == "holdout")
    assert holdout.auc == model.manifest.metrics.auc
    path = snapshot_path(tmp_path)
    assert read_snapshot(path) is None  # none yet
    write_snapshot(path, snapshot)
    assert read_snapshot(path) == snapshot
    families = {m.name: m for m in QualityCollector(path, "unit").collect()}
    auc = [
        s
        for s in families["ml_model_performance"].samples
        if s.labels["kind"] == "realized" and s.labels["metric"] == "auc"
    ]
    assert len(auc) == 1 and auc[0].value == realized.auc
    assert auc[0].labels["version"] == model.version and auc[0].labels["window"] == "24h"
    path.write_bytes(b"{not json")
    assert read_snapshot(path) is None
    assert list(QualityCollector(path, "unit").collect()) == []
