"""Reloads across replicas: a reload on one instance reaches every instance through Redis.

Within one instance, a reload bumps the generation of the shared reload state and every
worker follows (``api.runtime``). Across instances (several gunicorn masters over one
model directory, ``REDIS_URL`` set), the worker in slot 0 of each instance links that
generation to a fleet-wide stamp in Redis:

- **Publishing.** When the local generation moves for a reason of this instance (the
  reload API, a rollback, a shadow change, SIGHUP), it ``INCR``s the stamp
  ``ml-service:reload:stamp`` and ``PUBLISH``es it on ``ml-service:reload``.
- **Following.** A subscriber hears a newer stamp at once; a poll of the stamp (every
  ``POLL_SECONDS``) catches up whatever the subscriber missed (the instance was
  restarting, Redis was down). A newer stamp bumps the local generation, and the local
  workers re-read the shared ``CURRENT`` pointers as for a local reload. A generation
  bumped because of Redis is not published again, so instances never echo each other.

Redis is reached through ``api.redis_link.RedisLink``: when it is down, reloads stay
local (each instance still reloads on its own API call or SIGHUP); a local reload Redis
did not hear of is published once it is back, and a stamp lower than the one applied (a
Redis restarted without its data) becomes the new starting point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from api.redis_link import RedisLink
from api.reload_state import ReloadState

STAMP_KEY = "ml-service:reload:stamp"
CHANNEL = "ml-service:reload"
POLL_SECONDS = 0.5

log = logging.getLogger("ml_service.fleet")


class FleetReload:
    """Links this instance's reload generation with the fleet's stamp (see above)."""

    def __init__(
        self, link: RedisLink, state: ReloadState, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._link = link
        self._state = state
        self._clock = clock
        self._seen_generation = state.generation()
        self._applied: int | None = None  # the fleet stamp this instance follows
        self._ours: set[int] = set()  # generations bumped because of Redis
        self._next_poll = 0.0
        self._busy = False
        self._stopped = False
        self._unpublished = False  # a local reload Redis did not hear of yet
        self._subscriber: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listening on the channel (call on the event loop)."""
        self._subscriber = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening and publishing (before the link closes)."""
        self._stopped = True
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._subscriber

    def tick(self) -> None:
        """Every watcher tick: publish a local reload, poll the stamp when due."""
        if self._busy or self._stopped:
            return
        generation = self._state.generation()
        local = generation > self._seen_generation and generation not in self._ours
        self._seen_generation = max(self._seen_generation, generation)
        local = local or self._unpublished
        now = self._clock()
        if not local and now < self._next_poll:
            return
        self._next_poll = now + POLL_SECONDS
        self._busy = True
        task = asyncio.get_running_loop().create_task(self._round(local))
        task.add_done_callback(lambda _: setattr(self, "_busy", False))

    async def _round(self, publish: bool) -> None:
        if publish:
            stamp = await self._link.call(lambda r: r.incr(STAMP_KEY))
            self._unpublished = stamp is None  # Redis away: publish once it is back
            if stamp is None:
                return
            if int(stamp) <= (self._applied or 0):
                # Redis lost its data: take the stamp past what this instance applied, so
                # the others (who applied as much) see a newer one.
                stamp = (self._applied or 0) + 1
                await self._link.call(lambda r: r.set(STAMP_KEY, stamp))
            self._applied = int(stamp)
            await self._link.call(lambda r: r.publish(CHANNEL, str(stamp)))
            log.info("reload published to the fleet", extra={"stamp": int(stamp)})
            return
        # INCRBY 0 reads the stamp as an integer, 0 when no reload ever happened (a GET
        # would answer None, which the link also answers when Redis is away).
        stamp = await self._link.call(lambda r: r.incrby(STAMP_KEY, 0))
        if stamp is not None:
            self._follow(int(stamp))

    def _follow(self, stamp: int) -> None:
        """Reload locally if the fleet's stamp is newer than the one applied here."""
        if self._applied is None or stamp < self._applied:
            # First contact, or a Redis that lost its data (restarted without a save):
            # today's stamp is where this instance is; the next reload counts from it.
            self._applied = stamp
            return
        if stamp == self._applied:
            return
        self._applied = stamp
        generation = self._state.bump()
        self._ours.add(generation)
        log.info("fleet reload followed", extra={"stamp": stamp, "generation": generation})

    async def _listen(self) -> None:
        """Hear newer stamps at once (the poll catches up whatever this misses)."""
        while True:
            pubsub: Any = self._link.client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._follow(int(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: the poll covers; try again shortly
                await asyncio.sleep(POLL_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
