"""Tests for the tree layout compiler and the compiled tree kernel, against real LightGBM.

Every prediction is compared bit for bit (``view(uint64)``) with ``lightgbm.Booster.predict``
on the same rows, through the kernel's batch path, its single-row path (``row`` +
``predict_row``) and its raw score; the C-API ``LightGBMPredictor`` is checked to agree too.
The models, data and value strategies are the ones of ``test_lgbm_capi.py``, plus models made
for the kernel's edge cases: zero-as-missing splits, regression, a non-default sigmoid with
internal values LightGBM parses imprecisely, a single-leaf tree, and categorical splits of
hundreds of levels with huge category ids. Layout files are read through ``mmap`` as in
service, and truncated, corrupted and hostile (checksum recomputed) layouts must raise.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import EngineError
from engine.inference._tree_kernel import Kernel
from engine.inference.lgbm_capi import LightGBMPredictor
from engine.inference.tree_kernel import KernelClosed, TreeKernel
from engine.inference.tree_layout import (
    HEADER_SIZE,
    MAX_TREE_DEPTH,
    NODE_DTYPE,
    OBJECTIVE_BINARY,
    OBJECTIVE_REGRESSION,
    TREE_DTYPE,
    LayoutError,
    UnsupportedModel,
    compile_model,
    layout_checksum,
    lightgbm_atof,
    read_header,
    write_layout,
)
from tests.conftest import BANK_CSV
from tests.unit.inference.test_lgbm_capi import (
    CATEGORY_SIZES,
    FINITE,
    NUM_FEATURES,
    NUMERIC_FEATURES,
    PARAMS,
    SPECIAL,
    TYPICAL,
    ZERO_EDGE,
    _dataset,
    _split_values,
    _splits,
    _training_data,
    assert_bits_equal,
    feature_strategies,
    rows_of,
    unseen_codes,
)

pytestmark = pytest.mark.slow

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The many-level categorical model: two categorical features with hundreds of levels and a
# few huge, sparse ids (bitsets of thousands of words), and two numeric features.
MANY_LEVELS = 300
HUGE_IDS = (4_000, 20_011, 65_537)
WIDE_FEATURES = 4


# --------------------------------------------------------------------------- fixtures


@dataclass
class Model:
    name: str
    text: str
    booster: lgb.Booster
    capi: LightGBMPredictor
    kernel: TreeKernel  # mapped from a layout file, as the service will


@dataclass
class Models:
    features: np.ndarray
    family: list[Model]  # the 9-feature models of test_lgbm_capi's data
    wide: Model  # the many-level categorical model
    early_booster: lgb.Booster
    split_values: dict[int, list[float]]


def _single_leaf_spliced(text: str, tree: int, value: float) -> str:
    """``text`` with tree ``tree`` replaced by a single leaf, as LightGBM writes one."""
    start = text.index(f"Tree={tree}\n")
    end = text.index("\n\n\n", start) + 3
    block = (
        f"Tree={tree}\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\n"
        "decision_type=\nleft_child=\nright_child=\n"
        f"leaf_value={value!r}\nleaf_weight=\nleaf_count=100\ninternal_value=\n"
        "internal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\n"
    )
    spliced = text[:start] + block + text[end:]
    return re.sub(r"^tree_sizes=.*\n", "", spliced, flags=re.MULTILINE)


def _wide_data(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(99)
    codes = rng.integers(0, MANY_LEVELS, size=(n, 2)).astype(float)
    sparse = rng.random((n, 2)) < 0.05
    codes[sparse] = rng.choice(HUGE_IDS, size=int(sparse.sum()))
    numeric = rng.normal(size=(n, 2))
    x = np.column_stack([codes, numeric])
    effect = rng.normal(size=max(HUGE_IDS) + 1)
    logit = effect[codes[:, 0].astype(int)] + effect[codes[:, 1].astype(int) // 7] + numeric[:, 0]
    y = (logit + rng.logistic(size=n) > 0).astype(float)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x, y


def _make(name: str, text: str, directory: Path) -> Model:
    path = directory / f"{name}.layout"
    write_layout(text, path)
    return Model(
        name,
        text,
        lgb.Booster(model_str=text),
        LightGBMPredictor.from_model_string(text),
        TreeKernel.open(path),
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Models]:
    directory = tmp_path_factory.mktemp("layouts")
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
        keep_training_booster=True,
    )
    zero = lgb.train({**PARAMS, "zero_as_missing": True}, _dataset(x, y), num_boost_round=60)
    target = np.nan_to_num(x[:, 0]) + 0.3 * np.nan_to_num(x[:, 6])
    regression = lgb.train(
        {**PARAMS, "objective": "regression"}, _dataset(x, target), num_boost_round=40
    )
    # sigmoid 0.7 and a tiny learning rate: internal values written as "-3.01746e-09", which
    # LightGBM's Common::Atof reads differently from a correctly rounded parse.
    precise = lgb.train(
        {**PARAMS, "sigmoid": 0.7, "learning_rate": 0.001, "num_leaves": 31},
        _dataset(x, y),
        num_boost_round=40,
    )
    wide_x, wide_y = _wide_data()
    wide = lgb.train(
        {
            **PARAMS,
            "max_cat_to_onehot": 4,
            "max_cat_threshold": 64,
            "min_data_per_group": 5,
            "cat_smooth": 1.0,
            "num_leaves": 31,
        },
        lgb.Dataset(wide_x, wide_y, categorical_feature=[0, 1]),
        num_boost_round=60,
    )
    family = [
        _make("main", main.model_to_string(), directory),
        _make("early", early.model_to_string(), directory),
        _make("zero_as_missing", zero.model_to_string(), directory),
        _make("regression", regression.model_to_string(), directory),
        _make("sigmoid_atof", precise.model_to_string(), directory),
        _make("single_leaf", _single_leaf_spliced(main.model_to_string(), 3, 0.125), directory),
    ]
    wide_model = _make("wide", wide.model_to_string(), directory)
    split_values = _split_values([model.booster for model in family])
    yield Models(x, family, wide_model, early, split_values)
    for model in [*family, wide_model]:
        model.kernel.close()
        model.capi.close()


def _bank_data() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The shared bank-marketing set as LightGBM takes it: text columns as category codes."""
    with BANK_CSV.open(newline="") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        columns = list(zip(*reader, strict=True))
    features, categorical = [], []
    for index, column in enumerate(columns[:-1]):
        try:
            features.append(np.array(column, dtype=np.float64))
        except ValueError:
            codes = {value: code for code, value in enumerate(sorted(set(column)))}
            features.append(np.array([codes[value] for value in column], dtype=np.float64))
            categorical.append(index)
    labels = np.array([value == "yes" for value in columns[-1]], dtype=np.float64)
    return np.column_stack(features), labels, categorical


@dataclass
class Large:
    model: Model
    features: np.ndarray
    split_values: dict[int, list[float]]


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Large]:
    """A large model on real data: 255-leaf trees (deep, features split again and again
    along a path: TreeSHAP's unwinding) with categorical splits, on 45,211 real rows."""
    if not BANK_CSV.exists():
        pytest.skip(f"the shared bank data set is not at {BANK_CSV}")
    x, y, categorical = _bank_data()
    params = {
        **PARAMS,
        "num_leaves": 255,
        "min_data_in_leaf": 3,
        "learning_rate": 0.05,
        "max_bin": 255,
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
    }
    booster = lgb.train(
        params, lgb.Dataset(x, y, categorical_feature=categorical), num_boost_round=120
    )
    model = _make("bank", booster.model_to_string(), tmp_path_factory.mktemp("large"))
    found: dict[int, set[float]] = {feature: set() for feature in range(x.shape[1])}
    for feature, decision_type, threshold in _splits(booster):
        if decision_type == "<=":
            value = float(threshold)
            found[feature] |= {
                value,
                math.nextafter(value, -math.inf),
                math.nextafter(value, math.inf),
            }
        else:
            found[feature] |= {float(code) for code in threshold.split("||")}
    yield Large(model, x, {feature: sorted(values) for feature, values in found.items()})
    model.kernel.close()
    model.capi.close()


# --------------------------------------------------------------------------- helpers


def assert_parity(
    models: Sequence[Model],
    rows: Sequence[Sequence[float]] | np.ndarray,
    *,
    contribution_rows: int = 300,
) -> None:
    """Kernel batch, single row, raw score and contributions == LightGBM, bit for bit.

    Contributions (TreeSHAP, the slowest part) are compared on the first
    ``contribution_rows`` rows; they must also sum to the raw score.
    """
    for model in models:
        matrix = np.array(rows, dtype=np.float64).reshape(-1, model.kernel.num_features)
        expected = model.booster.predict(matrix)
        assert_bits_equal(model.kernel.predict_matrix(matrix), expected)
        one_by_one = [model.kernel.predict_one(row) for row in matrix.tolist()]
        assert_bits_equal(np.array(one_by_one, dtype=np.float64), expected)
        assert_bits_equal(model.capi.predict_matrix(matrix), expected)
        raw = model.booster.predict(matrix, raw_score=True)
        assert_bits_equal(model.kernel.predict_matrix_raw(matrix), raw)
        assert_bits_equal(np.array([model.kernel.predict_row_raw()]), raw[-1:])
        explained = matrix[:contribution_rows]
        contributions = model.kernel.contributions(explained)
        # The issue asks for 1e-9; the kernel repeats LightGBM's arithmetic, so it is exact.
        assert_bits_equal(contributions, model.booster.predict(explained, pred_contrib=True))
        np.testing.assert_allclose(
            contributions.sum(axis=1), raw[:contribution_rows], rtol=0, atol=1e-9
        )


def with_checksum(data: bytearray) -> bytes:
    struct.pack_into("<I", data, 24, layout_checksum(data))
    return bytes(data)


def sections(data: bytearray) -> dict[str, np.ndarray]:
    """Writable numpy views of a layout's trees and nodes (and the rest) in ``data``."""
    header = read_header(data, verify_checksum=False)
    (trees_at, _), (nodes_at, _), (leaves_at, _), *_, (bounds_at, _), (words_at, _) = (
        header.sections
    )
    return {
        "trees": np.frombuffer(data, TREE_DTYPE, header.num_trees, trees_at),
        "nodes": np.frombuffer(data, NODE_DTYPE, header.num_nodes, nodes_at),
        "leaves": np.frombuffer(data, "<f8", header.num_leaves, leaves_at),
        "bounds": np.frombuffer(data, "<i4", header.num_cat_bounds, bounds_at),
        "words": np.frombuffer(data, "<u4", header.num_cat_words, words_at),
    }


def layout_tree(data: bytes, tree: int) -> dict[str, Any]:
    """One tree of a layout: its record, nodes, leaf values/counts, internal values/counts."""
    header = read_header(data)
    offsets = [offset for offset, _ in header.sections]
    record = np.frombuffer(data, TREE_DTYPE, header.num_trees, offsets[0])[tree]
    first, count = int(record["node_offset"]), int(record["num_nodes"])
    leaf_first, leaf_count = int(record["leaf_offset"]), int(record["num_leaves"])

    def part(section: int, dtype: str, total: int, start: int, size: int) -> np.ndarray:
        return np.frombuffer(data, dtype, total, offsets[section])[start : start + size]

    return {
        "record": record,
        "nodes": np.frombuffer(data, NODE_DTYPE, header.num_nodes, offsets[1])[
            first : first + count
        ],
        "leaf_values": part(2, "<f8", header.num_leaves, leaf_first, leaf_count),
        "leaf_counts": part(3, "<i4", header.num_leaves, leaf_first, leaf_count),
        "internal_values": part(4, "<f8", header.num_nodes, first, count),
        "internal_counts": part(5, "<i4", header.num_nodes, first, count),
        "bounds": np.frombuffer(data, "<i4", header.num_cat_bounds, offsets[6]),
        "words": np.frombuffer(data, "<u4", header.num_cat_words, offsets[7]),
    }


MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}


def assert_same_tree(layout: dict[str, Any], node: int, dumped: dict[str, Any]) -> None:
    """The layout's subtree at ``node`` is LightGBM's in-memory subtree ``dumped``."""
    if node < 0:
        leaf = ~node
        assert dumped["leaf_index"] == leaf
        assert layout["leaf_values"][leaf] == dumped["leaf_value"]
        assert layout["leaf_counts"][leaf] == dumped["leaf_count"]
        return
    record = layout["nodes"][node]
    decision = int(record["decision_type"])
    assert record["feature"] == dumped["split_feature"]
    assert layout["internal_values"][node] == dumped["internal_value"]  # exact: Atof replayed
    assert layout["internal_counts"][node] == dumped["internal_count"]
    assert bool(decision & 2) == dumped["default_left"]
    assert (decision >> 2) & 3 == MISSING_TYPES[dumped["missing_type"]]
    if dumped["decision_type"] == "==":
        assert decision & 1
        set_index = layout["record"]["cat_offset"] + int(record["threshold"])
        low, high = layout["bounds"][set_index], layout["bounds"][set_index + 1]
        words = layout["words"][low:high]
        members = [c for c in range(32 * len(words)) if (words[c // 32] >> (c % 32)) & 1]
        assert members == [int(c) for c in str(dumped["threshold"]).split("||")]
    else:
        assert not decision & 1
        threshold = float(record["threshold"])
        if abs(threshold) == math.inf:  # dump_model writes an infinite threshold as +-1e300
            assert dumped["threshold"] == math.copysign(1e300, threshold)
        else:
            assert threshold == dumped["threshold"]
    assert_same_tree(layout, int(record["left"]), dumped["left_child"])
    assert_same_tree(layout, int(record["right"]), dumped["right_child"])


# --------------------------------------------------------------------------- property tests


@PROPERTY
@given(rows=rows_of(feature_strategies(FINITE)))
def test_arbitrary_finite_floats_match_lightgbm(models, rows):
    assert_parity(models.family, rows)


@PROPERTY
@given(rows=rows_of(feature_strategies(st.one_of(SPECIAL, TYPICAL, ZERO_EDGE))))
@example(rows=[[math.nan] * NUM_FEATURES, [math.inf] * NUM_FEATURES, [-math.inf] * NUM_FEATURES])
@example(rows=[[0.0] * NUM_FEATURES, [-0.0] * NUM_FEATURES, [1e-36] * NUM_FEATURES])
def test_nan_infinities_and_zeros_match_lightgbm(models, rows):
    assert_parity(models.family, rows)


@PROPERTY
@given(data=st.data())
def test_values_on_thresholds_and_next_doubles_match_lightgbm(models, data):
    features = [
        st.sampled_from(models.split_values[feature]) if models.split_values[feature] else TYPICAL
        for feature in range(NUM_FEATURES)
    ]
    assert_parity(models.family, data.draw(rows_of(features)))


@PROPERTY
@given(data=st.data())
def test_unseen_negative_and_fractional_categories_match_lightgbm(models, data):
    features = [
        st.one_of(TYPICAL, st.just(math.nan))
        if feature in NUMERIC_FEATURES
        else st.one_of(unseen_codes(CATEGORY_SIZES[feature]), st.integers(0, 20).map(float))
        for feature in range(NUM_FEATURES)
    ]
    assert_parity(models.family, data.draw(rows_of(features)))


@PROPERTY
@given(data=st.data())
def test_any_mix_of_values_matches_lightgbm(models, data):
    features = []
    for feature in range(NUM_FEATURES):
        choices = [FINITE, SPECIAL, TYPICAL, ZERO_EDGE]
        if models.split_values[feature]:
            choices.append(st.sampled_from(models.split_values[feature]))
        if feature in CATEGORY_SIZES:
            choices.append(unseen_codes(CATEGORY_SIZES[feature]))
        features.append(st.one_of(*choices))
    assert_parity(models.family, data.draw(rows_of(features)))


WIDE_CODES = st.one_of(
    st.integers(0, MANY_LEVELS - 1).map(float),
    st.sampled_from([float(code) for code in HUGE_IDS]),
    st.integers(MANY_LEVELS, 2**31 + 5).map(float),  # unseen, up to past int32
    st.integers(-(2**31) - 5, -1).map(float),  # negative
    st.floats(-2.0, MANY_LEVELS + 2.0),  # fractional: truncated like static_cast<int>
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, -0.5, 1e300, 2.0**53]),
)


@PROPERTY
@given(
    rows=st.lists(
        st.tuples(WIDE_CODES, WIDE_CODES, st.one_of(TYPICAL, SPECIAL), TYPICAL).map(list),
        min_size=1,
        max_size=6,
    )
)
def test_many_level_categorical_splits_and_huge_ids_match_lightgbm(models, rows):
    assert_parity([models.wide], rows)


# --------------------------------------------------------------------------- large model


def test_large_model_matches_lightgbm_on_every_real_row(large):
    model = large.model
    assert model.kernel.num_trees == 120
    assert max(tree["num_leaves"] for tree in model.booster.dump_model()["tree_info"]) == 255
    matrix = large.features
    assert_bits_equal(model.kernel.predict_matrix(matrix), model.booster.predict(matrix))
    raw = model.booster.predict(matrix, raw_score=True)
    assert_bits_equal(model.kernel.predict_matrix_raw(matrix), raw)
    # The single-row path and contributions on a spread of real rows.
    assert_parity([model], matrix[::97], contribution_rows=150)


def test_large_model_on_thresholds_next_doubles_and_odd_values(large):
    rng = np.random.default_rng(5)
    rows = large.features[rng.integers(0, len(large.features), 3000)].copy()
    odd = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-36, -1.0, 2.0**31, 1e300]
    for feature, values in large.split_values.items():
        pool = np.array(values + odd)
        replace = rng.random(len(rows)) < 0.5
        rows[replace, feature] = rng.choice(pool, int(replace.sum()))
    assert_parity([large.model], rows, contribution_rows=150)


# --------------------------------------------------------------------------- depth


def _chain_spliced(text: str, tree: int, depth: int, num_features: int) -> str:
    """``text`` with tree ``tree`` replaced by a chain ``depth`` splits deep.

    Node ``i`` sends values below ``i / 10`` of feature ``i % num_features`` to leaf ``i``
    and the rest on, so every feature is split again and again along the one long path
    (TreeSHAP unwinds it at every level).
    """
    start = text.index(f"Tree={tree}\n")
    end = text.index("\n\n\n", start) + 3
    leaves = depth + 1
    nodes = range(depth)

    def line(key: str, values: Sequence[object]) -> str:
        return f"{key}={' '.join(str(value) for value in values)}\n"

    block = (
        f"Tree={tree}\nnum_leaves={leaves}\nnum_cat=0\n"
        + line("split_feature", [i % num_features for i in nodes])
        + line("split_gain", [1] * depth)
        + line("threshold", [i / 10 for i in nodes])
        + line("decision_type", [2 if i % 3 else 10 for i in nodes])  # some NaN-missing
        + line("left_child", [~i for i in nodes])
        + line("right_child", [*(i + 1 for i in range(depth - 1)), ~depth])
        + line("leaf_value", [((-1) ** i) * 0.001 * (i % 17) for i in range(leaves)])
        + line("leaf_weight", [1] * leaves)
        + line("leaf_count", [1 + i % 5 for i in range(leaves)])
        + line("internal_value", [0] * depth)
        + line("internal_weight", [1] * depth)
        + line("internal_count", [sum(1 + j % 5 for j in range(i, leaves)) for i in nodes])
        + "is_linear=0\nshrinkage=1\n\n\n"
    )
    spliced = text[:start] + block + text[end:]
    return re.sub(r"^tree_sizes=.*\n", "", spliced, flags=re.MULTILINE)


def test_a_tree_at_the_depth_limit_matches_lightgbm(models, tmp_path):
    text = _chain_spliced(models.family[0].text, 2, MAX_TREE_DEPTH, NUM_FEATURES)
    model = _make("deep", text, tmp_path)
    try:
        rows = np.linspace(-5, MAX_TREE_DEPTH / 10 + 1, 40 * NUM_FEATURES).reshape(-1, NUM_FEATURES)
        rows[::7, 3] = math.nan
        assert_parity([model], rows, contribution_rows=8)
    finally:
        model.kernel.close()
        model.capi.close()


def test_a_tree_past_the_depth_limit_is_refused(models, monkeypatch):
    text = _chain_spliced(models.family[0].text, 2, MAX_TREE_DEPTH + 1, NUM_FEATURES)
    with pytest.raises(UnsupportedModel, match=f"{MAX_TREE_DEPTH + 1} levels deep"):
        compile_model(text)
    # A layout that claims it anyway (written with the publish check lifted) does not load.
    monkeypatch.setattr("engine.inference.tree_layout.MAX_TREE_DEPTH", MAX_TREE_DEPTH + 1)
    layout = compile_model(text)
    with pytest.raises(LayoutError, match="deeper than the kernel's limit"):
        TreeKernel.from_bytes(layout)


# --------------------------------------------------------------------------- example tests


def test_the_edge_case_models_have_their_edge_cases(models):
    by_name = {model.name: model for model in models.family}
    decision_types = {
        int(value)
        for line in re.findall(r"^decision_type=(.*)$", by_name["zero_as_missing"].text, re.M)
        for value in line.split()
    }
    assert decision_types & {4, 6}  # missing type Zero
    assert not by_name["regression"].kernel.binary
    assert by_name["sigmoid_atof"].kernel.header.sigmoid == 0.7
    tokens = [
        token
        for line in re.findall(r"^internal_value=(.*)$", by_name["sigmoid_atof"].text, re.M)
        for token in line.split()
    ]
    assert any(lightgbm_atof(token) != float(token) for token in tokens)
    assert "num_leaves=1\n" in by_name["single_leaf"].text
    words = max(
        len(line.split()) for line in re.findall(r"^cat_threshold=(.*)$", models.wide.text, re.M)
    )
    assert words > min(HUGE_IDS) // 32  # some split's bitset reaches a huge id


def test_training_rows_match_lightgbm(models):
    assert_parity(models.family, models.features)  # 2,500 rows: blocks, lanes, leftovers
    wide_x, _ = _wide_data()
    assert_parity([models.wide], wide_x)


def test_all_features_missing(models):
    for model in models.family:
        for index in range(NUM_FEATURES):
            model.kernel.row[index] = math.nan
        expected = model.booster.predict(np.full((1, NUM_FEATURES), np.nan))[0]
        assert model.kernel.predict_row() == expected
        assert model.kernel.predict_row() == model.capi.predict_one([math.nan] * NUM_FEATURES)


def test_layout_holds_lightgbms_trees_node_for_node(models):
    # Internal values included: they go through LightGBM's imprecise Common::Atof.
    for model in [*models.family, models.wide]:
        data = compile_model(model.text)
        dumped = model.booster.dump_model()["tree_info"]
        assert read_header(data).num_trees == len(dumped)
        for number, tree in enumerate(dumped):
            layout = layout_tree(data, number)
            structure = tree["tree_structure"]
            if "leaf_value" in structure and "split_index" not in structure:
                assert layout["record"]["num_nodes"] == 0
                assert layout["leaf_values"][0] == structure["leaf_value"]
            else:
                assert_same_tree(layout, 0, structure)


def test_header_describes_the_model(models):
    main = models.family[0]
    data = compile_model(main.text)
    header = read_header(data)
    assert header.num_features == NUM_FEATURES
    assert header.num_trees == main.booster.num_trees() == main.kernel.num_trees
    assert header.objective == OBJECTIVE_BINARY
    assert header.sigmoid == 1.0
    assert header.source_sha256 == hashlib.sha256(main.text.encode()).digest()
    assert header.file_size == len(data)
    assert all(offset % 64 == 0 for offset, _ in header.sections)
    assert compile_model(main.text.encode()) == data  # deterministic, str or bytes
    regression = read_header(compile_model(models.family[3].text))
    assert (regression.objective, regression.sigmoid) == (OBJECTIVE_REGRESSION, 0.0)


def test_walk_order_puts_the_busier_child_next(models):
    layout = layout_tree(compile_model(models.family[0].text), 0)
    nodes, counts = layout["nodes"], layout["internal_counts"]

    def count(child: int) -> int:
        return int(counts[child]) if child >= 0 else int(layout["leaf_counts"][~child])

    for index, node in enumerate(nodes):
        left, right = int(node["left"]), int(node["right"])
        busier = right if count(right) > count(left) else left
        if busier >= 0:
            assert busier == index + 1


def test_text_with_every_tree_after_early_stopping(models):
    text = models.early_booster.model_to_string(num_iteration=-1)
    with TreeKernel.from_model_string(text) as kernel:
        ours = kernel.predict_matrix(models.features)
    assert_bits_equal(ours, models.early_booster.predict(models.features, num_iteration=-1))
    assert_bits_equal(ours, lgb.Booster(model_str=text).predict(models.features))


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("1", 1.0),
        ("-0", -0.0),
        ("0.7", 0.7),
        ("1e-3", 0.001),
        ("2.5E+2", 250.0),
        ("inf", 1e308),
        ("-inf", -1e308),
        (".5", 0.5),
        ("7.", 7.0),
    ],
)
def test_lightgbm_atof_examples(token, expected):
    value = lightgbm_atof(token)
    assert value == expected
    assert math.copysign(1.0, value) == math.copysign(1.0, expected)


@pytest.mark.parametrize("token", ["", "1_0", "nan", "1e", "0x10", " 1", "١"])
def test_lightgbm_atof_refuses_what_is_not_a_model_number(token):
    with pytest.raises(UnsupportedModel, match="not a number"):
        lightgbm_atof(token)


# --------------------------------------------------------------------------- refusals


def _small_data(classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 4))
    return x, rng.integers(0, classes, 400).astype(float)


def _train(params: dict[str, Any], classes: int = 2, rounds: int = 3) -> str:
    x, y = _small_data(classes)
    base = {"verbose": -1, "num_threads": 1, "deterministic": True, "seed": 3}
    return lgb.train(
        {**base, **params}, lgb.Dataset(x, y), num_boost_round=rounds
    ).model_to_string()


@pytest.mark.parametrize(
    ("params", "classes", "message"),
    [
        ({"objective": "binary", "linear_tree": True}, 2, "linear trees"),
        ({"objective": "multiclass", "num_class": 3}, 3, "multiclass"),
        ({"objective": "multiclassova", "num_class": 3}, 3, "multiclass"),
        (
            {"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5},
            2,
            "averaged output",
        ),
        ({"objective": "poisson"}, 2, "objective 'poisson.*not supported"),
        ({"objective": "cross_entropy"}, 2, "not supported by the tree kernel"),
        ({"objective": "regression", "reg_sqrt": True}, 2, "regression sqrt"),
    ],
)
def test_unsupported_models_are_refused_with_a_clear_message(params, classes, message):
    text = _train(params, classes)
    with pytest.raises(UnsupportedModel, match=message):
        compile_model(text)
    with pytest.raises(UnsupportedModel, match=message):
        TreeKernel.from_model_string(text)
    assert issubclass(UnsupportedModel, EngineError)


def _edit(text: str, key: str, tree: int, change: Any) -> str:
    """Apply ``change`` to the value of ``key=`` in tree ``tree``; drop ``tree_sizes``."""
    start = text.index(f"\n{key}=", text.index(f"Tree={tree}\n")) + len(key) + 2
    end = text.index("\n", start)
    edited = text[:start] + change(text[start:end]) + text[end:]
    return re.sub(r"^tree_sizes=.*\n", "", edited, flags=re.MULTILINE)


def _drop(text: str, key: str, tree: int) -> str:
    """Remove the ``key=`` line of tree ``tree``; drop ``tree_sizes``."""
    start = text.index(f"\n{key}=", text.index(f"Tree={tree}\n")) + 1
    end = text.index("\n", start) + 1
    return re.sub(r"^tree_sizes=.*\n", "", text[:start] + text[end:], flags=re.MULTILINE)


def _first(change: Any) -> Any:
    return lambda value: " ".join([str(change(int(value.split()[0]))), *value.split()[1:]])


MALFORMED: dict[str, tuple[Any, str]] = {
    "no objective": (lambda t: re.sub(r"^objective=.*\n", "", t, flags=re.M), "no objective"),
    "custom objective": (
        lambda t: re.sub(r"^objective=.*$", "objective=custom", t, flags=re.M),
        "not supported",
    ),
    "version v3": (lambda t: t.replace("version=v4", "version=v3"), "version 'v3'"),
    "carriage returns": (lambda t: t.replace("\n", "\r\n"), "line endings"),
    "truncated": (lambda t: t[: t.index("Tree=2")], "truncated"),
    "tree_sizes off by one": (
        lambda t: re.sub(
            r"^tree_sizes=(\d+)", lambda m: f"tree_sizes={int(m.group(1)) + 1}", t, flags=re.M
        ),
        "tree_sizes",
    ),
    "tree_sizes one tree short": (
        lambda t: re.sub(r"^(tree_sizes=.*) \d+$", r"\1", t, flags=re.M),
        "tree_sizes",
    ),
    "unknown key": (
        lambda t: _edit(t, "shrinkage", 0, lambda v: v + "\nmystery=1"),
        "unknown keys",
    ),
    "duplicated key": (lambda t: _edit(t, "shrinkage", 0, lambda v: v + "\nshrinkage=1"), "twice"),
    "undefined decision bits": (
        lambda t: _edit(t, "decision_type", 1, _first(lambda v: v | 16)),
        "bits",
    ),
    "missing type 3": (lambda t: _edit(t, "decision_type", 1, _first(lambda v: v | 12)), "bits"),
    "child out of range": (lambda t: _edit(t, "left_child", 1, _first(lambda v: 999)), "outside"),
    "two parents": (
        lambda t: _edit(t, "right_child", 1, lambda v: " ".join(v.split()[:1] * len(v.split()))),
        "do not form a tree",
    ),
    "feature out of range": (
        lambda t: _edit(t, "split_feature", 1, _first(lambda v: NUM_FEATURES)),
        "outside",
    ),
    "missing threshold": (lambda t: _drop(t, "threshold", 1), "no threshold"),
    "count mismatch": (
        lambda t: _edit(t, "leaf_value", 1, lambda v: v + " 0.5"),
        "values, expected",
    ),
    "nan leaf": (
        lambda t: _edit(t, "leaf_value", 1, lambda v: "nan " + v.split(" ", 1)[1]),
        "numbers",
    ),
    "not a tree line": (lambda t: t.replace("Tree=1\n", "Tree=7\n"), "expected 'Tree=1'"),
    "nul byte": (lambda t: t.replace("tree\n", "tree\0\n", 1), "NUL"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_model_text_is_refused(models, name):
    change, message = MALFORMED[name]
    text = change(models.family[0].text)
    assert text != models.family[0].text
    with pytest.raises(UnsupportedModel, match=message):
        compile_model(text)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(UnsupportedModel, match="UTF-8"):
        compile_model(b"tree\nversion=v4\n\xff\n")


# --------------------------------------------------------------------------- layout files


def _maps_of(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if str(path) in line]


def test_layout_file_is_mapped_read_only_and_unmapped_on_close(models, tmp_path):
    path = tmp_path / "model.layout"
    write_layout(models.family[0].text, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.layout"]  # no temporary left
    first, second = TreeKernel.open(path), TreeKernel.open(path)
    mapped = _maps_of(path)
    assert len(mapped) == 2  # each kernel maps the file; the page cache holds it once
    assert all(line.split()[1].startswith("r--") for line in mapped)  # read-only, shared
    matrix = models.features[:300]
    assert_bits_equal(first.predict_matrix(matrix), second.predict_matrix(matrix))
    first.close()
    first.close()
    assert len(_maps_of(path)) == 1
    with second:
        pass
    assert _maps_of(path) == []
    with pytest.raises(KernelClosed):
        second.predict_row()
    with pytest.raises(KernelClosed):
        second.predict_matrix(matrix)
    with pytest.raises(KernelClosed):
        second.contributions(matrix)


def test_from_bytes_and_the_mapped_file_agree(models):
    model = models.family[0]
    with TreeKernel.from_bytes(compile_model(model.text)) as kernel:
        assert_bits_equal(
            kernel.predict_matrix(models.features), model.kernel.predict_matrix(models.features)
        )


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.01, 0.3, 0.6, 0.9, 0.999])
def test_truncated_layout_file_raises(models, tmp_path, fraction):
    data = compile_model(models.family[0].text)
    path = tmp_path / "truncated.layout"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(LayoutError):
        TreeKernel.open(path)
    with pytest.raises(LayoutError):
        TreeKernel.from_bytes(data[: int(len(data) * fraction)])


def test_layout_with_bytes_appended_raises(models):
    with pytest.raises(LayoutError, match="truncated or padded"):
        TreeKernel.from_bytes(compile_model(models.family[0].text) + b"\0" * 64)


@pytest.mark.parametrize("section", range(8))
def test_corrupted_byte_fails_the_checksum(models, section):
    data = bytearray(compile_model(models.wide.text))
    offset, size = read_header(data).sections[section]
    if size == 0:
        pytest.skip("empty section")
    data[offset + size // 2] ^= 0x10
    with pytest.raises(LayoutError, match="checksum"):
        TreeKernel.from_bytes(bytes(data))


def _hostile(text: str, change: Any) -> bytes:
    data = bytearray(compile_model(text))
    change(data, sections(data))
    return with_checksum(data)


def _set_node(field: str, value: Any, node: int = 1) -> Any:
    def change(data: bytearray, parts: dict[str, np.ndarray]) -> None:
        parts["nodes"][field][node] = value

    return change


def _set_tree(field: str, value: Any, tree: int = 0) -> Any:
    def change(data: bytearray, parts: dict[str, np.ndarray]) -> None:
        parts["trees"][field][tree] = value

    return change


def _header(offset: int, fmt: str, value: Any) -> Any:
    def change(data: bytearray, parts: dict[str, np.ndarray]) -> None:
        struct.pack_into(fmt, data, offset, value)

    return change


def _categorical_node(parts: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero(parts["nodes"]["decision_type"] & 1)[0])


def _numerical_node(parts: dict[str, np.ndarray]) -> int:
    return int(np.flatnonzero((parts["nodes"]["decision_type"] & 1) == 0)[0])


HOSTILE: dict[str, tuple[Any, str]] = {
    "bad magic": (_header(0, "<8s", b"NOTATREE"), "bad magic"),
    "future version": (_header(8, "<I", 2), "version 2"),
    "negative tree count": (_header(36, "<i", -1), "negative count"),
    "unknown objective": (_header(56, "<I", 9), "unknown objective"),
    "zero sigmoid": (_header(64, "<d", 0.0), "sigmoid"),
    "section outside the file": (_header(128 + 16, "<Q", 2**40), "outside the file"),
    "misaligned section": (_header(128 + 16, "<Q", HEADER_SIZE + 64 + 8), "outside the file"),
    "child points at the root (cycle)": (_set_node("left", 0), "out of range"),
    "child node past the tree": (_set_node("right", 10_000), "out of range"),
    "child leaf past the tree": (_set_node("right", ~10_000), "out of range"),
    "node with two parents": (
        lambda data, parts: parts["nodes"]["left"].__setitem__(2, parts["nodes"]["left"][1]),
        "two parents",
    ),
    "feature past the row": (_set_node("feature", WIDE_FEATURES), "split feature"),
    "negative feature": (_set_node("feature", -1), "split feature"),
    "undefined decision bits": (_set_node("decision_type", 0x21), "undefined bits"),
    "missing type 3": (_set_node("decision_type", 0x0C), "undefined bits"),
    "NaN threshold": (
        lambda data, parts: parts["nodes"]["threshold"].__setitem__(
            _numerical_node(parts), math.nan
        ),
        "NaN",
    ),
    "huge row width": (_header(32, "<i", 2**31 - 1), "features"),
    "categorical set out of range": (
        lambda data, parts: parts["nodes"]["threshold"].__setitem__(
            _categorical_node(parts), 999.0
        ),
        "set its tree does not have",
    ),
    "fractional categorical set": (
        lambda data, parts: parts["nodes"]["threshold"].__setitem__(_categorical_node(parts), 0.5),
        "set its tree does not have",
    ),
    "categorical bound past the words": (
        lambda data, parts: parts["bounds"].__setitem__(1, 10**6),
        "categorical bounds",
    ),
    "decreasing categorical bounds": (
        lambda data, parts: parts["bounds"].__setitem__(0, parts["bounds"][1] + 1),
        "categorical bounds",
    ),
    "wrong depth": (_set_tree("max_depth", 1), "depth"),
    "tree overlapping the next": (_set_tree("node_offset", 1, tree=1), "inconsistent"),
    "more leaves than nodes allow": (_set_tree("num_leaves", 99), "inconsistent"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_layout_with_a_valid_checksum_raises(models, name):
    change, message = HOSTILE[name]
    data = _hostile(models.wide.text, change)
    with pytest.raises(LayoutError, match=message):
        TreeKernel.from_bytes(data)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_mutated_layouts_raise_or_score_never_crash(models, data):
    # Any bytes with a correct checksum: the kernel either refuses them or scores rows with
    # whatever trees they describe; it never reads outside the buffer or loops forever.
    layout = bytearray(compile_model(models.wide.text))
    edits = data.draw(
        st.lists(
            st.tuples(
                st.one_of(st.integers(0, 1023), st.integers(0, len(layout) - 1)),
                st.integers(0, 255),
            ),
            min_size=1,
            max_size=4,
        )
    )
    for offset, value in edits:
        layout[offset] = value
    try:
        kernel = TreeKernel.from_bytes(with_checksum(layout))
    except LayoutError:
        return
    with kernel:
        values = [0.0, 1.0, 0.5, -0.5, math.nan, 4_000.0, math.inf, 2.0, -7.0, 1e300]
        rows = np.resize(np.array(values), (2, kernel.num_features))
        assert kernel.predict_matrix(rows).shape == (2,)
        kernel.row[:] = rows[1].tolist()
        assert isinstance(kernel.predict_row(), float)
        # Counts (TreeSHAP's cover) are not checked: any value only changes the numbers.
        assert kernel.contributions(rows).shape == (2, kernel.num_features + 1)


def test_empty_layout_file_raises(tmp_path):
    path = tmp_path / "empty.layout"
    path.write_bytes(b"")
    with pytest.raises(LayoutError, match="empty"):
        TreeKernel.open(path)


# --------------------------------------------------------------------------- interface


def test_row_and_width_cannot_be_rebound(models):
    kernel = models.family[0].kernel
    with pytest.raises(AttributeError, match="row"):
        kernel.row = (type(kernel.row))()
    with pytest.raises(AttributeError, match="num_features"):
        kernel.num_features = 3
    assert kernel.num_features == NUM_FEATURES == len(kernel.row)


@pytest.mark.parametrize("width", [0, 1, NUM_FEATURES - 1, NUM_FEATURES + 1])
def test_wrong_width_is_a_value_error(models, width):
    kernel = models.family[0].kernel
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} feature values"):
        kernel.predict_one([0.0] * width)
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} columns"):
        kernel.predict_matrix(np.zeros((3, width)))
    with pytest.raises(ValueError, match=f"expected {NUM_FEATURES} columns"):
        kernel.contributions(np.zeros((3, width)))


@pytest.mark.parametrize("shape", [(), (NUM_FEATURES,), (2, 3, NUM_FEATURES)])
def test_matrix_must_be_two_dimensional(models, shape):
    with pytest.raises(ValueError, match="2-D"):
        models.family[0].kernel.predict_matrix(np.zeros(shape))
    with pytest.raises(ValueError, match="2-D"):
        models.family[0].kernel.contributions(np.zeros(shape))


def test_zero_rows_and_odd_matrix_layouts(models):
    model = models.family[0]
    kernel, matrix = model.kernel, models.features[:200]
    empty = kernel.predict_matrix(np.empty((0, NUM_FEATURES)))
    assert empty.shape == (0,)
    assert empty.dtype == np.float64
    no_contributions = kernel.contributions(np.empty((0, NUM_FEATURES)))
    assert no_contributions.shape == (0, NUM_FEATURES + 1)
    assert no_contributions.dtype == np.float64
    assert_bits_equal(
        kernel.contributions(np.asfortranarray(matrix)),
        model.booster.predict(matrix, pred_contrib=True),
    )
    expected = model.booster.predict(matrix)
    assert_bits_equal(kernel.predict_matrix(np.asfortranarray(matrix)), expected)
    assert_bits_equal(kernel.predict_matrix(np.repeat(matrix, 2, axis=0)[::2]), expected)
    assert_bits_equal(kernel.predict_matrix(matrix.tolist()), expected)
    as_float32 = matrix.astype(np.float32)
    assert_bits_equal(kernel.predict_matrix(as_float32), model.booster.predict(as_float32))


def test_predict_row_reads_the_row_buffer_in_place(models):
    model = models.family[0]
    for values in models.features[:50]:
        for index, value in enumerate(values):
            model.kernel.row[index] = value
        expected = model.booster.predict(values.reshape(1, -1))[0]
        assert model.kernel.predict_row() == expected
        assert model.kernel.predict_row() == expected  # the buffer keeps its values
        assert model.capi.predict_one(values) == expected


def test_compiled_kernel_binds_a_numpy_row_and_checks_its_buffers(models):
    model = models.family[0]
    layout = compile_model(model.text)
    row = np.zeros(NUM_FEATURES)
    kernel = Kernel(layout, row)
    row[:] = models.features[7]
    assert kernel.predict_row() == model.booster.predict(models.features[7:8])[0]
    out = np.empty(3)
    kernel.predict_matrix(models.features[:3], out, False)
    assert_bits_equal(out, model.booster.predict(models.features[:3]))
    with pytest.raises(ValueError, match="row has 3 values"):
        Kernel(layout, np.zeros(3))
    with pytest.raises(TypeError, match="float64"):
        Kernel(layout, np.zeros(NUM_FEATURES, dtype=np.float32))
    with pytest.raises(ValueError, match="not C-contiguous"):
        Kernel(layout, np.zeros((NUM_FEATURES, 2))[:, 0])
    with pytest.raises(ValueError, match="out has 2 values for 3 rows"):
        kernel.predict_matrix(models.features[:3], np.empty(2), False)
    both = np.zeros((4, NUM_FEATURES))
    with pytest.raises(ValueError, match="overlaps"):
        kernel.predict_matrix(both, both.reshape(-1)[:4], False)
    with pytest.raises(TypeError, match="3 arguments"):
        kernel.predict_matrix(both)  # type: ignore[call-arg]
    contributions = np.empty((3, NUM_FEATURES + 1))
    kernel.contributions_matrix(models.features[:3], contributions)
    assert_bits_equal(contributions, model.booster.predict(models.features[:3], pred_contrib=True))
    with pytest.raises(ValueError, match=rf"out has shape \(3, {NUM_FEATURES}\), not"):
        kernel.contributions_matrix(models.features[:3], np.empty((3, NUM_FEATURES)))
    with pytest.raises(TypeError, match="2-D buffer"):
        kernel.contributions_matrix(models.features[:3], np.empty(3))
    shared = np.zeros(8 * (NUM_FEATURES + 1))
    with pytest.raises(ValueError, match="overlaps"):
        kernel.contributions_matrix(
            shared[: 4 * NUM_FEATURES].reshape(4, -1),
            shared[NUM_FEATURES : 5 * NUM_FEATURES + 4].reshape(4, -1),
        )
    with pytest.raises(TypeError, match="2 arguments"):
        kernel.contributions_matrix(both)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="invalid tree layout"):
        Kernel(layout[:-8], row)
    kernel.release()
    kernel.release()
    assert kernel.released
    with pytest.raises(ValueError, match="released"):
        kernel.predict_row()
    with pytest.raises(ValueError, match="released"):
        kernel.predict_matrix(models.features[:3], out, False)
    with pytest.raises(ValueError, match="released"):
        kernel.contributions_matrix(models.features[:3], contributions)


def test_garbage_collection_frees_without_errors(models):
    # Unraisable exceptions in __del__ fail the run (pytest filterwarnings = error).
    data = compile_model(models.family[0].text)
    for _ in range(20):
        kernel = TreeKernel.from_bytes(data)
        kernel.predict_one([0.5] * NUM_FEATURES)
        del kernel
