"""Service settings: parsed once from the environment into a frozen object.

| variable | default | meaning |
| --- | --- | --- |
| ``CONFIG_PATH`` | the repository's ``config/models.yaml`` | model configuration |
| ``MODEL_PATH`` | the config's ``model_base_path`` | model store root |
| ``MODEL_TRUSTED_KEYS`` | ``var/keys/trusted`` | public keys that model loading trusts |
| ``JWT_PUBLIC_KEYS`` | ``var/keys/jwt/trusted`` | the token keyring (``api.token_keys``) |
| ``JWT_ISSUER`` / ``JWT_AUDIENCE`` | ``ml-service`` | required ``iss`` and ``aud`` claims |
| ``BIND`` | ``0.0.0.0:8000`` | listen address |
| ``WORKERS`` | cores available to the process | worker processes, one per core |
| ``PIN_WORKERS`` | ``1`` | pin each worker to one core (``0``: let the kernel schedule) |
| ``METRICS_PORT`` | ``9090`` | where the master serves ``/metrics`` |
| ``RUN_DIR`` | ``var/run`` | runtime state: reload generation file, metrics files |
| ``ENVIRONMENT`` | ``development`` | the ``environment`` label of every metric |
| ``LOG_LEVEL`` | ``info`` | ``debug``, ``info``, ``warning``, ``error`` |
| ``MAX_BODY_BYTES`` | ``65536`` | larger request bodies get 413 |
| ``MAX_BATCH`` | ``500`` | most leads in one batch request |
| ``MAX_BATCH_BODY_BYTES`` | ``MAX_BATCH`` x 1 KiB, at least | larger batch request bodies get 413 |
|  | ``MAX_BODY_BYTES`` | (a realistic lead is ~250 bytes) |
| ``BODY_TIMEOUT_SECONDS`` | ``10`` | a request body still arriving after this gets 408 |
| ``HEADER_TIMEOUT_SECONDS`` | ``10`` | a request head (or a new connection's first |
|  |  | request) not complete after this gets 408 and the connection is closed |
| ``CACHE_CONFIG`` | unset (no cache) | JSON: the prediction cache (``api.cache_config``) |
| ``MONITORING_CONFIG`` | the seed's thresholds | JSON: ``alerts``, ``thresholds``, ``windows``, |
|  |  | ``feedback_retention_days``, ``store`` (``api.monitoring_config``) |
| ``MONITORING_DB`` | ``RUN_DIR``/monitoring/monitoring.db | the monitoring store shared by the |
|  |  | workers: scored leads awaiting outcomes, drift counts (``engine.monitoring``) |
| ``REDIS_URL`` | unset | the fleet tier (``redis://host:port/db``): reloads reach every |
|  |  | instance (``api.fleet``), demand is counted over the fleet, and the |
|  |  | cache's Redis tier and the Redis monitoring store can be chosen; unset, |
|  |  | each instance stands alone (``docs/scale-out.md``) |
| ``REDIS_TIMEOUT_MS`` | ``50`` | the longest a Redis call may wait (``api.redis_link``) |
| ``MONITORING_KEY`` | ``lead-id.key`` beside the store | the secret that keys the hash of |
|  |  | lead ids in that store (``api.lead_keys``); created at first start |
| ``TLS_CERT_FILE`` / ``TLS_KEY_FILE`` | unset | PEM certificate chain and private key: |
|  |  | set both to serve TLS 1.3 only (``api.tls``), neither for plain HTTP |
| ``LEAD_ARCHIVE_DIR`` | unset (off) | keep scored leads there, PII sealed (``engine.archive``) |
| ``LEAD_ARCHIVE_KEYS`` | ``var/keys/archive`` | the archive's AES-256 keys |

A bad value stops the service at start with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from api.cache_config import CacheConfig, CacheError, parse_cache_config
from api.monitoring_config import MonitoringConfig, MonitoringError, parse_monitoring_config
from engine.archive.keys import DEFAULT_KEYS_DIR as DEFAULT_ARCHIVE_KEYS
from engine.cache.keys import SECRET_BYTES
from engine.settings import DEFAULT_CONFIG, DEFAULT_TRUSTED_KEYS

LOG_LEVELS = ("debug", "info", "warning", "error")
# The batch route's body allowance per lead (MAX_BATCH_BODY_BYTES defaults to MAX_BATCH
# of these): about four realistic leads' worth, so MAX_BATCH real leads always fit.
BATCH_LEAD_BYTES = 1024
DEFAULT_JWT_DIR = Path("var/keys/jwt")
JWT_KEY_NAME = "jwt-signing.key"


class SettingsError(ValueError):
    """An environment variable has an unusable value."""


class ServiceSettings(msgspec.Struct, frozen=True):
    """Everything the service reads from its environment."""

    config_path: Path
    model_path: Path | None
    trusted_keys: Path
    jwt_public_keys: Path
    jwt_issuer: str
    jwt_audience: str
    bind: str
    workers: int
    pin_workers: bool
    metrics_port: int
    run_dir: Path
    environment: str
    log_level: str
    max_body_bytes: int
    max_batch: int
    cache: CacheConfig = CacheConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_batch_body_bytes: int = 500 * BATCH_LEAD_BYTES
    body_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 10.0
    lead_archive_dir: Path | None = None
    lead_archive_keys: Path = DEFAULT_ARCHIVE_KEYS
    monitoring_db: Path | None = None  # None: RUN_DIR/monitoring/monitoring.db
    monitoring_key: Path | None = None  # None: lead-id.key beside the monitoring store
    redis_url: str | None = None
    redis_timeout_ms: int = 50

    @property
    def reload_state_path(self) -> Path:
        """The shared generation file that signals reloads to every worker."""
        return self.run_dir / "reload.state"

    @property
    def monitoring_store_path(self) -> Path:
        """The monitoring store's SQLite file (``MONITORING_DB``)."""
        return self.monitoring_db or self.run_dir / "monitoring" / "monitoring.db"

    @property
    def monitoring_key_path(self) -> Path:
        """The secret keying stored lead ids (``MONITORING_KEY``): it goes with the store."""
        return self.monitoring_key or self.monitoring_store_path.with_name("lead-id.key")

    @property
    def metrics_dir(self) -> Path:
        """``PROMETHEUS_MULTIPROC_DIR`` of this service."""
        return self.run_dir / "metrics"


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} must be between {low} and {high}")
    return value


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be 1/0, true/false, yes/no or on/off")


def _tls_files(environ: Mapping[str, str]) -> tuple[Path | None, Path | None]:
    cert, key = environ.get("TLS_CERT_FILE") or None, environ.get("TLS_KEY_FILE") or None
    if (cert is None) != (key is None):
        missing = "TLS_KEY_FILE" if key is None else "TLS_CERT_FILE"
        given = "TLS_CERT_FILE" if key is None else "TLS_KEY_FILE"
        raise SettingsError(f"{missing} is not set but {given} is: set both for TLS, or neither")
    for name, value in (("TLS_CERT_FILE", cert), ("TLS_KEY_FILE", key)):
        if value is not None and not (Path(value).is_file() and os.access(value, os.R_OK)):
            raise SettingsError(f"{name}={value!r} is not a readable file")
    return (Path(cert) if cert else None), (Path(key) if key else None)


def _cache(environ: Mapping[str, str], redis_url: str | None) -> CacheConfig:
    try:
        config = parse_cache_config(environ.get("CACHE_CONFIG"))
    except CacheError as exc:
        raise SettingsError(str(exc)) from None
    if config.enable and config.backend != "memory" and redis_url is None:
        raise SettingsError(
            f"CACHE_CONFIG: backend {config.backend!r} needs REDIS_URL, which is not set"
        )
    secret = config.secret_file
    if config.enable and secret is not None:
        try:
            size = secret.stat().st_size
            readable = os.access(secret, os.R_OK)
        except OSError:
            size, readable = 0, False
        if not readable or size < SECRET_BYTES:
            raise SettingsError(
                f"CACHE_CONFIG: secret_file {str(secret)!r} is not a readable file of "
                f"{SECRET_BYTES} bytes at least"
            )
    return config


def _redis_url(environ: Mapping[str, str]) -> str | None:
    url = environ.get("REDIS_URL") or None
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"REDIS_URL={url!r} must start with redis://, rediss:// or unix://")
    return url


def _monitoring(environ: Mapping[str, str], redis_url: str | None) -> MonitoringConfig:
    try:
        config = parse_monitoring_config(environ.get("MONITORING_CONFIG"))
    except MonitoringError as exc:
        raise SettingsError(str(exc)) from None
    if config.store == "redis":
        if redis_url is None:
            raise SettingsError(
                "MONITORING_CONFIG: store 'redis' needs REDIS_URL, which is not set"
            )
        if not environ.get("MONITORING_KEY"):
            # Each replica would otherwise make its own key: an outcome reaching another
            # replica would hash to another id and never find its lead.
            raise SettingsError(
                "MONITORING_CONFIG: store 'redis' is shared by every replica, so they need "
                "one lead-id key: set MONITORING_KEY to the same file everywhere"
            )
    return config


def load_settings(environ: Mapping[str, str] = os.environ) -> ServiceSettings:
    """Parse the service settings from ``environ``.

    Raises:
        SettingsError: A variable has an unusable value; the message names it.
    """
    level = environ.get("LOG_LEVEL", "info").strip().lower()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r} must be one of {', '.join(LOG_LEVELS)}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model_path = environ.get("MODEL_PATH")
    tls_cert_file, tls_key_file = _tls_files(environ)
    max_body_bytes = _int(environ, "MAX_BODY_BYTES", 65536, 256, 64 * 1024 * 1024)
    max_batch = _int(environ, "MAX_BATCH", 500, 1, 100_000)
    archive_dir = environ.get("LEAD_ARCHIVE_DIR")
    redis_url = _redis_url(environ)
    return ServiceSettings(
        config_path=Path(environ.get("CONFIG_PATH") or DEFAULT_CONFIG),
        model_path=Path(model_path) if model_path else None,
        trusted_keys=Path(environ.get("MODEL_TRUSTED_KEYS") or DEFAULT_TRUSTED_KEYS),
        jwt_public_keys=Path(environ.get("JWT_PUBLIC_KEYS") or DEFAULT_JWT_DIR / "trusted"),
        jwt_issuer=environ.get("JWT_ISSUER") or "ml-service",
        jwt_audience=environ.get("JWT_AUDIENCE") or "ml-service",
        bind=environ.get("BIND") or "0.0.0.0:8000",
        workers=_int(environ, "WORKERS", cores or 1, 1, 256),
        pin_workers=_bool(environ, "PIN_WORKERS", default=True),
        metrics_port=_int(environ, "METRICS_PORT", 9090, 1, 65535),
        run_dir=Path(environ.get("RUN_DIR") or "var/run"),
        environment=environ.get("ENVIRONMENT") or "development",
        log_level=level,
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        max_batch_body_bytes=_int(
            environ,
            "MAX_BATCH_BODY_BYTES",
            max(max_body_bytes, max_batch * BATCH_LEAD_BYTES),
            256,
            256 * 1024 * 1024,
        ),
        body_timeout_seconds=float(_int(environ, "BODY_TIMEOUT_SECONDS", 10, 1, 3600)),
        header_timeout_seconds=float(_int(environ, "HEADER_TIMEOUT_SECONDS", 10, 1, 3600)),
        cache=_cache(environ, redis_url),
        monitoring=_monitoring(environ, redis_url),
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        lead_archive_dir=Path(archive_dir) if archive_dir else None,
        lead_archive_keys=Path(environ.get("LEAD_ARCHIVE_KEYS") or DEFAULT_ARCHIVE_KEYS),
        monitoring_db=Path(environ["MONITORING_DB"]) if environ.get("MONITORING_DB") else None,
        monitoring_key=Path(environ["MONITORING_KEY"]) if environ.get("MONITORING_KEY") else None,
        redis_url=redis_url,
        redis_timeout_ms=_int(environ, "REDIS_TIMEOUT_MS", 50, 1, 10_000),
    )
