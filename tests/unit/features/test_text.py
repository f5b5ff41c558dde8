from hypothesis import given
from hypothesis import strategies as st

from engine.features.text import normalise_category, text_tokens


def test_tokens_fold_case_punctuation_and_repeats():
    assert text_tokens("  Austin,  TX 78701 austin") == ["austin", "tx", "78701"]
    assert text_tokens("SW_Engineer/Dev") == ["sw", "engineer", "dev"]
    assert text_tokens("ＴＸ") == ["tx"]  # NFKC: full-width letters
    assert text_tokens(" ,;- ") == []


def test_category_normalisation_keeps_punctuation():
    assert normalise_category("  Toyota ") == "toyota"
    assert normalise_category("F-150  Super") == "f-150 super"


@given(st.text())
def test_tokens_are_idempotent(text):
    tokens = text_tokens(text)
    assert text_tokens(" ".join(tokens)) == tokens
    assert len(set(tokens)) == len(tokens)
