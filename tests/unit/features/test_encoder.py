import ctypes
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config import FeatureSpec
from engine.errors import LeadError
from engine.features.encoder import TEXT_MEMO_SIZE, LeadEncoder, text_value
from engine.features.tables import EncoderTables
from engine.features.text import text_tokens

SPECS = (
    FeatureSpec("age", "numerical", 0, True, 16, 100),
    FeatureSpec("mileage", "numerical", 1, False, 0, None),
    FeatureSpec("make", "categorical", 2, False),
    FeatureSpec("job", "text", 3, False),
)
TABLES = EncoderTables({"make": ["toyota", "ford"]}, {"job": {"nurse": 0.5, "senior": 0.25}})
IMPORTANCE = {"age": 0.4, "mileage": 0.1, "make": 0.2, "job": 0.3}


def encode(lead, importance=IMPORTANCE):
    row = np.full(4, -7.0)
    known = LeadEncoder(SPECS, TABLES, importance).encode_into(lead, row)
    return row, known


def test_full_lead_encodes_every_kind():
    row, known = encode({"age": 30, "mileage": 1200.5, "make": " Ford", "job": "Senior NURSE"})
    assert row.tolist() == [30.0, 1200.5, 1.0, 0.375]
    assert known == pytest.approx(1.0)


def test_missing_and_unknown_values_are_nan_and_lower_completeness():
    row, known = encode({"age": 30, "make": "tesla", "job": "astronaut", "extra": "ignored"})
    assert row[0] == 30 and all(math.isnan(v) for v in row[1:])
    assert known == pytest.approx(0.4)


def test_nan_number_counts_as_missing():
    row, known = encode({"age": 30, "mileage": float("nan")})
    assert math.isnan(row[1]) and known == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("lead", "field", "code", "reason"),
    [
        ({}, "lead_data.age", "missing", "is required"),
        ({"age": None}, "lead_data.age", "missing", "is required"),
        ({"age": float("nan")}, "lead_data.age", "missing", "is required"),
        ({"age": "30"}, "lead_data.age", "type", "must be a number, not a string"),
        ({"age": True}, "lead_data.age", "type", "must be a number, not a boolean"),
        ({"age": [30]}, "lead_data.age", "type", "must be a number, not an array"),
        ({"age": 15}, "lead_data.age", "range", "must be at least 16"),
        ({"age": 100.5}, "lead_data.age", "range", "must be at most 100"),
        ({"age": 30, "mileage": -1}, "lead_data.mileage", "range", "must be at least 0"),
        ({"age": 30, "make": [3]}, "lead_data.make", "type", "must be a string, not an array"),
        ({"age": 30, "job": 3}, "lead_data.job", "type", "must be a string, not a number"),
        ({"age": 30, "job": {"a": 1}}, "lead_data.job", "type", "must be a string, not an object"),
    ],
)
def test_bad_values_name_the_field(lead, field, code, reason):
    with pytest.raises(LeadError) as info:
        encode(lead)
    assert (info.value.field, info.value.code, info.value.reason) == (field, code, reason)


def test_bounds_are_inclusive_and_infinity_allowed_when_unbounded():
    row, _ = encode({"age": 16, "mileage": math.inf})
    assert row[0] == 16 and row[1] == math.inf
    row, _ = encode({"age": 100})
    assert row[0] == 100


def test_numpy_scalars_are_numbers():
    row, _ = encode({"age": np.int64(40), "mileage": np.float32(2.5)})
    assert row[:2].tolist() == [40.0, 2.5]


def test_writes_into_ctypes_buffer():
    buffer = (ctypes.c_double * 4)()
    LeadEncoder(SPECS, TABLES).encode_into({"age": 20, "make": "toyota"}, buffer)
    assert buffer[0] == 20 and buffer[2] == 0.0 and math.isnan(buffer[3])


def test_uniform_completeness_without_importance():
    _, known = encode({"age": 30, "make": "ford"}, importance=None)
    assert known == pytest.approx(0.5)


def test_text_memo_is_bounded_and_consistent():
    encoder = LeadEncoder(SPECS, TABLES)
    row = np.empty(4)
    for i in range(TEXT_MEMO_SIZE + 5):
        encoder.encode_into({"age": 20, "job": f"nurse {i}"}, row)
        assert row[3] == 0.5
    assert len(encoder._text_memo["job"]) <= TEXT_MEMO_SIZE


def test_field_prefix_for_training_messages():
    encoder = LeadEncoder(SPECS, TABLES, field_prefix="")
    with pytest.raises(LeadError) as info:
        encoder.encode_into({"age": 5}, np.empty(4))
    assert info.value.field == "age"


@given(st.text(max_size=40))
def test_text_value_ignores_case_punctuation_and_repeats(text):
    weights = {"nurse": 0.5, "senior": 0.25}
    value = text_value(text, weights)
    again = text_value(" , ".join(text_tokens(text)).upper() + " " + text, weights)
    assert value == again or (math.isnan(value) and math.isnan(again))
    assert math.isnan(value) or value in (0.5, 0.25, 0.375)


@pytest.mark.parametrize("served", [29, 29.0, "29.0", "29", " 2.9e1 "])
def test_numeric_category_is_the_same_in_training_and_serving(served):
    from engine.features.tables import fit_categories

    # A CSV's integer column with gaps reads "29.0"; a JSON client sends 29.
    values = fit_categories(["29.0", "29.0", "7.0", "7", "02134", "02134"], min_count=2)
    assert sorted(values) == ["02134", "29", "7"]  # "7.0" and "7" are one category
    tables = EncoderTables({"make": values}, {"job": {}})
    row = np.full(4, -7.0)
    LeadEncoder(SPECS, tables).encode_into({"age": 30, "make": served}, row)
    assert row[2] == float(values.index("29"))


@pytest.mark.parametrize(("served", "code"), [(True, 0.0), (False, 1.0), (2134, None)])
def test_booleans_and_zip_like_categories(served, code):
    tables = EncoderTables({"make": ["true", "false", "02134"]}, {"job": {}})
    row = np.full(4, -7.0)
    LeadEncoder(SPECS, tables).encode_into({"age": 30, "make": served}, row)
    assert (math.isnan(row[2]) and code is None) or row[2] == code


def test_category_spellings_are_memoised_within_bounds():
    from engine.features.encoder import TEXT_MEMO_MAX_CHARS, CategoryCodes

    codes = CategoryCodes({"toyota": 0.0, "ford": 1.0})
    assert codes["Toyota "] == 0.0 and "Toyota " in codes  # normalised once, remembered
    assert math.isnan(codes["tesla"]) and "tesla" in codes  # unseen: NaN, remembered
    long_value = "Ford" + " " * TEXT_MEMO_MAX_CHARS
    assert codes[long_value] == 1.0 and long_value not in codes  # too long to keep
    for i in range(TEXT_MEMO_SIZE + 10):
        codes[f"make {i}"]
    # Full: the spellings were forgotten at once, the fitted codes stayed.
    assert len(codes) <= 2 + TEXT_MEMO_SIZE
    assert codes["toyota"] == 0.0 and codes["ford"] == 1.0 and "Toyota " not in codes
