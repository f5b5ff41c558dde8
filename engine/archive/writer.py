"""The lead archive of one worker: a bounded buffer on the hot path, a writer thread.

- ``keep`` (the request handler, once per scored lead) appends one tuple of references
  to a list: no copy, no I/O, no encryption. When the archive is off there is no
  ``LeadArchive`` at all and the handler does nothing.
- ``flush`` (every reload-watcher tick, ~50 ms, from ``ModelRuntime.tick_hooks`` on the
  event loop) hands the buffered leads to the writer thread with a snapshot of the
  installed models, and reports counts.
- The writer thread splits each lead into clear and sealed features
  (``engine.archive.policy``), seals it (``engine.archive.codec``) and appends whole
  batches to this worker's segment file of the vertical (``engine.archive.segments``),
  rotating it by size and when the current archive key changes (checked every
  ``KEY_CHECK_SECONDS``). It gives the interpreter lock back every ``YIELD_EVERY``
  records, so a large batch never holds the event loop up for long.
- ``close`` (graceful stop) flushes, lets the writer drain, and closes every segment
  (fsync, rename to ``.jsonl``): nothing buffered is lost on a graceful stop.

Bounded: at most ``capacity`` leads are buffered or waiting for the writer; beyond that
``keep`` drops the lead and counts it (``dropped``), so scoring never waits for a disk.
A write error (disk full) counts the batch as ``failed``, logs the error number (never a
value) and moves on to a new segment after ``WRITE_RETRY_SECONDS`` (leads of the vertical
in between are counted as failed too).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.archive.codec import Sealer
from engine.archive.errors import ArchiveKeyError
from engine.archive.keys import ArchiveKeys
from engine.archive.policy import PolicyBook
from engine.archive.segments import Segment

if TYPE_CHECKING:
    from engine.scoring.model import LoadedModel
    from engine.scoring.result import ScoreResult

KEY_CHECK_SECONDS = 30.0
# After a write error a vertical waits this long before opening a new segment, so a full
# disk costs one file per pause, not one per batch.
WRITE_RETRY_SECONDS = 5.0
YIELD_EVERY = 8  # ~0.2 ms of sealing at most between two chances for the loop
DEFAULT_CAPACITY = 10_000
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
log = logging.getLogger("ml_service.archive")
# (scored at, vertical, lead_data, lead_id, result): references only.
Entry = tuple[float, str, Mapping[str, Any], str | None, "ScoreResult"]
Batch = tuple[list[Entry], dict[str, "LoadedModel"]]


class _Lane:
    """The open segment of one vertical and the sealer of its records."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self.segment: Segment | None = None


class LeadArchive:
    """Keeps scored leads of one worker in the encrypted archive (see module docstring)."""

    def __init__(
        self,
        directory: Path,
        keys: ArchiveKeys,
        book: PolicyBook,
        models: Callable[[], Mapping[str, LoadedModel]],
        *,
        capacity: int = DEFAULT_CAPACITY,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        on_count: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
        key_check_seconds: float = KEY_CHECK_SECONDS,
    ) -> None:
        """Start the archive's writer thread.

        Args:
            directory: The archive directory (``LEAD_ARCHIVE_DIR``).
            keys: The archive keys; must have a current key.
            book: Which features are sealed, per vertical and model version.
            models: Returns the installed model of each vertical (called on ``flush``).
            capacity: Most leads buffered or waiting for the writer.
            segment_bytes: A segment is rotated once it holds at least this much.
            on_count: Called on the flushing thread with (``written`` | ``dropped`` |
                ``failed``, how many since the last call).
            clock: Epoch seconds, for ``scored_at``.
            key_check_seconds: How often the writer re-reads the key directory.

        Raises:
            ArchiveKeyError: ``keys`` has no current key.
        """
        self.directory = directory
        self.keys = keys
        self._kid = keys.current_id
        self._book = book
        self._models = models
        self._capacity = capacity
        self._segment_bytes = segment_bytes
        self._on_count = on_count
        self._now = clock
        self._pending: list[Entry] = []
        self._room = capacity
        self._backlog = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._lanes: dict[str, _Lane] = {}
        self._retry_at: dict[str, float] = {}
        self._key_check_seconds = key_check_seconds
        self._next_key_check = time.monotonic() + key_check_seconds
        self.dropped = self.written = self.failed = 0
        self._reported = {"written": 0, "dropped": 0, "failed": 0}
        self._thread = threading.Thread(target=self._run, name="lead-archive", daemon=True)
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------------

    def keep(
        self,
        vertical: str,
        lead: Mapping[str, Any],
        lead_id: str | None,
        result: ScoreResult,
    ) -> None:
        """Buffer one scored lead (references only; dropped and counted when full)."""
        pending = self._pending
        if len(pending) < self._room:
            pending.append((self._now(), vertical, lead, lead_id, result))
        else:
            self.dropped += 1

    def flush(self) -> None:
        """Hand the buffered leads to the writer thread and report counts."""
        if self._pending:
            batch, self._pending = self._pending, []
            with self._lock:
                self._backlog += len(batch)
            self._queue.put((batch, dict(self._models())))
        self._room = self._capacity - self._backlog
        self._report()

    def close(self, timeout: float = 10.0) -> None:
        """Write everything buffered, close every segment and stop the writer thread."""
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("lead archive writer did not finish in time", extra={"seconds": timeout})
        self._report()

    def _report(self) -> None:
        if self._on_count is None:
            return
        for outcome, total in (
            ("written", self.written),
            ("dropped", self.dropped),
            ("failed", self.failed),
        ):
            delta = total - self._reported[outcome]
            if delta:
                self._reported[outcome] = total
                self._on_count(outcome, delta)

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch, models = item
            try:
                self._write(batch, models)
            except Exception:  # a writer that dies would silently stop the archive
                log.exception("lead archive batch failed")
                self.failed += len(batch)
            finally:
                with self._lock:
                    self._backlog -= len(batch)
        for vertical in list(self._lanes):
            self._close_lane(vertical)

    def _write(self, batch: list[Entry], models: Mapping[str, LoadedModel]) -> None:
        self._check_key()
        chunks: dict[str, list[bytes]] = {}
        for count, (scored_at, vertical, lead, lead_id, result) in enumerate(batch, 1):
            if count % YIELD_EVERY == 0:
                time.sleep(0)  # let the event loop take the interpreter lock
            try:
                model = models.get(vertical)
                version = result.model_version
                encoder = model.encoder if model is not None and model.version == version else None
                clear, secret = self._book.policy(vertical, version, encoder).split(lead)
                line = self._lane(vertical).sealer.record(
                    vertical=vertical,
                    model_version=version,
                    scored_at=scored_at,
                    score=result.score,
                    accepted=result.accepted,
                    clear=clear,
                    secret=secret,
                    lead_id=lead_id,
                )
            except Exception as exc:  # never a value in the log: the type says enough
                self.failed += 1
                log.error(
                    "lead not archived", extra={"vertical": vertical, "error": type(exc).__name__}
                )
                continue
            chunks.setdefault(vertical, []).append(line)
        for vertical, lines in chunks.items():
            self._append(vertical, b"".join(lines), len(lines))

    def _lane(self, vertical: str) -> _Lane:
        lane = self._lanes.get(vertical)
        if lane is None:
            if not self._book.configured(vertical):  # never a path from a caller's string
                raise ValueError("vertical is not configured")
            sealer = Sealer(self._kid, self.keys.key(self._kid))
            lane = self._lanes[vertical] = _Lane(sealer)
        return lane

    def _append(self, vertical: str, data: bytes, count: int) -> None:
        lane = self._lanes[vertical]
        if lane.segment is None and time.monotonic() < self._retry_at.get(vertical, 0.0):
            self.failed += count  # still pausing after a write error
            return
        try:
            if lane.segment is None:
                lane.segment = Segment(self.directory / vertical, lane.sealer.seg)
            lane.segment.append(data)
        except OSError as exc:
            self.failed += count
            log.error(
                "lead archive write failed",
                extra={"vertical": vertical, "errno": exc.errno, "reason": exc.strerror},
            )
            if lane.segment is not None:
                lane.segment.abandon()
            del self._lanes[vertical]  # a new segment (and salt) after the pause
            self._retry_at[vertical] = time.monotonic() + WRITE_RETRY_SECONDS
            return
        self.written += count
        if lane.segment.size >= self._segment_bytes:
            self._close_lane(vertical)

    def _close_lane(self, vertical: str) -> None:
        lane = self._lanes.pop(vertical)
        if lane.segment is None:
            return
        try:
            lane.segment.close()
        except OSError as exc:
            log.error(
                "lead archive segment not closed cleanly",
                extra={"vertical": vertical, "errno": exc.errno, "reason": exc.strerror},
            )

    def _check_key(self) -> None:
        """Follow a key rotation: new segments under the new current key."""
        now = time.monotonic()
        if now < self._next_key_check:
            return
        self._next_key_check = now + self._key_check_seconds
        try:
            current = self.keys.refresh()
        except ArchiveKeyError as exc:
            log.error("archive keys not re-read; the current key stays", extra={"reason": str(exc)})
            return
        if current is not None and current != self._kid:
            log.info("archive key rotated", extra={"previous": self._kid, "current": current})
            self._kid = current
            for vertical in list(self._lanes):
                self._close_lane(vertical)
