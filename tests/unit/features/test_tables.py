import math

import numpy as np
import pytest

from engine.config import FeatureSpec
from engine.features.tables import EncoderTables, fit_categories, fit_token_weights


def test_categories_ordered_by_frequency_and_rare_dropped():
    values = ["b"] * 5 + ["A", "a", "a"] * 3 + ["rare"] + [None] * 4
    assert fit_categories(values, min_count=2) == ["a", "b"]


def test_token_weights_follow_conversion():
    texts = ["doctor"] * 50 + ["student"] * 50 + [None] * 10
    labels = np.array([1] * 40 + [0] * 10 + [1] * 5 + [0] * 45 + [1] * 10, dtype=np.int8)
    weights = fit_token_weights(texts, labels, min_count=5, smoothing=10)
    assert weights["doctor"] > 0 > weights["student"]
    base = labels.mean()
    rate = (40 + 10 * base) / (50 + 10)
    assert math.isclose(
        weights["doctor"], math.log(rate / (1 - rate)) - math.log(base / (1 - base))
    )


def test_rare_tokens_left_out():
    weights = fit_token_weights(
        ["x y"] * 3 + ["y"] * 10, np.array([1, 0] * 6 + [1], np.int8), 5, 20
    )
    assert set(weights) == {"y"}


def test_round_trip_through_files():
    specs = [FeatureSpec("make", "categorical", 0, False), FeatureSpec("job", "text", 1, False)]
    tables = EncoderTables({"make": ["toyota", "ford"]}, {"job": {"nurse": 0.5, "chef": -0.25}})
    files = tables.to_files()
    assert set(files) == {
        "encoders.make.values.npy",
        "encoders.job.tokens.npy",
        "encoders.job.weights.npy",
    }
    again = EncoderTables.from_files(specs, files)
    assert again.categories == tables.categories
    assert again.token_weights == tables.token_weights


def test_missing_or_malformed_tables_are_named():
    specs = [FeatureSpec("job", "text", 0, False)]
    files = EncoderTables({}, {"job": {"a": 1.0}}).to_files()
    with pytest.raises(ValueError, match=r"encoders\.job\.weights\.npy is missing"):
        EncoderTables.from_files(
            specs, {"encoders.job.tokens.npy": files["encoders.job.tokens.npy"]}
        )
    bad = dict(files)
    bad["encoders.job.weights.npy"] = EncoderTables({}, {"job": {"a": 1.0, "b": 2.0}}).to_files()[
        "encoders.job.weights.npy"
    ]
    with pytest.raises(ValueError, match="malformed"):
        EncoderTables.from_files(specs, bad)
