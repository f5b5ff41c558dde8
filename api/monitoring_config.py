"""``MONITORING_CONFIG``: the one place the service's alerting thresholds are set.

The variable holds a JSON object (every key optional; the defaults are the seed's)::

    {"alerts": true,
     "thresholds": {"latency_ms": 500, "error_rate": 0.01,
                    "acceptance_rate": 0.40, "drift_psi": 0.1},
     "windows": {"drift_minutes": 60, "performance_hours": [24, 168]},
     "feedback_retention_days": 30, "store": "local"}

What it governs:

- ``thresholds.latency_ms``: a request slower than this counts in
  ``ml_slow_requests_total{route}`` and logs one ``slow request`` warning (at most one
  line per second per worker, with the number of slow requests it stands for).
- Every threshold is exported by the master as ``ml_alert_threshold{name}``
  (``latency_p99_seconds``, ``error_rate``, ``acceptance_rate``, ``drift_psi``), and the
  alert rules (``deploy/prometheus/alerts.yml``) compare their signals against those
  series, so a threshold is changed here, per deployment, never in the rules.
- ``alerts: false`` marks a deployment that must not page on its thresholds (a load
  test, a sandbox): no ``ml_alert_threshold`` series and no slow-request log lines (the
  counter still counts). Rules that report breakage rather than a threshold (target
  down, no model loaded, reload failures, restarting workers) still fire.

- ``windows.drift_minutes``: the sliding window of the drift figures (PSI of every
  feature and of the score, ``ml_model_drift``).
- ``windows.performance_hours``: the windows of realized and estimated performance
  (``ml_model_performance{kind="realized"|"estimated", window="24h"|...}``).
- ``feedback_retention_days``: how long a lead scored with a ``lead_id`` is remembered for
  its outcome (``POST /api/v1/feedback``); an outcome after that is answered 404.
- ``quality_refresh_seconds`` (default 30): how often the quality figures are recomputed
  (and, at most every 10 s, how often workers hand their drift counts to the store).
- ``store``: where scored leads, outcomes and drift counts live. ``local`` (default): a
  SQLite file shared by the workers of one machine. ``redis``: the fleet's Redis
  (``REDIS_URL``), so an outcome may reach any replica and drift is computed over the
  fleet; it needs ``MONITORING_KEY``, the same lead-id key file on every replica.

An invalid value stops the service at start with a message naming ``MONITORING_CONFIG``
and the key.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from api.json_setting import json_object

VARIABLE = "MONITORING_CONFIG"

# name -> (default, lowest allowed, highest allowed); the seed's thresholds.
_THRESHOLD_RANGES: dict[str, tuple[float, float, float]] = {
    "latency_ms": (500.0, 0.0, 3_600_000.0),
    "error_rate": (0.01, 0.0, 1.0),
    "acceptance_rate": (0.40, 0.0, 1.0),
    "drift_psi": (0.1, 0.0, 100.0),
}


class MonitoringError(ValueError):
    """``MONITORING_CONFIG`` is not a valid monitoring configuration."""


_MAX_WINDOW_HOURS = 24 * 366
_MAX_RETENTION_DAYS = 3660


class MonitoringConfig(msgspec.Struct, frozen=True):
    """Alerting switch, thresholds and monitoring windows (see the module docstring)."""

    alerts: bool = True
    drift_minutes: int = 60
    performance_hours: tuple[int, ...] = (24, 168)
    feedback_retention_days: int = 30
    quality_refresh_seconds: int = 30
    latency_ms: float = _THRESHOLD_RANGES["latency_ms"][0]
    error_rate: float = _THRESHOLD_RANGES["error_rate"][0]
    acceptance_rate: float = _THRESHOLD_RANGES["acceptance_rate"][0]
    drift_psi: float = _THRESHOLD_RANGES["drift_psi"][0]
    store: Literal["local", "redis"] = "local"

    @property
    def slow_request_seconds(self) -> float:
        """The slow-request threshold in seconds."""
        return self.latency_ms / 1000.0

    def alert_thresholds(self) -> dict[str, float]:
        """The ``ml_alert_threshold`` series by name (empty when alerts are off)."""
        if not self.alerts:
            return {}
        return {
            "latency_p99_seconds": self.slow_request_seconds,
            "error_rate": self.error_rate,
            "acceptance_rate": self.acceptance_rate,
            "drift_psi": self.drift_psi,
        }


def _threshold(name: str, value: object) -> float:
    _default, low, high = _THRESHOLD_RANGES[name]
    # bool is an int in Python; "true" as a threshold is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MonitoringError(
            f"{VARIABLE}: thresholds.{name} must be a number, not {type(value).__name__}"
        )
    number = float(value)
    if not math.isfinite(number) or not low < number <= high:
        raise MonitoringError(
            f"{VARIABLE}: thresholds.{name}={value!r} must be above {low:g} and at most {high:.15g}"
        )
    return number


def parse_monitoring_config(raw: str | None) -> MonitoringConfig:
    """Parse ``MONITORING_CONFIG`` (unset or empty: the defaults).

    Raises:
        MonitoringError: Not a JSON object, an unknown key, or a value of the wrong type
            or out of range; the message names the variable and the key.
    """
    if raw is None or not raw.strip():
        return MonitoringConfig()
    known = (
        "alerts",
        "thresholds",
        "windows",
        "feedback_retention_days",
        "quality_refresh_seconds",
        "store",
    )
    document = json_object(VARIABLE, raw, known, MonitoringError)
    alerts = document.get("alerts", True)
    if not isinstance(alerts, bool):
        raise MonitoringError(f"{VARIABLE}: alerts must be true or false")
    thresholds = document.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise MonitoringError(f"{VARIABLE}: thresholds must be a JSON object")
    unknown = sorted(set(thresholds) - set(_THRESHOLD_RANGES))
    if unknown:
        raise MonitoringError(
            f"{VARIABLE}: unknown threshold {unknown[0]!r} (known: {', '.join(_THRESHOLD_RANGES)})"
        )
    values: dict[str, object] = {
        name: _threshold(name, value) for name, value in thresholds.items()
    }
    values.update(_windows(document.get("windows", {})))
    if "quality_refresh_seconds" in document:
        values["quality_refresh_seconds"] = _whole(
            "quality_refresh_seconds", document["quality_refresh_seconds"], 3600
        )
    if "feedback_retention_days" in document:
        values["feedback_retention_days"] = _whole(
            "feedback_retention_days", document["feedback_retention_days"], _MAX_RETENTION_DAYS
        )
    store = document.get("store", "local")
    if store not in ("local", "redis"):
        raise MonitoringError(f"{VARIABLE}: store must be 'local' or 'redis'")
    values["store"] = store
    return MonitoringConfig(alerts=alerts, **values)  # type: ignore[arg-type]


def _whole(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise MonitoringError(f"{VARIABLE}: {name} must be a whole number from 1 to {high}")
    return value


def _windows(windows: object) -> dict[str, object]:
    if not isinstance(windows, dict):
        raise MonitoringError(f"{VARIABLE}: windows must be a JSON object")
    unknown = sorted(set(windows) - {"drift_minutes", "performance_hours"})
    if unknown:
        raise MonitoringError(
            f"{VARIABLE}: unknown window {unknown[0]!r} (known: drift_minutes, performance_hours)"
        )
    values: dict[str, object] = {}
    if "drift_minutes" in windows:
        values["drift_minutes"] = _whole(
            "windows.drift_minutes", windows["drift_minutes"], _MAX_WINDOW_HOURS * 60
        )
    if "performance_hours" in windows:
        hours = windows["performance_hours"]
        if not isinstance(hours, list) or not 1 <= len(hours) <= 8:
            raise MonitoringError(
                f"{VARIABLE}: windows.performance_hours must be a list of 1 to 8 whole numbers"
            )
        checked = [_whole("windows.performance_hours[]", h, _MAX_WINDOW_HOURS) for h in hours]
        if len(set(checked)) != len(checked):
            raise MonitoringError(f"{VARIABLE}: windows.performance_hours repeats a window")
        values["performance_hours"] = tuple(sorted(checked))
    return values
