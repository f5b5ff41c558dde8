"""MONITORING_CONFIG: defaults, every key, and a clear refusal of every bad value."""

from __future__ import annotations

import re

import pytest

from api.monitoring_config import MonitoringConfig, MonitoringError, parse_monitoring_config
from api.settings import SettingsError, load_settings


@pytest.mark.parametrize("raw", [None, "", "  ", "{}"])
def test_unset_or_empty_gives_the_seed_thresholds(raw):
    config = parse_monitoring_config(raw)
    assert config == MonitoringConfig()
    assert config.alert_thresholds() == {
        "latency_p99_seconds": 0.5,
        "error_rate": 0.01,
        "acceptance_rate": 0.40,
        "drift_psi": 0.1,
    }
    assert config.slow_request_seconds == 0.5


def test_the_seed_example_and_every_threshold():
    config = parse_monitoring_config(
        '{"alerts": true, "thresholds": {"latency_ms": 250, "error_rate": 0.02,'
        ' "acceptance_rate": 0.35, "drift_psi": 0.2}}'
    )
    assert config.slow_request_seconds == 0.25
    assert config.alert_thresholds() == {
        "latency_p99_seconds": 0.25,
        "error_rate": 0.02,
        "acceptance_rate": 0.35,
        "drift_psi": 0.2,
    }


def test_alerts_false_exports_no_thresholds_but_keeps_the_slow_request_threshold():
    config = parse_monitoring_config('{"alerts": false, "thresholds": {"latency_ms": 80}}')
    assert config.alert_thresholds() == {}
    assert config.slow_request_seconds == 0.08


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"alert": true}', "unknown key 'alert'"),
        ('{"alerts": "yes"}', "alerts must be true or false"),
        ('{"thresholds": [500]}', "thresholds must be a JSON object"),
        ('{"thresholds": {"latency": 500}}', "unknown threshold 'latency'"),
        ('{"thresholds": {"latency_ms": "500"}}', "thresholds.latency_ms must be a number"),
        ('{"thresholds": {"latency_ms": true}}', "thresholds.latency_ms must be a number"),
        ('{"thresholds": {"latency_ms": 0}}', "thresholds.latency_ms=0 must be above 0"),
        ('{"thresholds": {"latency_ms": -5}}', "thresholds.latency_ms=-5"),
        ('{"thresholds": {"error_rate": 1.5}}', "thresholds.error_rate=1.5 must be above 0"),
        ('{"thresholds": {"acceptance_rate": 0}}', "thresholds.acceptance_rate=0"),
        ('{"thresholds": {"drift_psi": 1e999}}', "Number out of range"),
    ],
)
def test_bad_values_name_the_variable_and_the_key(raw, names):
    with pytest.raises(MonitoringError) as caught:
        parse_monitoring_config(raw)
    assert "MONITORING_CONFIG" in str(caught.value)
    assert names in str(caught.value)


def test_settings_refuse_a_bad_monitoring_config_naming_the_variable():
    with pytest.raises(SettingsError, match="MONITORING_CONFIG: unknown key 'x'"):
        load_settings({"MONITORING_CONFIG": '{"x": 1}'})
    settings = load_settings({"MONITORING_CONFIG": '{"thresholds": {"error_rate": 0.05}}'})
    assert settings.monitoring.error_rate == 0.05
    assert load_settings({}).monitoring == MonitoringConfig()


def test_windows_and_retention():
    config = parse_monitoring_config(
        '{"windows": {"drift_minutes": 15, "performance_hours": [168, 1, 24]},'
        ' "feedback_retention_days": 7}'
    )
    assert config.drift_minutes == 15
    assert config.performance_hours == (1, 24, 168)  # sorted
    assert config.feedback_retention_days == 7
    defaults = parse_monitoring_config(None)
    assert (defaults.drift_minutes, defaults.performance_hours) == (60, (24, 168))
    assert defaults.feedback_retention_days == 30


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ('{"windows": [1]}', "windows must be a JSON object"),
        ('{"windows": {"drift": 5}}', "unknown window 'drift'"),
        ('{"windows": {"drift_minutes": 0}}', "windows.drift_minutes must be a whole number"),
        ('{"windows": {"drift_minutes": 1.5}}', "windows.drift_minutes must be a whole number"),
        ('{"windows": {"performance_hours": []}}', "list of 1 to 8"),
        ('{"windows": {"performance_hours": [24, 24]}}', "repeats a window"),
        ('{"windows": {"performance_hours": [true]}}', "performance_hours[] must be a whole"),
        ('{"feedback_retention_days": -1}', "feedback_retention_days must be a whole number"),
    ],
)
def test_bad_windows_name_the_key(raw, names):
    with pytest.raises(MonitoringError, match=re.escape(names)):
        parse_monitoring_config(raw)


def test_the_store_is_local_unless_redis_is_asked_for_with_its_url_and_key(tmp_path):
    assert parse_monitoring_config(None).store == "local"
    assert parse_monitoring_config('{"store": "redis"}').store == "redis"
    with pytest.raises(MonitoringError, match="MONITORING_CONFIG: store must be"):
        parse_monitoring_config('{"store": "postgres"}')
    raw = {"MONITORING_CONFIG": '{"store": "redis"}'}
    with pytest.raises(SettingsError, match="needs REDIS_URL"):
        load_settings(raw)
    with pytest.raises(SettingsError, match="set MONITORING_KEY"):
        load_settings({**raw, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    settings = load_settings(
        {**raw, "REDIS_URL": "redis://127.0.0.1:6379/0", "MONITORING_KEY": str(tmp_path / "k")}
    )
    assert settings.monitoring.store == "redis"
