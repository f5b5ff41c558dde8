"""Tests of the synthetic lead generator (engine.training.synth)."""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.config import FeatureSpec, ModelConfig, feature_specs, load_config
from engine.training.synth import (
    SYNTH_VERTICALS,
    TARGET_COLUMN,
    _simulate,
    generate,
    write_csv,
)

CONFIG_PATH = Path(__file__).resolve().parents[3] / "config" / "models.yaml"
SAMPLE_ROWS = 10_000
SAMPLE_SEED = 11
NUMBER = re.compile(r"^\d+(\.\d{1,2})?$")
US_STATES = frozenset({
    "al", "ak", "az", "ar", "ca", "co", "ct", "de", "fl", "ga", "hi", "id", "il", "in", "ia",
    "ks", "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh", "nj",
    "nm", "ny", "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut", "vt",
    "va", "wa", "wv", "wi", "wy", "dc",
})  # fmt: skip
TOKEN_SPLIT = re.compile(r"[\W_]+")


def tokens(text: str) -> list[str]:
    return TOKEN_SPLIT.sub(" ", text.casefold()).split()


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return load_config(CONFIG_PATH)


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[list[str], list[list[str]]]]:
    return {v: generate(v, SAMPLE_ROWS, SAMPLE_SEED) for v in SYNTH_VERTICALS}


def specs_of(config: ModelConfig, vertical: str) -> tuple[FeatureSpec, ...]:
    return feature_specs(config.verticals[vertical])


def column(sample: tuple[list[str], list[list[str]]], name: str) -> list[str]:
    header, rows = sample
    at = header.index(name)
    return [row[at] for row in rows]


@pytest.mark.parametrize("vertical", SYNTH_VERTICALS)
def test_columns_are_the_configured_features_then_the_target(config, samples, vertical):
    header, rows = samples[vertical]
    expected = [s.name for s in specs_of(config, vertical)] + [TARGET_COLUMN]
    assert header == expected
    assert config.verticals[vertical].training.target == TARGET_COLUMN
    assert len(rows) == SAMPLE_ROWS
    assert all(len(row) == len(header) for row in rows)
    assert set(column(samples[vertical], TARGET_COLUMN)) == {"0", "1"}


@pytest.mark.parametrize("vertical", SYNTH_VERTICALS)
def test_numbers_parse_are_compact_and_within_configured_bounds(config, samples, vertical):
    for spec in specs_of(config, vertical):
        if spec.kind != "numerical":
            continue
        values = [cell for cell in column(samples[vertical], spec.name) if cell != ""]
        assert values, spec.name
        bad_format = [v for v in values if not NUMBER.match(v) or v.endswith(".0")]
        assert not bad_format, (spec.name, bad_format[:5])
        numbers = np.array([float(v) for v in values])
        assert spec.min is not None and spec.max is not None
        assert numbers.min() >= spec.min, spec.name
        assert numbers.max() <= spec.max, spec.name
        assert numbers.std() > 0, spec.name


@pytest.mark.parametrize("vertical", SYNTH_VERTICALS)
def test_required_never_missing_and_others_sometimes_missing(config, samples, vertical):
    specs = specs_of(config, vertical)
    assert any(s.required for s in specs)
    for spec in specs:
        cells = column(samples[vertical], spec.name)
        missing = sum(1 for c in cells if not c.strip()) / len(cells)
        if spec.required:
            assert missing == 0, spec.name
        else:
            assert 0.015 <= missing <= 0.16, (spec.name, missing)


def test_same_inputs_give_identical_output_and_seeds_differ(samples):
    assert generate("auto", SAMPLE_ROWS, SAMPLE_SEED) == samples["auto"]
    other = generate("auto", SAMPLE_ROWS, SAMPLE_SEED + 1)
    assert other[0] == samples["auto"][0]
    assert other[1] != samples["auto"][1]
    assert generate("home", 5, 3) == generate("home", 5, 3)
    assert generate("home", 5, 3) != generate("home", 5, 4)


def test_write_csv_is_byte_identical_readable_and_atomic(tmp_path, samples):
    first = tmp_path / "a" / "auto.csv"
    second = tmp_path / "b" / "auto.csv"
    write_csv("auto", SAMPLE_ROWS, SAMPLE_SEED, first)
    write_csv("auto", SAMPLE_ROWS, SAMPLE_SEED, second)
    assert first.read_bytes() == second.read_bytes()
    with first.open(encoding="utf-8", newline="") as handle:
        read_back = list(csv.reader(handle))
    header, rows = samples["auto"]
    assert read_back[0] == header
    assert read_back[1:] == rows
    assert first.read_bytes().endswith(b"\n")
    assert sorted(p.name for p in first.parent.iterdir()) == ["auto.csv"]
    # Overwriting replaces the file in one step, again leaving no temporary behind.
    write_csv("auto", 3, 1, first)
    assert len(first.read_text(encoding="utf-8").splitlines()) == 4
    assert sorted(p.name for p in first.parent.iterdir()) == ["auto.csv"]


@pytest.mark.parametrize("vertical", SYNTH_VERTICALS)
def test_conversion_rate_and_share_of_likely_converters(vertical):
    _, rows, probability = _simulate(vertical, 20_000, 7)
    rate = sum(row[-1] == "1" for row in rows) / len(rows)
    assert 0.25 <= rate <= 0.40
    assert abs(rate - float(probability.mean())) < 0.02
    assert 0.10 <= float((probability >= 0.65).mean()) <= 0.30


def test_text_is_messy_and_carries_state_tokens(samples):
    locations = [c for c in column(samples["auto"], "location") if c]
    assert any(c != c.strip() for c in locations)
    assert any("  " in c for c in locations)
    assert any(c == c.lower() for c in locations)
    assert any(re.search(r", [A-Z]{2} \d{5}$", c) for c in locations)
    state_counts = Counter(t for c in locations for t in tokens(c) if t in US_STATES)
    for state in ("ca", "ny", "fl", "tx", "nj"):
        assert state_counts[state] > 50, state
    assert all(any(t in US_STATES for t in tokens(c)) for c in locations)

    addresses = [c for c in column(samples["home"], "address") if c]
    assert all(any(t in US_STATES for t in tokens(c)) for c in addresses)
    assert any(re.match(r"^\d+ \w+ \w+\.?, [\w .]+, [A-Z]{2} \d{5}$", c) for c in addresses)

    occupations = Counter(t for c in column(samples["auto"], "occupation") for t in tokens(c))
    assert occupations["engineer"] > 100
    raw = set(column(samples["life"], "occupation"))
    assert {"Software Engineer", "SW engineer"} <= raw
    assert any(c != c.strip() or "  " in c for c in raw if c)

    security = [c for c in column(samples["home"], "security_features") if c]
    assert any(", " in c for c in security)
    assert "none" in security
    conditions = [c for c in column(samples["health"], "pre_existing_conditions") if c]
    assert "none" in conditions
    assert any("; " in c for c in conditions)


@pytest.mark.parametrize(
    ("vertical", "name"),
    [
        ("auto", "vehicle_make"),
        ("auto", "usage_type"),
        ("home", "roof_type"),
        ("health", "current_insurer"),
        ("life", "policy_type"),
    ],
)
def test_categories_have_a_long_tail_and_some_messy_casing(samples, vertical, name):
    cells = [c for c in column(samples[vertical], name) if c]
    folded = Counter(c.casefold() for c in cells)
    assert min(folded.values()) < 5
    assert max(folded.values()) > 0.1 * len(cells)
    raw = set(cells)
    assert len(raw) > len(folded), "no value appears with two casings"


def encode_for_lightgbm(
    config: ModelConfig, vertical: str, header: list[str], rows: list[list[str]]
) -> tuple[np.ndarray, list[int], np.ndarray]:
    columns: list[np.ndarray] = []
    categorical: list[int] = []
    for spec in specs_of(config, vertical):
        at = header.index(spec.name)
        cells = [row[at] for row in rows]
        if spec.kind == "numerical":
            columns.append(np.array([float(c) if c else np.nan for c in cells]))
        elif spec.kind == "categorical":
            normalised = [c.strip().casefold() for c in cells]
            codes = {v: i for i, v in enumerate(sorted({v for v in normalised if v}))}
            categorical.append(len(columns))
            columns.append(np.array([codes[v] if v else np.nan for v in normalised]))
    labels = np.array([int(row[-1]) for row in rows])
    return np.column_stack(columns), categorical, labels


@pytest.mark.slow
@pytest.mark.parametrize("vertical", SYNTH_VERTICALS)
def test_lightgbm_learns_the_rule_from_numbers_and_categories(config, samples, vertical):
    header, rows = samples[vertical]
    features, categorical, labels = encode_for_lightgbm(config, vertical, header, rows)
    order = np.random.default_rng(0).permutation(len(rows))
    train, test = order[: int(0.75 * len(rows))], order[int(0.75 * len(rows)) :]
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "verbose": -1,
        "seed": 1,
        "num_threads": 2,
        "deterministic": True,
    }
    dataset = lgb.Dataset(features[train], labels[train], categorical_feature=categorical)
    booster = lgb.train(params, dataset, num_boost_round=100)
    auc = roc_auc_score(labels[test], booster.predict(features[test]))
    assert auc > 0.7, f"{vertical}: holdout AUC {auc:.3f}"


def test_fifty_thousand_rows_are_fast():
    start = time.perf_counter()
    _header, rows = generate("home", 50_000, 5)
    elapsed = time.perf_counter() - start
    assert len(rows) == 50_000
    assert elapsed < 6.0, f"{elapsed:.2f}s"


@pytest.mark.parametrize("vertical", ["boat", "", "Auto", "pet"])
def test_unknown_vertical_is_rejected_naming_the_known_ones(vertical, tmp_path):
    with pytest.raises(ValueError, match=r"unknown vertical .*auto, home, health, life"):
        generate(vertical, 10, 1)
    with pytest.raises(ValueError, match="unknown vertical"):
        write_csv(vertical, 10, 1, tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rows", [0, -1, -100])
def test_rows_below_one_are_rejected(rows, tmp_path):
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        generate("auto", rows, 1)
    with pytest.raises(ValueError, match="rows"):
        write_csv("life", rows, 1, tmp_path / "x.csv")
    assert list(tmp_path.iterdir()) == []


def test_negative_seed_and_non_integer_arguments_are_rejected():
    with pytest.raises(ValueError, match="seed"):
        generate("auto", 10, -1)
    with pytest.raises(ValueError, match="rows"):
        generate("auto", 2.5, 1)  # type: ignore[arg-type]
    three, two = np.int64(3), np.int64(2)  # numpy integers are accepted
    assert len(generate("auto", three, two)[1]) == 3  # type: ignore[arg-type]


def test_single_row_is_a_valid_table(config):
    for vertical in SYNTH_VERTICALS:
        header, rows = generate(vertical, 1, 0)
        assert len(rows) == 1
        assert len(rows[0]) == len(header)
        assert rows[0][-1] in {"0", "1"}
