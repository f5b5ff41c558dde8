"""``MONITORING_CONFIG``: the one place the service's alerting thresholds are set.

The variable holds a JSON object (every key optional; the defaults are the seed's)::

    {"alerts": true,
     "thresholds": {"latency_ms": 500, "error_rate": 0.01,
                    "acceptance_rate": 0.40, "drift_psi": 0.1}}

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

An invalid value stops the service at start with a message naming ``MONITORING_CONFIG``
and the key.
"""

from __future__ import annotations

import math

import msgspec

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


class MonitoringConfig(msgspec.Struct, frozen=True):
    """Alerting switch and thresholds (see the module docstring)."""

    alerts: bool = True
    latency_ms: float = _THRESHOLD_RANGES["latency_ms"][0]
    error_rate: float = _THRESHOLD_RANGES["error_rate"][0]
    acceptance_rate: float = _THRESHOLD_RANGES["acceptance_rate"][0]
    drift_psi: float = _THRESHOLD_RANGES["drift_psi"][0]

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
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise MonitoringError(f"{VARIABLE} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MonitoringError(f"{VARIABLE} must be a JSON object")
    unknown = sorted(set(document) - {"alerts", "thresholds"})
    if unknown:
        raise MonitoringError(f"{VARIABLE}: unknown key {unknown[0]!r} (known: alerts, thresholds)")
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
    values = {name: _threshold(name, value) for name, value in thresholds.items()}
    return MonitoringConfig(alerts=alerts, **values)
