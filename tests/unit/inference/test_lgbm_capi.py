"""Tests for engine.inference.lgbm_capi against real LightGBM models (no mocks).

Every prediction is compared with ``lightgbm.Booster(model_str=...).predict`` on the same rows.
The comparison is bit-for-bit (``view(uint64)``), which implies the 1e-12 tolerance.
"""

from __future__ import annotations

import gc
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.inference.lgbm_capi import LightGBMError, LightGBMPredictor, load_library

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]

NUMERIC_FEATURES = (0, 1, 2, 3, 4, 5)
CATEGORY_SIZES = {6: 3, 7: 8, 8: 12}  # feature index -> number of trained codes 0..K-1
CATEGORICAL_FEATURES = tuple(CATEGORY_SIZES)
NUM_FEATURES = len(NUMERIC_FEATURES) + len(CATEGORICAL_FEATURES)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARAMS = {
    "objective": "binary",
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "seed": 17,
    "verbose": -1,
    "num_leaves": 15,
    "min_data_in_leaf": 10,
    "max_bin": 63,
    # Feature 6 (3 codes) gets one-vs-rest splits, 7 and 8 get many-vs-many bitset splits.
    "max_cat_to_onehot": 4,
    "min_data_per_group": 20,
    "cat_smooth": 5.0,
}


# --------------------------------------------------------------------------- fixtures


@dataclass
class Model:
    name: str
    text: str
    reference: lgb.Booster
    predictor: LightGBMPredictor


@dataclass
class Trained:
    features: np.ndarray
    main: Model
    early: Model
    early_booster: lgb.Booster  # still holds every tree, incl. those after the best one
    split_values: dict[int, list[float]]  # per feature: split thresholds and their neighbours


def _training_data(n: int = 2500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240601)
    numeric = [
        rng.normal(size=n),
        rng.normal(size=n),
        rng.integers(0, 21, n).astype(float),  # discrete: thresholds between integers
        np.where(rng.random(n) < 0.5, 0.0, rng.exponential(size=n)),  # zero-inflated
        rng.lognormal(size=n),
        rng.normal(size=n),
    ]
    codes = [rng.integers(0, size, n).astype(float) for size in CATEGORY_SIZES.values()]
    x = np.column_stack(numeric + codes)
    effect_7 = rng.normal(size=CATEGORY_SIZES[7])
    effect_8 = rng.normal(size=CATEGORY_SIZES[8])
    missing_5 = rng.random(n) < 0.3  # informative missingness
    logit = (
        x[:, 0]
        - 0.5 * x[:, 1] ** 2
        + 0.15 * (x[:, 2] - 10)
        + 0.8 * (x[:, 3] == 0)
        + 0.4 * np.log(x[:, 4])
        + 0.5 * x[:, 5]
        + 1.0 * missing_5
        + 1.0 * (x[:, 6] == 1)
        + effect_7[x[:, 7].astype(int)]
        + effect_8[x[:, 8].astype(int)]
    )
    y = (logit + rng.logistic(size=n) > 0).astype(float)
    x[missing_5, 5] = np.nan
    x[rng.random(x.shape) < 0.08] = np.nan  # NaNs everywhere, categorical columns included
    return x, y


def _dataset(x: np.ndarray, y: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
    return lgb.Dataset(x, y, categorical_feature=list(CATEGORICAL_FEATURES), reference=reference)


def _model(name: str, text: str) -> Model:
    return Model(name, text, lgb.Booster(model_str=text), LightGBMPredictor.from_model_string(text))


def _splits(booster: lgb.Booster) -> Iterator[tuple[int, str, str]]:
    """(feature, decision_type, threshold) of every split in the model's dump."""
    stack = [tree["tree_structure"] for tree in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            yield node["split_feature"], node["decision_type"], str(node["threshold"])
            stack += [node["left_child"], node["right_child"]]


def _split_values(boosters: Sequence[lgb.Booster]) -> dict[int, list[float]]:
    """Numerical thresholds and both neighbouring doubles, and split categories, per feature."""
    found: dict[int, set[float]] = {feature: set() for feature in range(NUM_FEATURES)}
    for booster in boosters:
        for feature, decision_type, threshold in _splits(booster):
            if decision_type == "<=":
                value = float(threshold)
                found[feature] |= {
                    value,
                    math.nextafter(value, math.inf),
                    math.nextafter(value, -math.inf),
                }
                if abs(value) >= 1e300:  # dump_model writes an infinite threshold as ±1e300
                    found[feature].add(math.copysign(math.inf, value))
            else:  # categorical: "1||4||5"
                found[feature] |= {float(code) for code in threshold.split("||")}
    return {feature: sorted(values) for feature, values in found.items()}


@pytest.fixture(scope="module")
def trained() -> Iterator[Trained]:
    x, y = _training_data()
    main = lgb.train({**PARAMS, "learning_rate": 0.1}, _dataset(x, y), num_boost_round=150)

    train_part = _dataset(x[:1800], y[:1800])
    valid_part = _dataset(x[1800:], y[1800:], reference=train_part)
    early = lgb.train(
        {**PARAMS, "learning_rate": 0.3, "num_leaves": 31},
        train_part,
        num_boost_round=400,
        valid_sets=[valid_part],
        callbacks=[lgb.early_stopping(10, verbose=False)],
        keep_training_booster=True,  # keep the trees after the best iteration
    )
    assert 0 < early.best_iteration < early.current_iteration() < 400

    models = (_model("main", main.model_to_string()), _model("early", early.model_to_string()))
    split_values = _split_values([model.reference for model in models])
    assert sum(len(values) for values in split_values.values()) > 100
    yield Trained(x, models[0], models[1], early, split_values)
    for model in models:
        model.predictor.close()


@pytest.fixture(scope="module")
def models(trained: Trained) -> tuple[Model, Model]:
    return trained.main, trained.early


# --------------------------------------------------------------------------- helpers


def assert_bits_equal(got: np.ndarray, reference: object) -> None:
    expected = np.asarray(reference)
    assert got.dtype == expected.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # Bit-identical, not just close (also distinguishes 0.0 from -0.0).
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def assert_matches_booster(models: Sequence[Model], rows: Sequence[Sequence[float]]) -> None:
    matrix = np.array(rows, dtype=np.float64).reshape(-1, NUM_FEATURES)
    for model in models:
        expected = model.reference.predict(matrix)
        assert_bits_equal(model.predictor.predict_matrix(matrix), expected)
        one_by_one = [model.predictor.predict_one(row) for row in matrix.tolist()]
        assert_bits_equal(np.array(one_by_one, dtype=np.float64), expected)


def rows_of(features: Sequence[st.SearchStrategy[float]]) -> st.SearchStrategy[list[list[float]]]:
    assert len(features) == NUM_FEATURES
    return st.lists(st.tuples(*features).map(list), min_size=1, max_size=6)


FINITE = st.floats(allow_nan=False, allow_infinity=False)  # any magnitude, subnormals, -0.0
TYPICAL = st.floats(-30.0, 30.0)
SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf])
ZERO_EDGE = st.sampled_from([0.0, -0.0, 1e-35, -1e-35, 1.0000000180025095e-35, 5e-324, -5e-324])


def unseen_codes(size: int) -> st.SearchStrategy[float]:
    """Category codes never seen in training, and codes that are not codes at all."""
    return st.one_of(
        st.integers(size, 10**9).map(float),  # larger than any trained code
        st.integers(-(10**9), -1).map(float),  # negative
        st.floats(-5.0, size + 5.0).filter(lambda value: not value.is_integer()),  # 2.5 etc.
        st.sampled_from(
            [size - 0.5, 0.5, -0.5, 2.0**31 - 1, 2.0**31, -(2.0**31), -(2.0**31) - 1, 2.0**53]
        ),
        st.sampled_from([1e300, -1e300, 5e-324, -0.0]),
    )


def feature_strategies(
    numeric: st.SearchStrategy[float], categorical: st.SearchStrategy[float] | None = None
) -> list[st.SearchStrategy[float]]:
    return [
        numeric if feature in NUMERIC_FEATURES else (categorical or numeric)
        for feature in range(NUM_FEATURES)
    ]


# --------------------------------------------------------------------------- property tests


@PROPERTY
@given(rows=rows_of(feature_strategies(FINITE)))
def test_arbitrary_finite_floats_match_booster(models, rows):
    assert_matches_booster(models, rows)


@PROPERTY
@given(rows=rows_of(feature_strategies(st.one_of(SPECIAL, TYPICAL, ZERO_EDGE))))
@example(rows=[[math.nan] * NUM_FEATURES, [math.inf] * NUM_FEATURES, [-math.inf] * NUM_FEATURES])
def test_nan_and_infinities_match_booster(models, rows):
    assert_matches_booster(models, rows)


@PROPERTY
@given(data=st.data())
def test_unseen_category_codes_match_booster(models, data):
    features = [
        st.one_of(TYPICAL, st.just(math.nan))
        if feature in NUMERIC_FEATURES
        else st.one_of(unseen_codes(CATEGORY_SIZES[feature]), st.integers(0, 20).map(float))
        for feature in range(NUM_FEATURES)
    ]
    assert_matches_booster(models, data.draw(rows_of(features)))


@PROPERTY
@given(
    masks=st.lists(
        st.lists(st.booleans(), min_size=NUM_FEATURES, max_size=NUM_FEATURES),
        min_size=1,
        max_size=6,
    ),
    fill=st.lists(TYPICAL, min_size=NUM_FEATURES, max_size=NUM_FEATURES),
)
@example(masks=[[True] * NUM_FEATURES], fill=[0.0] * NUM_FEATURES)
def test_missing_values_match_booster(models, masks, fill):
    rows = [
        [math.nan if missing else value for missing, value in zip(mask, fill, strict=True)]
        for mask in masks
    ]
    assert_matches_booster(models, rows)


@PROPERTY
@given(data=st.data())
def test_values_on_split_thresholds_match_booster(trained, models, data):
    features = [
        st.sampled_from(trained.split_values[feature]) if trained.split_values[feature] else TYPICAL
        for feature in range(NUM_FEATURES)
    ]
    assert_matches_booster(models, data.draw(rows_of(features)))


@PROPERTY
@given(data=st.data())
def test_any_mix_of_values_matches_booster(trained, models, data):
    features = []
    for feature in range(NUM_FEATURES):
        choices = [FINITE, SPECIAL, TYPICAL, ZERO_EDGE]
        if trained.split_values[feature]:
            choices.append(st.sampled_from(trained.split_values[feature]))
        if feature in CATEGORY_SIZES:
            choices.append(unseen_codes(CATEGORY_SIZES[feature]))
        features.append(st.one_of(*choices))
    assert_matches_booster(models, data.draw(rows_of(features)))


@PROPERTY
@given(data=st.data())
def test_contributions_match_booster_and_sum_to_raw_score(trained, models, data):
    features = [
        st.one_of(TYPICAL, SPECIAL, st.sampled_from(trained.split_values[feature]))
        if feature in NUMERIC_FEATURES
        else st.one_of(st.integers(0, 15).map(float), unseen_codes(CATEGORY_SIZES[feature]))
        for feature in range(NUM_FEATURES)
    ]
    matrix = np.array(data.draw(rows_of(features)), dtype=np.float64)
    for model in models:
        contributions = model.predictor.contributions(matrix)
        assert contributions.shape == (matrix.shape[0], NUM_FEATURES + 1)
        assert_bits_equal(contributions, model.reference.predict(matrix, pred_contrib=True))
        raw = model.reference.predict(matrix, raw_score=True)
        np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- example tests


def test_all_features_missing(models):
    for model in models:
        expected = model.reference.predict(np.full((1, NUM_FEATURES), np.nan))[0]
        for index in range(NUM_FEATURES):
            model.predictor.row[index] = math.nan
        assert model.predictor.predict_row() == expected
        assert model.predictor.predict_one([math.nan] * NUM_FEATURES) == expected
        assert 0.0 < expected < 1.0


def test_contributions_on_training_rows(trained, models):
    matrix = trained.features[:500]
    for model in models:
        contributions = model.predictor.contributions(matrix)
        assert_bits_equal(contributions, model.reference.predict(matrix, pred_contrib=True))
        raw = model.reference.predict(matrix, raw_score=True)
        np.testing.assert_allclose(contributions.sum(axis=1), raw, rtol=0, atol=1e-9)
        # The last column is the expected value: the same for every row.
        assert np.all(contributions[:, -1] == contributions[0, -1])


def test_predict_row_reads_the_row_buffer(trained, models):
    for model in models:
        predictor = model.predictor
        assert len(predictor.row) == predictor.num_features == NUM_FEATURES
        for values in trained.features[:50]:
            for index, value in enumerate(values):
                predictor.row[index] = value
            expected = model.reference.predict(values.reshape(1, -1))[0]
            assert predictor.predict_row() == expected
            assert predictor.predict_row() == expected  # the buffer keeps its values
            assert list(predictor.row) == pytest.approx(list(values), nan_ok=True)


def test_early_stopped_model_uses_best_iteration(trained):
    booster, model = trained.early_booster, trained.early
    matrix = trained.features
    ours = model.predictor.predict_matrix(matrix)
    assert_bits_equal(ours, model.reference.predict(matrix))  # Booster(model_str=...)
    assert_bits_equal(ours, booster.predict(matrix))  # default: best iteration
    assert_bits_equal(ours, booster.predict(matrix, num_iteration=booster.best_iteration))
    every_tree = booster.predict(matrix, num_iteration=-1)
    assert np.max(np.abs(ours - every_tree)) > 1e-6  # the extra trees would change scores
    for index in range(0, len(matrix), 97):
        assert model.predictor.predict_one(matrix[index]) == ours[index]


def test_text_with_every_tree_predicts_with_every_tree(trained):
    booster = trained.early_booster
    text = booster.model_to_string(num_iteration=-1)
    matrix = trained.features[:300]
    with LightGBMPredictor.from_model_string(text) as predictor:
        ours = predictor.predict_matrix(matrix)
    assert_bits_equal(ours, lgb.Booster(model_str=text).predict(matrix))
    assert_bits_equal(ours, booster.predict(matrix, num_iteration=-1))


def test_accepts_bytes_and_odd_matrix_layouts(trained):
    model = trained.main
    matrix = trained.features[:200]
    expected = model.reference.predict(matrix)
    with LightGBMPredictor.from_model_string(model.text.encode()) as predictor:
        assert_bits_equal(predictor.predict_matrix(matrix), expected)
        assert_bits_equal(predictor.predict_matrix(np.asfortranarray(matrix)), expected)
        strided = np.repeat(matrix, 2, axis=0)[::2]
        assert not strided.flags.c_contiguous
        assert_bits_equal(predictor.predict_matrix(strided), expected)
        assert_bits_equal(predictor.predict_matrix(matrix.tolist()), expected)
        as_float32 = matrix.astype(np.float32)
        assert_bits_equal(predictor.predict_matrix(as_float32), model.reference.predict(as_float32))
        assert_bits_equal(predictor.predict_one(tuple(matrix[0])) * np.ones(1), expected[:1])


def test_zero_rows(models):
    for model in models:
        empty = np.empty((0, NUM_FEATURES))
        predictions = model.predictor.predict_matrix(empty)
        assert predictions.shape == (0,)
        assert predictions.dtype == np.float64
        contributions = model.predictor.contributions(empty)
        assert contributions.shape == (0, NUM_FEATURES + 1)
        assert contributions.dtype == np.float64


@pytest.mark.parametrize("width", [0, 1, NUM_FEATURES - 1, NUM_FEATURES + 1])
def test_wrong_width_is_a_value_error(models, width):
    predictor = models[0].predictor
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} feature values"):
        predictor.predict_one([0.0] * width)
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} columns"):
        predictor.predict_matrix(np.zeros((3, width)))
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} columns"):
        predictor.contributions(np.zeros((3, width)))


@pytest.mark.parametrize(
    "shape", [(), (NUM_FEATURES,), (2, 3, NUM_FEATURES), (1, 1, 1, NUM_FEATURES)]
)
def test_matrix_must_be_two_dimensional(models, shape):
    predictor = models[0].predictor
    with pytest.raises(ValueError, match="2-D"):
        predictor.predict_matrix(np.zeros(shape))
    with pytest.raises(ValueError, match="2-D"):
        predictor.contributions(np.zeros(shape))


def test_row_and_width_cannot_be_rebound(models):
    predictor = models[0].predictor
    with pytest.raises(AttributeError, match="row"):
        predictor.row = (type(predictor.row))()
    with pytest.raises(AttributeError, match="num_features"):
        predictor.num_features = 3
    assert predictor.num_features == NUM_FEATURES


def _corrupt(text: str, key: str, change: Callable[[str], str]) -> str:
    """Change the first value of ``key=`` in tree 3 without changing the text's length."""
    position = text.index(f"\n{key}=", text.index("Tree=3")) + len(key) + 2
    end = text.index("\n", position)
    value = text[position:end]
    new = change(value)
    assert len(new) == len(value)
    assert new != value
    return text[:position] + new + text[end:]


def _other_leaf_count(value: str) -> str:
    return str(int(value) + 1) if len(str(int(value) + 1)) == len(value) else str(int(value) - 1)


BAD_TEXTS = {
    "empty": "",
    "garbage": "this is not a model",
    "header only": "tree\nversion=v4\n",
    "nul byte": "tree\nversion=v4\0num_class=1\n",
    "bad tree_sizes": "tree\nversion=v4\nnum_class=1\ntree_sizes=12 abc\n\nTree=0\n",
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_unparsable_text_raises_at_load(name):
    with pytest.raises(LightGBMError):
        LightGBMPredictor.from_model_string(BAD_TEXTS[name])


def test_load_error_carries_lightgbm_message():
    with pytest.raises(LightGBMError, match=r"LGBM_BoosterLoadModelFromString.*number of classes"):
        LightGBMPredictor.from_model_string(b"this is not a model")
    assert issubclass(LightGBMError, EngineError)


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.35, 0.5])
def test_truncated_text_raises_instead_of_reading_past_the_end(trained, fraction):
    # LightGBM itself would jump past the end of such text by the tree_sizes header and
    # abort the process; the predictor must refuse it with an exception.
    text = trained.main.text
    assert text.index("end of trees") > len(text) * 0.5
    with pytest.raises(LightGBMError, match="truncated"):
        LightGBMPredictor.from_model_string(text[: int(len(text) * fraction)])


@pytest.mark.parametrize(
    ("key", "change", "message"),
    [
        ("num_leaves", _other_leaf_count, "Check failed"),
        ("threshold", lambda value: "x" + value[1:], "no conversion to double"),
        ("internal_value", lambda value: "y" + value[1:], "Unknown token"),
    ],
)
def test_corrupted_tree_raises_with_lightgbm_message(trained, key, change, message):
    # In LightGBM's parallel tree parser such an error aborts the process; it must be an
    # ordinary LightGBMError here.
    text = _corrupt(trained.main.text, key, change)
    with pytest.raises(LightGBMError, match=message):
        LightGBMPredictor.from_model_string(text)


def test_multiclass_model_is_rejected():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4))
    y = rng.integers(0, 3, 300)
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=3)
    with pytest.raises(LightGBMError, match="3 outputs per row"):
        LightGBMPredictor.from_model_string(booster.model_to_string())


def test_close_is_idempotent_and_use_after_close_raises(trained):
    predictor = LightGBMPredictor.from_model_string(trained.main.text)
    predictor.close()
    predictor.close()
    matrix = np.zeros((2, NUM_FEATURES))
    with pytest.raises(LightGBMError, match="closed"):
        predictor.predict_row()
    with pytest.raises(LightGBMError, match="closed"):
        predictor.predict_one([0.0] * NUM_FEATURES)
    with pytest.raises(LightGBMError, match="closed"):
        predictor.predict_matrix(matrix)
    with pytest.raises(LightGBMError, match="closed"):
        predictor.contributions(matrix)
    predictor.close()


def test_context_manager_closes(trained):
    with LightGBMPredictor.from_model_string(trained.main.text) as predictor:
        assert 0.0 < predictor.predict_one([1.0] * NUM_FEATURES) < 1.0
    with pytest.raises(LightGBMError, match="closed"):
        predictor.predict_row()


def test_garbage_collection_frees_without_errors(trained):
    # Unraisable exceptions in __del__ fail the run (pytest filterwarnings = error).
    for _ in range(20):
        predictor = LightGBMPredictor.from_model_string(trained.main.text)
        predictor.predict_one([0.5] * NUM_FEATURES)
        del predictor
    gc.collect()


def test_library_loads_once_without_importing_the_lightgbm_package(trained, tmp_path):
    assert load_library() is load_library()
    model_path = tmp_path / "model.txt"
    model_path.write_text(trained.main.text)
    row = [0.3, -1.2, 7.0, 0.0, 1.5, math.nan, 1.0, 4.0, 11.0]
    script = (
        "import sys\n"
        "from math import nan\n"
        "from engine.inference.lgbm_capi import LightGBMPredictor, load_library\n"
        "assert load_library() is load_library()\n"
        f"predictor = LightGBMPredictor.from_model_string(open({str(model_path)!r}).read())\n"
        f"print(repr(predictor.predict_one({row!r})))\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm package was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    expected = trained.main.reference.predict(np.array([row]))[0]
    assert float(result.stdout.strip()) == expected


def test_dumped_thresholds_are_exact_doubles_of_the_model_text(trained):
    # The threshold test is only meaningful if dump_model() gives the exact doubles the
    # trees compare against (the model text's numerical thresholds).
    text_values = {
        float(value)
        for line in re.findall(r"^threshold=(.*)$", trained.main.text, flags=re.MULTILINE)
        for value in line.split()
    }
    dumped = {
        float(threshold)
        for _, decision_type, threshold in _splits(trained.main.reference)
        if decision_type == "<="
    }
    assert len(dumped) > 50
    # Infinite thresholds (splits that only separate NaN) are dumped as ±1e300.
    assert {value for value in dumped if abs(value) < 1e300} <= text_values
    assert {math.copysign(math.inf, value) for value in dumped if abs(value) >= 1e300} <= (
        text_values
    )


def test_split_values_sit_on_decision_boundaries(trained):
    # Premise of the threshold test: stepping from a threshold to the next double up
    # changes the path through the trees.
    predictor = trained.main.predictor
    base = np.nan_to_num(trained.features[0], nan=0.0)
    flips = 0
    for feature, decision_type, threshold in _splits(trained.main.reference):
        if decision_type != "<=" or abs(value := float(threshold)) >= 1e300:
            continue
        on, above = base.copy(), base.copy()
        on[feature], above[feature] = value, math.nextafter(value, math.inf)
        flips += predictor.predict_one(on) != predictor.predict_one(above)
    assert flips > 20
