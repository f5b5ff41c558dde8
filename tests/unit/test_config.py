from pathlib import Path

import pytest
import yaml

from engine.config import feature_specs, load_config
from engine.errors import ConfigError
from tests.conftest import BANK_CONFIG, DEMO_CONFIG


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def minimal(**vertical) -> dict:
    base = {
        "feature_config": {"numerical": {"age": {"min": 1, "max": 9}}, "categorical": ["x"]},
        "pricing": {"base_price": 10, "floor": 1, "ceiling": 20},
    }
    base.update(vertical)
    return {"verticals": {"v": base}}


def test_shipped_configs_load():
    demo = load_config(DEMO_CONFIG)
    assert set(demo.verticals) == {"auto", "home", "health", "life"}
    assert demo.threshold("auto") == 0.65 and demo.threshold("health") == 0.6
    auto = [s.name for s in feature_specs(demo.verticals["auto"])]
    assert auto == [
        "age",
        "driving_years",
        "vehicle_age",
        "annual_mileage",
        "vehicle_make",
        "vehicle_model",
        "usage_type",
        "occupation",
        "location",
    ]
    home = [s.name for s in feature_specs(demo.verticals["home"])]
    assert home == [
        "property_age",
        "square_footage",
        "property_value",
        "construction_type",
        "roof_type",
        "property_type",
        "address",
        "security_features",
    ]
    bank = load_config(BANK_CONFIG)
    assert "duration" not in [s.name for s in feature_specs(bank.verticals["bank"])]


def test_list_and_mapping_forms_give_column_order(tmp_path):
    config = load_config(write(tmp_path, minimal()))
    specs = feature_specs(config.verticals["v"])
    assert [(s.name, s.kind, s.index) for s in specs] == [
        ("age", "numerical", 0),
        ("x", "categorical", 1),
    ]
    assert specs[0].min == 1 and specs[1].min_count == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("verticals: [", "not valid YAML"),
        ({"verticals": {}}, "no verticals"),
        (minimal(scoring_threshold=1.5), "threshold must be in"),
        (minimal(extra=1), "unknown field"),
        ({"verticals": {"Bad Name": minimal()["verticals"]["v"]}}, "must match"),
        (minimal(feature_config={"numerical": ["a"], "text": ["a"]}), "listed twice"),
        (minimal(feature_config={}), "has no features"),
        (minimal(feature_config={"numerical": {"a": {"min": 5, "max": 1}}}), "min 5.0 is above"),
        (minimal(pricing={"base_price": 1, "floor": 5, "ceiling": 2}), "floor <= ceiling"),
        (
            minimal(pricing={"base_price": 1, "floor": 0, "ceiling": 2, "timezone": "Mars/Base"}),
            "unknown timezone",
        ),
        (
            minimal(
                pricing={
                    "base_price": 1,
                    "floor": 0,
                    "ceiling": 2,
                    "peak_hours": [{"start": "9:00", "end": "10:00", "multiplier": 1}],
                }
            ),
            "not HH:MM",
        ),
        (
            minimal(
                pricing={
                    "base_price": 1,
                    "floor": 0,
                    "ceiling": 2,
                    "peak_hours": [{"start": "10:00", "end": "09:00", "multiplier": 1}],
                }
            ),
            "is empty",
        ),
        (
            minimal(pricing={"base_price": 1, "floor": 0, "ceiling": 2, "day_of_week": {"fun": 1}}),
            "unknown weekday",
        ),
        (
            minimal(
                pricing={
                    "base_price": 1,
                    "floor": 0,
                    "ceiling": 2,
                    "location": {"field": "zip", "multipliers": {}},
                }
            ),
            "location field 'zip' unknown",
        ),
        (minimal(training={"target": "age"}), "target is also a feature"),
        (minimal(training={"delimiter": ";;"}), "one character"),
    ],
)
def test_bad_config_is_explained(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, data))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
