from pathlib import Path

import pytest

from api.settings import SettingsError, load_settings


def test_defaults():
    settings = load_settings({})
    assert settings.bind == "0.0.0.0:8000" and settings.metrics_port == 9090
    assert settings.workers >= 1 and settings.pin_workers is True
    assert settings.model_path is None and settings.log_level == "info"
    assert settings.reload_state_path == Path("var/run/reload.state")
    assert settings.metrics_dir == Path("var/run/metrics")


def test_values_are_parsed():
    settings = load_settings(
        {
            "MODEL_PATH": "/m",
            "WORKERS": "3",
            "PIN_WORKERS": "off",
            "METRICS_PORT": "9100",
            "LOG_LEVEL": "WARNING",
            "MAX_BODY_BYTES": "1024",
            "MAX_BATCH": "10",
            "ENVIRONMENT": "prod",
            "CACHE_CONFIG": '{"enable": true, "ttl": 60}',
            "RUN_DIR": "/run/ml",
        }
    )
    assert settings.model_path == Path("/m") and settings.workers == 3
    assert not settings.pin_workers and settings.metrics_port == 9100
    assert settings.log_level == "warning" and settings.max_body_bytes == 1024
    assert settings.cache.enable and settings.cache.ttl == 60
    assert settings.metrics_dir == Path("/run/ml/metrics")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKERS": "two"}, "WORKERS='two' is not a whole number"),
        ({"WORKERS": "0"}, "WORKERS=0 must be between 1 and 256"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT=70000"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' must be one of"),
        ({"PIN_WORKERS": "maybe"}, "PIN_WORKERS='maybe'"),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES=10"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)
