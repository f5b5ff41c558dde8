"""The worker's handle on the monitoring store: opened after fork, used off the event loop.

Every worker opens its own connection to the store shared by the machine's workers
(``engine.monitoring``: SQLite in WAL mode by default, or the fleet's Redis with
``MONITORING_CONFIG`` ``store: redis``), at lifespan startup, and talks to
it only through one background thread, so a slow disk never stalls a request and the
store sees one writer per process. A store that cannot be opened at all (an unwritable
directory) leaves the worker scoring without it: feedback is answered 503 and nothing is
remembered, and the problem is logged and counted; a corrupt or missing file is
recreated by the store itself and reported the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from api import metrics
from api.lead_keys import LeadIdHasher
from api.settings import ServiceSettings
from engine.monitoring.redis_store import open_redis_store
from engine.monitoring.sqlite_store import open_sqlite_store
from engine.monitoring.store import MonitoringStore, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("ml_service.monitoring")
STORE_TIMEOUT_MS = 500.0
"""The shortest wait a Redis monitoring store call gets (it runs on the store's thread)."""


class StoreIO:
    """One store connection, the single thread that uses it, and the lead-id hash."""

    def __init__(self, store: MonitoringStore, hash_lead_id: LeadIdHasher) -> None:
        self.store = store
        self.hash_lead_id = hash_lead_id  # the store never holds a client's lead id
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="monitoring-store")
        self.backlog = 0  # submitted calls not finished yet

    def submit(self, call: Callable[[MonitoringStore], T]) -> Future[T]:
        """Run ``call(store)`` on the store's thread; failures are logged there."""
        self.backlog += 1

        def run() -> T:
            try:
                return call(self.store)
            except StoreUnavailable as exc:  # an outage (Redis), not a bug: one line
                log.warning("monitoring store unavailable", extra={"problem": str(exc)})
                raise
            except Exception:
                log.exception("monitoring store call failed")
                raise
            finally:
                self.backlog -= 1

        return self._executor.submit(run)

    async def call(self, call: Callable[[MonitoringStore], T]) -> T:
        """Await ``call(store)`` run on the store's thread."""
        return await asyncio.wrap_future(self.submit(call))

    def close(self) -> None:
        """Finish what was submitted, then close the store."""
        self._executor.shutdown(wait=True)
        self.store.close()


def open_store(settings: ServiceSettings) -> StoreIO | None:
    """Open this worker's connection to the monitoring store (None if impossible)."""
    path = settings.monitoring_store_path
    env = settings.environment
    retention = settings.monitoring.feedback_retention_days * 86400.0
    on_redis = settings.monitoring.store == "redis"
    where = "redis" if on_redis else str(path)
    try:
        hasher = LeadIdHasher.load(settings.monitoring_key_path)
        store: MonitoringStore
        if on_redis:
            assert settings.redis_url is not None  # the settings refuse store=redis without it
            # Off the request path, batches of hundreds of leads: a longer wait than a
            # cache lookup may take, still bounded.
            timeout = max(float(settings.redis_timeout_ms), STORE_TIMEOUT_MS)
            store, report = open_redis_store(
                settings.redis_url, retention_seconds=retention, timeout_ms=timeout
            )
        else:
            store, report = open_sqlite_store(path, retention_seconds=retention)
    except Exception as exc:  # scoring goes on without feedback; say why, loudly
        metrics.MONITORING_STORE_OPENS.labels("failed", env).inc()
        log.error("monitoring store unavailable", extra={"path": where, "problem": str(exc)})
        return None
    if report.recovered:
        metrics.MONITORING_STORE_OPENS.labels("recovered", env).inc()
        log.error(
            "monitoring store was unusable and has been recreated",
            extra={"path": where, "problem": report.problem, "moved_to": report.moved_to},
        )
    else:
        metrics.MONITORING_STORE_OPENS.labels("created" if report.created else "opened", env).inc()
        if report.problem:  # found bad while other workers held it: recovered at next start
            log.error(
                "monitoring store has a problem",
                extra={"path": where, "problem": report.problem},
            )
    return StoreIO(store, hasher)
