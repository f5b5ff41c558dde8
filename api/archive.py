"""The opt-in lead archive in a worker: built from the settings, flushed every tick.

With ``LEAD_ARCHIVE_DIR`` unset there is no archive object at all and the scoring
handlers do nothing for it. Set, each worker gets a ``LeadArchive``
(``engine.archive.writer``): the handlers hand it every successfully scored lead, the
reload watcher's tick flushes it to its writer thread, and the lifespan shutdown closes
it, so a graceful stop loses nothing. Counts go to ``ml_archive_records_total``.

An archive enabled without a usable key (``LEAD_ARCHIVE_KEYS``), or with a directory it
cannot write, stops the service at start: the master checks in ``on_starting`` and every
worker again when it opens the archive, with a message naming the variable.
"""

from __future__ import annotations

from api import metrics
from api.runtime import ModelRuntime
from api.settings import ServiceSettings
from engine.archive.keys import service_keys
from engine.archive.policy import PolicyBook
from engine.archive.segments import prepare_directory
from engine.archive.writer import LeadArchive


def open_lead_archive(settings: ServiceSettings, runtime: ModelRuntime) -> LeadArchive | None:
    """Return this worker's lead archive, flushed on every tick (None when off).

    Raises:
        ArchiveError: The archive is on but has no usable key (``ArchiveKeyError``) or
            cannot write its directory.
    """
    if settings.lead_archive_dir is None:
        return None
    keys = service_keys(settings.lead_archive_keys)
    prepare_directory(settings.lead_archive_dir)
    environment = settings.environment

    def count(outcome: str, amount: int) -> None:
        metrics.ARCHIVE_RECORDS.labels(outcome, environment).inc(amount)

    archive = LeadArchive(
        settings.lead_archive_dir,
        keys,
        PolicyBook(runtime.config),
        lambda: runtime.scorer.models,
        on_count=count,
    )
    runtime.tick_hooks.append(archive.flush)
    return archive
