"""Demand shared across the fleet: a sync loop between ``FleetDemand`` and Redis.

The scorer records every lead in ``engine.pricing.demand.FleetDemand``, in memory, on the
hot path. This loop, on the same event loop but off the request path, exchanges those
counts with Redis once per ``interval`` (1 s by default), in **one pipelined round trip**
(no transaction: the counters are independent and a MULTI would only add latency):

- ``INCRBY`` each ``(vertical, bucket)`` counter by the leads this process recorded in
  that bucket since the last sync, and ``EXPIRE`` it a window plus a bucket from now,
  so the keys of a vertical never outnumber one window of buckets (memory is bounded
  whatever the traffic, with no cleanup job);
- ``MGET`` the buckets of each vertical's window: their sum is the fleet's count, which
  ``FleetDemand.apply_fleet`` turns into the fleet-wide rate that pricing uses.

Keys are ``{prefix}{{vertical}}:{width}:{bucket}``: ``bucket`` is epoch seconds divided
by the bucket ``width`` (``engine.pricing.demand.bucket_layout``), so every worker of
every replica counts a given second in the same key; the width is in the key so that
replicas running different windows (mid-rollout) never mix buckets of different sizes;
the braces are a Redis Cluster hash tag, so one vertical's window stays one ``MGET`` on
one shard.

Failure is the normal case to design for. ``RedisLink.call`` answers None when Redis is
down, frozen past the link's timeout, or the breaker is open: the loop then gives the
counts back to ``FleetDemand`` (``restore_pending``, bounded to the window) and marks
the fleet view stale, so prices use the local rate at once. When Redis answers again,
the next sync pushes the backlog and the fleet view recovers, a Redis restarted empty
included. Delivery is at least once: a pipeline sent to a Redis that froze before
answering may still run when it thaws, after its counts were given back and pushed
again, so one batch (about one interval of this process's leads) can count twice per
freeze. Making it exactly once needs a Lua script with a batch marker; one interval in
a five-minute window is well within the demand factor's tolerance.

The loop logs nothing per sync: the link logs Redis going away and coming back.
Commands Redis rejects (a full ``maxmemory``, a foreign key of the wrong type) are
logged once when they start and once when they stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from api.redis_link import RedisLink
from engine.pricing.demand import FleetDemand

PREFIX = "ml-service:demand:"

log = logging.getLogger("ml_service.fleet")


class DemandSync:
    """Exchanges ``FleetDemand``'s counts with Redis every ``interval`` (see above).

    Args:
        link: The service's Redis link (timeouts and circuit breaker).
        demand: The counters the scorer records into.
        windows: Window in seconds of each vertical whose fleet total is read (the
            verticals with demand pricing); each must match ``demand``'s window.
        interval: Seconds between syncs; below ``demand.stale_after``, so the fleet
            view stays fresh while Redis answers.
        prefix: Key prefix.
        clock: Epoch seconds; the same clock as the scorer's, so buckets line up.

    Raises:
        ValueError: ``interval`` is not below ``demand.stale_after``, or a window differs
            from the one ``demand`` counts with.
    """

    def __init__(
        self,
        link: RedisLink,
        demand: FleetDemand,
        windows: Mapping[str, int],
        interval: float = 1.0,
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < interval < demand.stale_after:
            raise ValueError(
                f"the demand sync interval ({interval} s) must be positive and below the "
                f"fleet view's staleness bound ({demand.stale_after} s)"
            )
        mismatched = sorted(v for v, s in windows.items() if s != demand.window_of(v))
        if mismatched:
            raise ValueError(f"demand windows differ from FleetDemand's for {mismatched}")
        self._link = link
        self._demand = demand
        self._windows = dict(windows)
        self.interval = interval
        self._prefix = prefix
        self._clock = clock
        self._lock = asyncio.Lock()  # one exchange at a time (take, push, apply or restore)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rejecting = False

    def start(self) -> None:
        """Start the loop (call on the event loop; a second call does nothing)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop, then push what is left once (bounded by the link's timeout).

        The loop is not cancelled mid-exchange: it finishes its sync (the link bounds
        it), so the link's breaker never sees a call that neither succeeded nor failed.
        """
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.sync_once()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sync_once()
            except Exception:  # a bug, not Redis (the link absorbs those): keep syncing
                log.exception("demand sync failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    def _key(self, vertical: str, width: int, bucket: int) -> str:
        return f"{self._prefix}{{{vertical}}}:{width}:{bucket}"

    async def sync_once(self) -> bool:
        """Push the pending counts and read the fleet's totals, in one round trip.

        Returns:
            Whether Redis answered (False: the counts were kept for the next sync and
            rates are local until then).
        """
        async with self._lock:
            return await self._exchange()

    async def _exchange(self) -> bool:
        demand = self._demand
        pending = demand.take_pending()
        now = self._clock()
        # (vertical, bucket, count, key, ttl) to push; (vertical, keys) to read.
        writes: list[tuple[str, int, int, str, int]] = []
        for vertical, buckets in pending.items():
            width, span = demand.layout(vertical)
            ttl = (span + 1) * width
            writes.extend(
                (vertical, bucket, count, self._key(vertical, width, bucket), ttl)
                for bucket, count in buckets.items()
            )
        reads: list[tuple[str, list[str]]] = []
        for vertical in self._windows:
            width, span = demand.layout(vertical)
            current = int(now) // width
            window = range(current - span + 1, current + 1)
            reads.append((vertical, [self._key(vertical, width, b) for b in window]))

        async def exchange(client: Any) -> list[Any]:
            # raise_on_error=False: a command Redis rejects is answered in its place, so a
            # rejected INCRBY is given back alone, never with the counts Redis did take.
            async with client.pipeline(transaction=False) as pipe:
                for _, _, count, key, ttl in writes:
                    pipe.incrby(key, count)
                    pipe.expire(key, ttl)
                for _, keys in reads:
                    pipe.mget(keys)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
                return replies

        try:
            replies = await self._link.call(exchange) if writes or reads else []
        except BaseException:  # cancelled mid-exchange: keep the counts all the same
            demand.restore_pending(pending, now)
            demand.mark_stale()
            raise
        if replies is None:  # Redis down, frozen or the breaker open
            demand.restore_pending(pending, now)
            demand.mark_stale()
            return False
        failures: list[Exception] = []
        rejected: dict[str, dict[int, int]] = {}
        for (vertical, bucket, count, _, _), reply in zip(writes, replies[0::2], strict=False):
            if isinstance(reply, Exception):
                rejected.setdefault(vertical, {})[bucket] = count
                failures.append(reply)
        if rejected:
            demand.restore_pending(rejected, now)
        totals: dict[str, int] = {}
        for (vertical, _), reply in zip(reads, replies[2 * len(writes) :], strict=True):
            if isinstance(reply, Exception):
                failures.append(reply)  # this vertical's view goes stale if it persists
            else:
                totals[vertical] = sum(_count(value) for value in reply)
        demand.apply_fleet(totals, self._clock())
        self._report(failures)
        return True

    def _report(self, failures: list[Exception]) -> None:
        if bool(failures) == self._rejecting:
            return
        self._rejecting = bool(failures)
        if failures:
            log.error(
                "redis rejects demand commands: fleet demand is partial",
                extra={"problem": repr(failures[0]), "rejected": len(failures)},
            )
        else:
            log.warning("redis accepts demand commands again")


def _count(value: Any) -> int:
    """A counter's value: absent (None) or foreign (not an integer) counts nothing."""
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return 0
