"""The served score of every holdout row equals the score training computed for it."""

import numpy as np
import pytest

from engine.scoring.model import load_model
from engine.scoring.result import ScoreResult
from engine.scoring.scorer import Scorer
from engine.store.layout import version_dir


@pytest.mark.parametrize("vertical", ["auto", "home", "health", "life"])
def test_every_holdout_row_scores_identically(vertical, trained, demo_config, model_root, keyring):
    report = trained(vertical)
    scorer = Scorer(demo_config, clock=lambda: 1_700_000_000.0)
    scorer.install(load_model(version_dir(model_root, vertical, "1.0.0"), keyring))
    single = [scorer.score(vertical, lead).score for lead in report.holdout_leads]
    assert single == report.holdout_scores.tolist()  # exact, not approximate
    batch = scorer.score_batch(vertical, report.holdout_leads)
    assert all(isinstance(r, ScoreResult) for r in batch)
    assert [r.score for r in batch if isinstance(r, ScoreResult)] == single
    assert np.isfinite(report.holdout_scores).all()
