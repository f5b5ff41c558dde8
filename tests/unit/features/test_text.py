import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.features.text import category_of_number, normalise_category, text_tokens


def test_tokens_fold_case_punctuation_and_repeats():
    assert text_tokens("  Austin,  TX 78701 austin") == ["austin", "tx", "78701"]
    assert text_tokens("SW_Engineer/Dev") == ["sw", "engineer", "dev"]
    assert text_tokens("ＴＸ") == ["tx"]  # NFKC: full-width letters
    assert text_tokens(" ,;- ") == []


def test_category_normalisation_keeps_punctuation():
    assert normalise_category("  Toyota ") == "toyota"
    assert normalise_category("F-150  Super") == "f-150 super"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("29.0", "29"),
        ("29", "29"),
        ("2.9E1", "29"),
        ("-0", "0"),
        ("-3.50", "-3.5"),
        ("0.1", "0.1"),
        ("02134", "02134"),  # a leading zero: an identifier, not a number
        ("1e999", "1e999"),  # overflows a float: kept as text
        ("+5", "+5"),  # not JSON's grammar
        ("123456789012345678901234567890", "123456789012345678901234567890"),
    ],
)
def test_numeric_categories_have_one_canonical_text(text, canonical):
    assert normalise_category(text) == canonical


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_a_json_number_is_the_category_of_its_csv_text(number):
    # What a CSV writer (Python's str, pandas) writes for the number, read back.
    assert normalise_category(str(number)) == category_of_number(number)
    assert normalise_category(str(float(number))) == category_of_number(float(number))


def test_booleans_and_non_finite_numbers():
    assert category_of_number(True) == normalise_category("True") == "true"
    assert category_of_number(False) == "false"
    assert category_of_number(float("inf")) == category_of_number(float("nan")) == ""


@given(st.text())
def test_tokens_are_idempotent(text):
    tokens = text_tokens(text)
    assert text_tokens(" ".join(tokens)) == tokens
    assert len(set(tokens)) == len(tokens)
