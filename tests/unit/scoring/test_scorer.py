import math

import numpy as np
import pytest

from engine.errors import LeadError, ModelUnavailable, UnknownVertical
from engine.scoring.model import load_model
from engine.scoring.result import LeadFailure, ScoreResult
from engine.scoring.scorer import Scorer
from engine.store.layout import version_dir
from tests.conftest import full_lead

NOW = 1_764_000_000.0  # fixed clock: prices are reproducible


@pytest.fixture(scope="module")
def auto(trained, model_root, keyring):
    report = trained("auto")
    model = load_model(version_dir(model_root, "auto", "1.0.0"), keyring)
    return report, model


@pytest.fixture
def scorer(demo_config, auto):
    scorer = Scorer(demo_config, clock=lambda: NOW)
    scorer.install(auto[1])
    return scorer


def test_result_has_every_field(scorer, auto):
    lead = full_lead(auto[0])
    result = scorer.score("auto", lead)
    assert 0 < result.score < 1 and 0 <= result.confidence <= 1
    assert result.model_version == "1.0.0" and result.currency == "USD"
    assert result.accepted == (result.score >= 0.65)
    assert set(result.market_factors) == {"peak_hours", "day_of_week", "demand", "location"}
    assert 5.0 <= result.price <= 120.0 and result.reasons is None


def test_missing_important_features_lower_confidence(scorer, auto):
    report, model = auto
    importance = report.manifest.importance
    ranked = [n for n in sorted(importance, key=importance.get, reverse=True) if n != "age"]
    row = np.empty(model.encoder.num_features)
    lead = next(
        lead
        for lead in report.holdout_leads
        if model.encoder.encode_into(lead, row) == pytest.approx(1.0)
    )
    full = scorer.score("auto", lead).confidence
    missing = {**lead, **{name: None for name in ranked[:3]}}
    kinds = {f.name: f.kind for f in report.manifest.features}
    unknown = {
        **lead,
        **{n: ("never-seen-zz" if kinds[n] != "numerical" else None) for n in ranked[:3]},
    }
    assert scorer.score("auto", missing).confidence < full
    assert scorer.score("auto", unknown).confidence < full
    assert model.encoder.encode_into(missing, row) < 1.0


def test_reasons_are_the_strongest_contributions(scorer, auto):
    lead = full_lead(auto[0])
    result = scorer.score("auto", lead, explain=True)
    assert result.reasons is not None and 1 <= len(result.reasons) <= 3
    sizes = [abs(r.contribution) for r in result.reasons]
    assert sizes == sorted(sizes, reverse=True)
    for reason in result.reasons:
        assert (reason.direction == "up") == (reason.contribution > 0)
    # Reasons are computed from the same row: scoring again gives the same score.
    assert scorer.score("auto", lead).score == result.score


def test_same_lead_same_clock_same_demand_same_price(demo_config, auto):
    lead = full_lead(auto[0])
    prices = []
    for _ in range(2):
        fresh = Scorer(demo_config, clock=lambda: NOW)
        fresh.install(auto[1])
        prices.append(fresh.score("auto", lead))
    assert prices[0] == prices[1]


def test_demand_raises_price_as_volume_grows(scorer, auto):
    lead = full_lead(auto[0])
    first = scorer.score("auto", lead, now=NOW)
    for _ in range(2000):
        scorer.score("auto", lead, now=NOW)
    later = scorer.score("auto", lead, now=NOW)
    assert later.market_factors["demand"] > first.market_factors["demand"]
    assert later.price >= first.price


def test_errors(scorer, demo_config, auto):
    with pytest.raises(UnknownVertical, match="boat"):
        scorer.score("boat", {})
    with pytest.raises(ModelUnavailable):
        scorer.score("home", {})
    with pytest.raises(LeadError) as info:
        scorer.score("auto", {"age": 12})
    assert info.value.field == "lead_data.age"
    with pytest.raises(LeadError, match="must be an object"):
        scorer.score("auto", ["not", "a", "mapping"])
    with pytest.raises(UnknownVertical):
        scorer.model("boat")
    with pytest.raises(ModelUnavailable):
        scorer.score_batch("life", [{}])


def test_batch_isolates_bad_leads(scorer, auto):
    report = auto[0]
    good = report.holdout_leads[:5]
    leads = [good[0], {"age": "old"}, good[1], "nope", *good[2:]]
    results = scorer.score_batch("auto", leads, explain=True)
    assert len(results) == len(leads)
    assert isinstance(results[1], LeadFailure) and results[1].field == "lead_data.age"
    assert results[1].index == 1 and results[1].code == "type"
    assert isinstance(results[3], LeadFailure) and results[3].field == "lead_data"
    scored = [r for r in results if isinstance(r, ScoreResult)]
    assert [r.score for r in scored] == report.holdout_scores[:5].tolist()
    single = scorer.score("auto", good[0], explain=True)
    assert scored[0].reasons is not None and single.reasons is not None
    assert [r.feature for r in scored[0].reasons] == [r.feature for r in single.reasons]
    assert all(
        math.isclose(a.contribution, b.contribution, abs_tol=1e-9)
        for a, b in zip(scored[0].reasons, single.reasons, strict=False)
    )


def test_empty_batch(scorer):
    assert scorer.score_batch("auto", []) == []


def test_install_swaps_and_reports_version(demo_config, auto, trained, model_root, keyring):
    scorer = Scorer(demo_config)
    assert scorer.install(auto[1]) is None
    again = load_model(version_dir(model_root, "auto", "1.0.0"), keyring)
    assert scorer.install(again) is auto[1]
    assert scorer.models["auto"] is again and scorer.threshold("auto") == 0.65
