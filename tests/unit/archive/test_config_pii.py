"""The ``pii`` feature option: parsed for every kind, default false, strictly typed."""

import pytest
import yaml

from engine.config import feature_specs, load_config
from engine.errors import ConfigError
from tests.conftest import BANK_CONFIG


def config(tmp_path, features: dict):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "verticals": {
                    "v": {
                        "feature_config": features,
                        "pricing": {"base_price": 10, "floor": 1, "ceiling": 20},
                    }
                }
            }
        )
    )
    return path


def test_pii_is_read_for_every_kind_and_defaults_to_false(tmp_path):
    path = config(
        tmp_path,
        {
            "numerical": {"age": {"pii": True}, "income": {}},
            "categorical": {"zip": {"pii": True}, "make": {}},
            "text": {"address": {"pii": True, "min_count": 3}, "notes": {}},
        },
    )
    specs = feature_specs(load_config(path).verticals["v"])
    assert {s.name: s.pii for s in specs} == {
        "age": True,
        "income": False,
        "zip": True,
        "make": False,
        "address": True,
        "notes": False,
    }
    assert [s.min_count for s in specs if s.name == "address"] == [3]


def test_list_form_is_never_pii(tmp_path):
    path = config(tmp_path, {"categorical": ["make"], "text": ["notes"]})
    assert not any(s.pii for s in feature_specs(load_config(path).verticals["v"]))


def test_a_non_boolean_pii_is_refused(tmp_path):
    path = config(tmp_path, {"text": {"address": {"pii": "sometimes"}}})
    with pytest.raises(ConfigError, match="pii"):
        load_config(path)


def test_bank_example_marks_nothing():
    bank = load_config(BANK_CONFIG).verticals["bank"]
    assert not any(s.pii for s in feature_specs(bank))
