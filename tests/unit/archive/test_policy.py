"""What the archive keeps in clear, on a real trained auto model and the demo config."""

import math

import msgspec
import pytest

from engine.archive.policy import FieldPolicy, PolicyBook
from engine.config import feature_specs

LEAD = {
    "age": 35,
    "driving_years": 15.5,
    "vehicle_age": 3,
    "annual_mileage": 12000,
    "vehicle_make": "Toyota",  # common in training: a known category
    "vehicle_model": "F-150",
    "usage_type": "commute",
    "occupation": "Software Engineer",  # text, marked pii
    "location": "Austin, TX",  # text, marked pii
    "email": "jane.doe@example.com",  # not a feature
    "phone": "+1 512 555 0199",  # not a feature
}


def test_demo_config_marks_locations_and_free_text(demo_config):
    marked = {
        v: [s.name for s in feature_specs(c) if s.pii] for v, c in demo_config.verticals.items()
    }
    assert marked == {
        "auto": ["occupation", "location"],
        "home": ["address", "security_features"],
        "health": ["pre_existing_conditions", "location"],
        "life": ["occupation", "location"],
    }


def test_numbers_and_known_categories_clear_the_rest_sealed(demo_config, auto_model):
    policy = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder)
    clear, secret = policy.split(LEAD)
    assert clear == {
        "age": 35,
        "driving_years": 15.5,
        "vehicle_age": 3,
        "annual_mileage": 12000,
        "vehicle_make": "Toyota",
        "vehicle_model": "F-150",
        "usage_type": "commute",
    }
    assert secret == {"occupation": "Software Engineer", "location": "Austin, TX"}


def test_keys_that_are_not_features_are_dropped(demo_config, auto_model):
    policy = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder)
    clear, secret = policy.split(LEAD)
    assert "email" not in {**clear, **secret} and "phone" not in {**clear, **secret}
    assert set(clear) | set(secret) <= set(auto_model.feature_names)


def test_unseen_category_is_sealed_even_when_not_marked(demo_config, auto_model):
    # A name typed into the make field is an unseen category: sealed, never clear.
    lead = {**LEAD, "vehicle_make": "Jane Doe", "usage_type": "COMMUTE "}
    clear, secret = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder).split(lead)
    assert secret["vehicle_make"] == "Jane Doe" and "vehicle_make" not in clear
    assert clear["usage_type"] == "COMMUTE "  # normalises to a known category: kept as sent


def test_missing_nan_and_infinite_numbers(demo_config, auto_model):
    lead = {"age": 40, "driving_years": math.nan, "vehicle_age": None, "annual_mileage": math.inf}
    clear, secret = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder).split(lead)
    assert clear == {"age": 40, "annual_mileage": "Infinity"} and secret == {}
    assert msgspec.json.encode(clear)  # JSON has no NaN/inf: what is kept must encode


def test_marking_a_numerical_or_categorical_feature_seals_it(demo_config, auto_model):
    auto = demo_config.verticals["auto"]
    features = msgspec.structs.replace(
        auto.feature_config,
        numerical={
            "age": {"pii": True},
            "driving_years": {},
            "vehicle_age": {},
            "annual_mileage": {},
        },
        categorical={"vehicle_make": {"pii": True}, "vehicle_model": {}, "usage_type": {}},
    )
    config = msgspec.convert(
        {
            "verticals": {
                "auto": msgspec.to_builtins(msgspec.structs.replace(auto, feature_config=features))
            }
        },
        type(demo_config),
    )
    clear, secret = PolicyBook(config).policy("auto", "1.0.0", auto_model.encoder).split(LEAD)
    assert {"age", "vehicle_make", "occupation", "location"} == set(secret)
    assert "driving_years" in clear and "usage_type" in clear


def test_model_feature_no_longer_configured_is_sealed(demo_config, auto_model):
    auto = demo_config.verticals["auto"]
    features = msgspec.structs.replace(
        auto.feature_config,
        numerical={"driving_years": {}, "vehicle_age": {}, "annual_mileage": {}},
        categorical={"vehicle_model": {}, "usage_type": {}},
    )
    config = msgspec.convert(
        {
            "verticals": {
                "auto": msgspec.to_builtins(msgspec.structs.replace(auto, feature_config=features))
            }
        },
        type(demo_config),
    )
    _, secret = PolicyBook(config).policy("auto", "1.0.0", auto_model.encoder).split(LEAD)
    assert {"age", "vehicle_make"} <= set(secret)


def test_without_the_model_everything_configured_is_sealed(demo_config):
    clear, secret = PolicyBook(demo_config).policy("auto", "0.9.0", None).split(LEAD)
    assert clear == {} and "age" in secret and "email" not in secret


def test_invalid_lead_seals_categories_rather_than_guess(demo_config, auto_model):
    # Scored leads always validate; should one not, nothing is guessed to be known.
    lead = {**LEAD, "age": "not a number"}
    clear, secret = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder).split(lead)
    assert "vehicle_make" in secret and "age" in secret and "vehicle_make" not in clear


def test_policies_are_cached_and_bounded(demo_config, auto_model):
    book = PolicyBook(demo_config, limit=2)
    first = book.policy("auto", "1.0.0", auto_model.encoder)
    assert book.policy("auto", "1.0.0", None) is first  # cached: survives a model swap
    book.policy("auto", "1.1.0", auto_model.encoder)
    book.policy("auto", "1.2.0", auto_model.encoder)
    assert book.policy("auto", "1.0.0", None) is not first  # evicted, sealed fallback
    assert book.configured("auto") and not book.configured("../etc")


@pytest.mark.parametrize("value", [True, [1], {"a": 1}])
def test_odd_values_are_sealed(value):
    policy = FieldPolicy(None, ("age",), frozenset())
    assert policy.split({"age": value}) == ({}, {"age": value})


def test_known_categories_are_remembered_unseen_ones_are_not(demo_config, auto_model):
    policy = PolicyBook(demo_config).policy("auto", "1.0.0", auto_model.encoder)
    policy.split({**LEAD, "vehicle_model": "Jane Doe"})
    # Without a usable encode (an invalid lead), only remembered known values stay clear.
    clear, secret = policy.split({**LEAD, "age": "invalid", "vehicle_model": "Jane Doe"})
    assert clear["vehicle_make"] == "Toyota" and clear["usage_type"] == "commute"
    assert secret["vehicle_model"] == "Jane Doe"
