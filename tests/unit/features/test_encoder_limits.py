"""Hostile values at the encoder: numbers beyond a double, long texts."""

import ctypes

import numpy as np
import pytest

from engine.config import FeatureSpec
from engine.errors import LeadError
from engine.features import encoder as encoder_module
from engine.features.encoder import TEXT_MEMO_MAX_CHARS, LeadEncoder
from engine.features.tables import EncoderTables

SPECS = [
    FeatureSpec("amount", "numerical", 0, False),  # no bounds declared
    FeatureSpec("bio", "text", 1, False),
]
TABLES = EncoderTables({}, {"bio": {"pilot": 0.5, "chef": -0.5}})


@pytest.mark.parametrize("value", [10**400, -(10**400), 2**1024])
@pytest.mark.parametrize("row", [(ctypes.c_double * 2)(), np.empty(2)], ids=["ctypes", "numpy"])
def test_integer_beyond_a_double_is_a_lead_error(value, row):
    encoder = LeadEncoder(SPECS, TABLES)
    with pytest.raises(LeadError) as info:
        encoder.encode_into({"amount": value}, row)
    assert info.value.field == "lead_data.amount" and info.value.code == "range"


def test_largest_integers_that_fit_still_encode():
    encoder = LeadEncoder(SPECS, TABLES)
    row = np.empty(2)
    encoder.encode_into({"amount": 2**1023}, row)
    assert row[0] == float(2**1023)


def test_only_short_texts_are_memoised(monkeypatch):
    encoder = LeadEncoder(SPECS, TABLES)
    row = np.empty(2)
    long_text = "pilot " + "x" * TEXT_MEMO_MAX_CHARS
    encoder.encode_into({"bio": long_text}, row)
    assert row[1] == 0.5
    encoder.encode_into({"bio": "chef"}, row)
    assert list(encoder._text_memo["bio"]) == ["chef"]
    monkeypatch.setattr(encoder_module, "TEXT_MEMO_SIZE", 1)
    encoder.encode_into({"bio": "pilot"}, row)  # full: cleared, then kept
    assert list(encoder._text_memo["bio"]) == ["pilot"]
