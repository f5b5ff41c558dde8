"""The load test's leads, checked by the real engine with a really trained model."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from engine.errors import LeadError
from engine.scoring.model import load_model
from engine.scoring.result import LeadFailure
from engine.scoring.scorer import Scorer
from engine.store.layout import version_dir
from loadtests.leads import INVALID_CASES, LeadPool

# Cases the engine refuses itself; the others (unknown vertical, unknown top-level
# field, truncated JSON) are the HTTP layer's, checked against the real service in
# tests/integration/test_loadtest.py.
ENGINE_CASES = {
    "number as text": "type",
    "required field missing": "missing",
    "out of range": "range",
}


@pytest.fixture(scope="module")
def scorer(trained, model_root, keyring, demo_config):
    trained("auto")
    model = load_model(version_dir(model_root, "auto", "1.0.0"), keyring)
    scorer = Scorer(demo_config, clock=lambda: 1_764_000_000.0)
    scorer.install(model)
    yield scorer
    model.close()


@pytest.fixture(scope="module")
def pool(demo_config):
    return LeadPool({"auto": 3, "life": 1}, 400, seed=5, config=demo_config)


def test_every_pooled_lead_scores_and_scores_spread(scorer, pool):
    leads = pool.leads["auto"]
    results = scorer.score_batch("auto", [lead.data for lead in leads])
    assert not [r for r in results if isinstance(r, LeadFailure)]
    scores = [r.score for r in results]
    assert max(scores) - min(scores) > 0.5  # production-like spread, not one lead repeated
    assert len({r.price for r in results}) > 50
    assert 0.1 < sum(lead.converted for lead in leads) / len(leads) < 0.6


def test_numbers_are_json_numbers_and_missing_cells_are_left_out(pool, demo_config):
    numerical = set(demo_config.verticals["auto"].feature_config.numerical)
    for lead in pool.leads["auto"]:
        assert all(isinstance(lead.data[n], int | float) for n in numerical & set(lead.data))
        assert "" not in lead.data.values()
    assert any(len(lead.data) < 9 for lead in pool.leads["auto"])  # some cells missing
    assert isinstance(pool.leads["auto"][0].data["age"], int)


def test_verticals_are_drawn_by_weight(pool):
    rng = random.Random(3)
    drawn = Counter(pool.draw(rng).vertical for _ in range(4000))
    assert drawn["auto"] / 4000 == pytest.approx(0.75, abs=0.03)
    assert pool.draw(rng, "life").vertical == "life"


def test_the_same_seed_gives_the_same_leads(demo_config):
    one = LeadPool({"home": 1}, 50, seed=9, config=demo_config)
    two = LeadPool({"home": 1}, 50, seed=9, config=demo_config)
    other = LeadPool({"home": 1}, 50, seed=10, config=demo_config)
    assert one.leads == two.leads and one.leads != other.leads


def test_an_unknown_vertical_is_refused(demo_config):
    with pytest.raises(ValueError, match="no synthetic leads for boat"):
        LeadPool({"auto": 1, "boat": 1}, 10, seed=1, config=demo_config)


@pytest.mark.parametrize("name", sorted(ENGINE_CASES))
def test_each_invalid_lead_is_refused_by_the_engine(scorer, pool, demo_config, name):
    case = next(c for c in INVALID_CASES if c.name == name)
    assert (case.status, case.error_type) == (422, "validation_error")
    for lead in pool.leads["auto"][:20]:
        request = json.loads(case.body(lead, demo_config))
        with pytest.raises(LeadError) as refused:
            scorer.score(request["vertical"], request["lead_data"])
        assert refused.value.code == ENGINE_CASES[name]


def test_the_http_level_cases_break_the_request_not_the_lead(pool, demo_config):
    lead = pool.leads["life"][0]
    bodies = {c.name: c.body(lead, demo_config) for c in INVALID_CASES}
    assert json.loads(bodies["unknown vertical"])["vertical"] == "boat"
    assert set(json.loads(bodies["unknown field"])) == {"vertical", "lead_data", "priority"}
    with pytest.raises(ValueError):
        json.loads(bodies["truncated json"])
