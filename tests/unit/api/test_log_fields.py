"""Error fields in logs: schema and model names kept, names a client made up hidden."""

import pytest

from api.logging import REDACTED_FIELD, loggable_field


@pytest.mark.parametrize(
    "field",
    [
        "vertical",
        "lead_data",
        "lead_data.age",
        "lead_data.Region_Code",
        "leads[3].lead_data.vehicle_make",
        "leads[0]",
        "versions.auto",
    ],
)
def test_schema_and_model_names_are_logged(field):
    assert loggable_field(field, "must be at most 100") == field


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("jane_doe", "Object contains unknown field `jane_doe`"),  # looks harmless: still hidden
        ("leads[0].ssn", "Object contains unknown field `ssn`"),
        ("jane.doe@example.com", "Object contains unknown field `jane.doe@example.com`"),
        ("Zoë Ünderhill", "Expected `int`"),  # not a name the schema could have
        ("a b", "whatever"),
        ("", "whatever"),
    ],
)
def test_names_a_client_chose_are_hidden(field, message):
    assert loggable_field(field, message) == REDACTED_FIELD


def test_no_field():
    assert loggable_field(None, "request body is not valid JSON") is None
