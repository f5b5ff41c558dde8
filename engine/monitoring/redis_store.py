"""The fleet's monitoring store: one Redis shared by every worker of every replica.

Same semantics as the embedded ``engine.monitoring.sqlite_store`` (the
``MonitoringStore`` Protocol), so an outcome may land on any replica and drift is counted
over the whole fleet. Each worker opens its own store with ``open_redis_store`` and calls
it from its one store thread (``api.monitoring_io``), never from the event loop: this is
the synchronous client with short timeouts (``timeout_ms``, 50 ms by default, for
connecting and for every socket read or write).

Layout (every key under ``<prefix>v<LAYOUT_VERSION>:``, the prefix defaulting to
``ml-service:monitoring:``; ``<prefix>layout`` holds the layout version, so a future
layout lives under its own keys beside this one and opening reports the difference):

- ``lead:<lead_id>``: a hash per scored lead: ``t`` (scored_at), ``v`` (vertical),
  ``j`` (the lead's labelled entry below, less its outcome), and once known ``c``
  (converted) and ``o`` (outcome_at). It expires by itself (``PEXPIRE``) at
  ``scored_at + retention`` plus ``expiry_grace_seconds``: Redis drops the leads that
  never got an outcome, without an index of every lead (which would cost as much memory
  again as the leads) and without a prune scanning them. ``accepted`` is not kept: no
  read returns it.
- ``labelled:<vertical>``: a sorted set of the leads with an outcome, scored by
  ``scored_at``, each member the JSON array ``[scored_at, lead_id, version, score,
  shadow_version, shadow_score, converted]``. A labelled lead never changes (a
  re-scoring keeps the scoring its outcome belongs to, a second outcome is a
  duplicate), so ``labelled()`` reads its window from this set alone, in pages, with no
  per-lead lookups.
- ``hours:<series>`` and ``minutes:<series>:<hour>``: the counts of a series
  (``<series>`` is the JSON array ``[vertical, version, role, name]``). Counts are kept per
  minute in one hash per hour with a field per minute, and summed per hour in a hash per
  series with a field per hour, packed as int32 (int64 when a count needs it): packed, a
  script adds a 200-bin row in 85 to 130 µs of Redis time (``bench_feedback_store.py``),
  about a quarter of what the same script costs with decimal text (whose formatting
  dominates, measured when choosing the layout), in about as much memory. A window from
  minute ``m`` reads two hashes: the minutes of ``m``'s hour from ``m`` on, and the
  totals of every later hour. Reading a week thus takes one round trip instead of
  10,080 keys, which matters because every replica recomputes its quality figures over
  24 h and 7 d windows every 30 s (by default).
- ``versions:<vertical>``: a sorted set of ``[version, role]`` scored by the last minute
  counted (``versions_with_counts``); ``series:<vertical>``: the vertical's series (for
  ``prune``); ``verticals``: the verticals that have labelled leads or counts.
- ``applied:<id>``: a mark, kept ``APPLIED_MARK_SECONDS``, that a chunk of counts was
  added (see faults below).

Every write that must be atomic is a Lua script (sent by SHA, loaded again when a
restarted Redis has forgotten it): remembering a lead unless it has an outcome,
recording an outcome once (two replicas racing on one lead: one records, the other gets
``duplicate``), adding counts element by element, and pruning. Batches go as pipelines
of script calls (``LEADS_PER_SCRIPT`` leads a call, ``SCRIPTS_PER_ROUND_TRIP`` calls a
round trip) so that no single call keeps Redis, which serves the scoring cache too,
busy for long. Some scripts touch keys they derive themselves (a lead's vertical's
labelled set, an hour's minutes): the layout is for one Redis (with replicas or
Sentinel), not Redis Cluster.

Expiry times are relative (``PEXPIRE``) and computed from this store's clock, never
from Redis's: a clock difference between a replica and Redis cannot expire data early,
and tests give the store a fixed clock. ``prune`` applies the retentions exactly (like
the SQLite store, at its ``now``) and returns what it removed: labelled leads and
per-minute count rows. Unlabelled leads are not counted: they expire by themselves. A
lead past its retention is treated as gone before prune or expiry removes it: its
outcome is ``unknown``, and re-scoring it starts afresh.

Faults (Redis down, frozen or restarting): reads, ``record_outcomes`` and ``prune`` raise
``StoreUnavailable``. ``remember`` and ``add_counts`` never lose data to a short outage:
what they could not write waits in a bounded backlog in memory
(``max_backlog_leads``, ``max_backlog_count_rows``; beyond them the oldest is dropped and
counted in ``dropped_leads`` and ``dropped_count_rows``) and is written first, in order,
by the next call that reaches Redis, whichever call it is, so reads see it too. A write
that timed out may still have been applied (a frozen Redis runs what it had received once
it thaws): writing a lead again is harmless, and a chunk of counts carries an id whose
``applied:`` mark makes a second delivery a no-op, so counts are added exactly once. For
``record_outcomes`` the same case answers ``duplicate`` to a retried outcome that was in
fact recorded. A Redis restarted empty simply starts a new store.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import msgspec
import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from engine.monitoring.store import (
    CountRow,
    LabelledScores,
    OpenReport,
    Outcome,
    OutcomeStatus,
    ScoredLead,
    StoreUnavailable,
    epoch_minute,
)

T = TypeVar("T")

LAYOUT_VERSION = 1
DEFAULT_PREFIX = "ml-service:monitoring:"
DEFAULT_TIMEOUT_MS = 50.0
# Keys outlive their retention by this much: covers replicas whose clocks differ a
# little, and keeps a lead at the very edge of its retention until its outcome is checked.
EXPIRY_GRACE_SECONDS = 3600.0
MAX_BACKLOG_LEADS = 100_000  # about 30 MB of Python objects at worst
MAX_BACKLOG_COUNT_ROWS = 10_000  # about 40 minutes of a worker's flushes
APPLIED_MARK_SECONDS = 3600.0  # far longer than a frozen Redis keeps a worker retrying
LEADS_PER_SCRIPT = 500
OUTCOMES_PER_SCRIPT = 1000
# A 200-bin row costs Redis 85 to 130 µs of script time (bench/bench_feedback_store.py):
# 20 a script keeps Redis, which also answers the cache's lookups, busy under 3 ms.
COUNT_ROWS_PER_SCRIPT = 20
SCRIPTS_PER_ROUND_TRIP = 8
LABELLED_PAGE = 5000
PRUNE_CHUNK = 5000

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

_STATUSES: tuple[OutcomeStatus, ...] = ("unknown", "recorded", "duplicate")

# Keeps or extends a key's expiry, never shortens it (PEXPIRE GT would leave a key
# without an expiry as it is).
_EXTEND = """
local function extend(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
"""

# KEYS: one lead hash per lead. ARGV[1]: the oldest scored_at still retained; then per
# lead: scored_at, vertical, labelled entry less its outcome, expiry (ms).
_REMEMBER = """
local oldest = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local a = 1 + (i - 1) * 4
  local held = redis.call('HMGET', key, 't', 'c')
  -- An outcome fixes the scoring it belongs to, for as long as the lead is retained.
  if not (held[2] and tonumber(held[1]) >= oldest) then
    if held[2] then redis.call('HDEL', key, 'c', 'o') end
    redis.call('HSET', key, 't', ARGV[a + 1], 'v', ARGV[a + 2], 'j', ARGV[a + 3])
    redis.call('PEXPIRE', key, ARGV[a + 4])
  end
end
return #KEYS
"""

# KEYS[1]: the set of verticals; KEYS[2..]: the lead hash of each outcome. ARGV: oldest
# scored_at retained, now, retention (s), grace (s), labelled-set key prefix; then per
# outcome: converted ('1' or '0'), outcome_at. Returns 0 unknown, 1 recorded, 2 duplicate.
_RECORD_OUTCOMES = (
    _EXTEND
    + """
local oldest, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local retention, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local statuses = {}
for i = 2, #KEYS do
  local a = 5 + (i - 2) * 2
  local lead = redis.call('HMGET', KEYS[i], 't', 'c', 'v', 'j')
  if not lead[1] or tonumber(lead[1]) < oldest then
    statuses[#statuses + 1] = 0
  elseif lead[2] then
    statuses[#statuses + 1] = 2
  else
    local converted = ARGV[a + 1]
    redis.call('HSET', KEYS[i], 'c', converted, 'o', ARGV[a + 2])
    local entry = lead[4] .. (converted == '1' and ',true]' or ',false]')
    local labelled = ARGV[5] .. lead[3]
    redis.call('ZADD', labelled, lead[1], entry)
    redis.call('SADD', KEYS[1], lead[3])
    local left = math.min(math.max(tonumber(lead[1]) + retention - now, 0), retention + 3600)
    local ttl = math.floor((left + grace) * 1000)
    extend(labelled, ttl)
    extend(KEYS[1], ttl)
    statuses[#statuses + 1] = 1
  end
end
return statuses
"""
)

# Counts are packed: a width byte ('4' or '8') then little-endian int32 (int64 when a
# count needs it) values. Lua numbers are doubles: exact up to 2**53. Values are unpacked
# and packed in slices, within the Lua stack.
_ADD_AND_SUBTRACT = """
local function decode(packed)
  local values = {}
  if not packed or #packed < 2 then return values end
  local code, width = 'i4', 4
  if string.sub(packed, 1, 1) == '8' then code, width = 'i8', 8 end
  local n, pos = (#packed - 1) / width, 2
  if n <= 500 then  -- the usual case: one call, its table as it is
    values = {struct.unpack('<' .. string.rep(code, n), packed, pos)}
    values[n + 1] = nil  -- the position after the last value
    return values
  end
  while #values < n do
    local k = math.min(n - #values, 500)
    local got = {struct.unpack('<' .. string.rep(code, k), packed, pos)}
    for i = 1, k do values[#values + 1] = got[i] end
    pos = got[k + 1]
  end
  return values
end
local function encode(values)
  local code, head = 'i4', '4'
  for i = 1, #values do
    if values[i] > 2147483647 or values[i] < -2147483648 then
      code, head = 'i8', '8'
      break
    end
  end
  local parts = {head}
  for first = 1, #values, 500 do
    local last = math.min(first + 499, #values)
    local format = '<' .. string.rep(code, last - first + 1)
    parts[#parts + 1] = struct.pack(format, unpack(values, first, last))
  end
  return table.concat(parts)
end
local function combine(stored, more, sign)
  local total, add = decode(stored), decode(more)
  for i = 1, #add do total[i] = (total[i] or 0) + sign * add[i] end
  return encode(total)
end
"""

# KEYS[1]: this chunk's applied mark; KEYS[2]: the set of verticals; then per row: its
# hour's minutes hash, its series' hours hash, its vertical's versions and series sets.
# ARGV[1]: how long the mark is kept (ms); then per row: minute, hour, counts, versions
# member, series member, vertical, expiry (ms). Returns the rows added (0: already were).
_ADD_COUNTS = (
    _EXTEND
    + _ADD_AND_SUBTRACT
    + """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local rows = (#KEYS - 2) / 4
for r = 1, rows do
  local k, a = 2 + (r - 1) * 4, 1 + (r - 1) * 7
  local minute, hour, counts = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ttl = tonumber(ARGV[a + 7])
  local stored = redis.call('HGET', KEYS[k + 1], minute)
  redis.call('HSET', KEYS[k + 1], minute, combine(stored, counts, 1))
  stored = redis.call('HGET', KEYS[k + 2], hour)
  redis.call('HSET', KEYS[k + 2], hour, combine(stored, counts, 1))
  redis.call('ZADD', KEYS[k + 3], 'GT', minute, ARGV[a + 4])
  redis.call('SADD', KEYS[k + 4], ARGV[a + 5])
  redis.call('SADD', KEYS[2], ARGV[a + 6])
  for key = k + 1, k + 4 do extend(KEYS[key], ttl) end
  extend(KEYS[2], ttl)
end
return rows
"""
)

# KEYS[1]: a labelled set. ARGV: the oldest scored_at kept, the most entries to remove.
_PRUNE_LABELLED = """
local n = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
n = math.min(n, tonumber(ARGV[2]))
if n > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - 1) end
return n
"""

# KEYS[1]: a series' hours hash; KEYS[2]: its vertical's series set. ARGV: the prefix of
# its minutes hashes, the oldest minute kept, the series member. Removes the minutes
# before the oldest, keeping every hour's total the sum of its minutes left; returns the
# minutes removed.
_PRUNE_SERIES = (
    _ADD_AND_SUBTRACT
    + """
local oldest = tonumber(ARGV[2])
local oldest_hour = math.floor(oldest / 60)
local removed = 0
for _, h in ipairs(redis.call('HKEYS', KEYS[1])) do
  local hour = tonumber(h)
  local minutes = ARGV[1] .. h
  if hour < oldest_hour then
    removed = removed + redis.call('HLEN', minutes)
    redis.call('DEL', minutes)
    redis.call('HDEL', KEYS[1], h)
  elseif hour == oldest_hour then
    local total = redis.call('HGET', KEYS[1], h)
    local flat = redis.call('HGETALL', minutes)
    local left = 0
    for i = 1, #flat, 2 do
      if tonumber(flat[i]) < oldest then
        total = combine(total, flat[i + 1], -1)
        redis.call('HDEL', minutes, flat[i])
        removed = removed + 1
      else
        left = left + 1
      end
    end
    if left == 0 then
      redis.call('DEL', minutes)
      redis.call('HDEL', KEYS[1], h)
    else
      redis.call('HSET', KEYS[1], h, total)
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return removed
"""
)

_SCRIPTS = {
    "remember": _REMEMBER,
    "record_outcomes": _RECORD_OUTCOMES,
    "add_counts": _ADD_COUNTS,
    "prune_labelled": _PRUNE_LABELLED,
    "prune_series": _PRUNE_SERIES,
}
_SHAS = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in _SCRIPTS.items()}

# Member of a labelled set: scored_at, lead_id, version, score, shadow version and score,
# converted.
_Labelled = tuple[float, str, str, float, str | None, float | None, bool]
_LABELLED_DECODER = msgspec.json.Decoder(list[_Labelled])
_VERSIONS_DECODER = msgspec.json.Decoder(list[tuple[str, str]])


class _LeadWrite(NamedTuple):
    """A lead encoded for ``_REMEMBER`` (the expiry is computed when it is sent)."""

    key: str
    scored_at: float
    vertical: str
    entry_head: bytes  # the labelled member without ``,converted]``


class _CountWrite(NamedTuple):
    """A count row encoded for ``_ADD_COUNTS`` (the expiry is computed when it is sent)."""

    keys: tuple[str, str, str, str]  # minutes, hours, versions, series
    minute: int
    hour: int
    counts: bytes
    version_member: bytes
    series_member: bytes
    vertical: str


class _CountChunk(NamedTuple):
    """Rows added by one script call, under one applied mark (exactly once)."""

    mark: str
    rows: tuple[_CountWrite, ...]


def _json(value: object) -> bytes:
    return msgspec.json.encode(value)


class RedisMonitoringStore:
    """``MonitoringStore`` on a Redis shared by replicas; see the module docstring.

    Open it with ``open_redis_store``, which also reports what it found. Any thread may
    call (calls are serialised by a lock); the service calls from one store thread.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``REDIS_URL``).
        retention_seconds: How long a scored lead is kept (from ``scored_at``); an
            outcome for an older lead is ``unknown``.
        counts_retention_seconds: How long per-minute counts are kept.
        timeout_ms: The longest wait for connecting and for each socket read or write.
        prefix: What every key starts with (several services may share a Redis).
        clock: Epoch seconds, the clock that stamps ``scored_at`` (injectable for tests):
            it decides expiries and which leads are past their retention in ``remember``.
        expiry_grace_seconds: How long keys outlive their retention.
        max_backlog_leads: The most leads kept for a Redis that cannot be reached.
        max_backlog_count_rows: The most count rows kept for it.

    Attributes:
        dropped_leads: Leads dropped from a full backlog (or refused by Redis) so far.
        dropped_count_rows: Count rows dropped likewise.
    """

    def __init__(
        self,
        url: str,
        retention_seconds: float = 30 * 86400,
        counts_retention_seconds: float = 7 * 86400,
        *,
        timeout_ms: float = DEFAULT_TIMEOUT_MS,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
        expiry_grace_seconds: float = EXPIRY_GRACE_SECONDS,
        max_backlog_leads: int = MAX_BACKLOG_LEADS,
        max_backlog_count_rows: int = MAX_BACKLOG_COUNT_ROWS,
    ) -> None:
        if not retention_seconds > 0 or not counts_retention_seconds > 0:
            raise ValueError("retentions must be positive")
        if not timeout_ms > 0 or expiry_grace_seconds < 0:
            raise ValueError("timeout_ms must be positive and expiry_grace_seconds not negative")
        if max_backlog_leads < 0 or max_backlog_count_rows < 0:
            raise ValueError("backlog bounds must not be negative")
        self.retention_seconds = float(retention_seconds)
        self.counts_retention_seconds = float(counts_retention_seconds)
        self.prefix = prefix
        self.expiry_grace_seconds = float(expiry_grace_seconds)
        self.max_backlog_leads = max_backlog_leads
        self.max_backlog_count_rows = max_backlog_count_rows
        self.dropped_leads = 0
        self.dropped_count_rows = 0
        seconds = timeout_ms / 1000.0
        # One retry, on a connection error only: a pooled connection that a restarted
        # Redis closed fails at once and is replaced. A timeout is never retried here
        # (the command may have been received); the backlog retries instead.
        self._client: Any = redis.Redis.from_url(
            url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._ns = f"{prefix}v{LAYOUT_VERSION}:"
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._leads: deque[_LeadWrite] = deque()
        self._count_chunks: deque[_CountChunk] = deque()
        self._count_rows = 0  # rows in _count_chunks

    # -- backlog ---------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Leads and count rows waiting for Redis."""
        return len(self._leads) + self._count_rows

    @property
    def backlog_leads(self) -> int:
        """Leads waiting for Redis."""
        return len(self._leads)

    @property
    def backlog_count_rows(self) -> int:
        """Count rows waiting for Redis."""
        return self._count_rows

    @property
    def dropped(self) -> int:
        """Leads and count rows dropped so far (``dropped_leads + dropped_count_rows``)."""
        return self.dropped_leads + self.dropped_count_rows

    # -- leads and outcomes ----------------------------------------------------------

    def remember(self, leads: Sequence[ScoredLead]) -> None:
        """Store scored leads, upserting by ``lead_id`` unless a lead has an outcome.

        Never raises ``StoreUnavailable``: what Redis does not take now waits in the
        backlog (module docstring).
        """
        writes = [self._encode_lead(lead) for lead in leads]  # bad input raises here
        with self._lock:
            self._usable()
            self._leads.extend(writes)
            excess = len(self._leads) - self.max_backlog_leads
            for _ in range(max(excess, 0)):
                self._leads.popleft()
            self.dropped_leads += max(excess, 0)
            self._replay_quietly()

    def record_outcomes(self, outcomes: Sequence[Outcome], now: float) -> list[OutcomeStatus]:
        """Record outcomes; return one status per outcome, in order.

        Each outcome is recorded atomically (of two replicas racing on a lead, one
        records it); a batch of more than ``OUTCOMES_PER_SCRIPT`` is not one
        transaction as a whole.

        Raises:
            StoreUnavailable: Redis cannot be reached; nothing is kept for later. An
                outcome sent just before Redis froze may still be recorded when it
                thaws (a retry then answers ``duplicate``).
        """
        if not outcomes:
            return []
        oldest = now - self.retention_seconds
        head = (
            repr(oldest),
            repr(float(now)),
            repr(self.retention_seconds),
            repr(self.expiry_grace_seconds),
            f"{self._ns}labelled:",
        )
        chunks = []
        for chunk in _chunked(outcomes, OUTCOMES_PER_SCRIPT):
            keys = [f"{self._ns}verticals"] + [self._lead_key(o.lead_id) for o in chunk]
            args = [*head]
            for outcome in chunk:
                args += ["1" if outcome.converted else "0", repr(float(outcome.outcome_at))]
            chunks.append((keys, args))
        with self._lock:
            self._usable()
            self._replay()
            replies = self._run_scripts([("record_outcomes", k, a) for k, a in chunks])
        return [_STATUSES[int(code)] for reply in replies for code in reply]

    def labelled(self, vertical: str, since: float, until: float | None = None) -> LabelledScores:
        """Return the leads of ``vertical`` with an outcome scored in ``[since, until)``.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        key = f"{self._ns}labelled:{vertical}"
        upper = "+inf" if until is None else f"({float(until)!r}"
        with self._lock:
            self._usable()
            self._replay()
            rows = list(self._labelled_rows(key, repr(float(since)), upper))
        return LabelledScores(
            versions=[row[2] for row in rows],
            scores=[row[3] for row in rows],
            converted=[row[6] for row in rows],
            scored_at=[row[0] for row in rows],
            shadow_versions=[row[4] for row in rows],
            shadow_scores=[row[5] for row in rows],
        )

    # -- histogram counts ------------------------------------------------------------

    def add_counts(self, rows: Sequence[CountRow]) -> None:
        """Add each row's counts to the stored counts of its key.

        Never raises ``StoreUnavailable``: what Redis does not take now waits in the
        backlog, and is added exactly once (module docstring).
        """
        writes = [self._encode_row(row) for row in rows]  # bad input raises here
        with self._lock:
            self._usable()
            for chunk in _chunked(writes, COUNT_ROWS_PER_SCRIPT):
                self._count_chunks.append(_CountChunk(uuid.uuid4().hex, tuple(chunk)))
                self._count_rows += len(chunk)
            while self._count_rows > self.max_backlog_count_rows:
                dropped = self._count_chunks.popleft()
                self._count_rows -= len(dropped.rows)
                self.dropped_count_rows += len(dropped.rows)
            self._replay_quietly()

    def counts(
        self, vertical: str, version: str, role: str, name: str, since: float
    ) -> list[int] | None:
        """Return the element-wise sum of a key's counts from the minute of ``since`` on.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        series = _json([vertical, version, role, name]).decode()
        first = epoch_minute(since)
        first_hour = first // 60
        with self._lock:
            self._usable()
            self._replay()
            minutes, hours = self._execute(
                lambda pipe: (
                    pipe.hgetall(f"{self._ns}minutes:{series}:{first_hour}"),
                    pipe.hgetall(f"{self._ns}hours:{series}"),
                ),
                transaction=True,  # both hashes as of one moment
            )
        found = [packed for minute, packed in minutes.items() if int(minute) >= first]
        found += [packed for hour, packed in hours.items() if int(hour) > first_hour]
        return _sum(found) if found else None

    def versions_with_counts(self, vertical: str, since: float) -> list[tuple[str, str]]:
        """Return the sorted ``(version, role)`` pairs of ``vertical`` counted from ``since``.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        key = f"{self._ns}versions:{vertical}"
        with self._lock:
            self._usable()
            self._replay()
            members = self._command("ZRANGEBYSCORE", key, epoch_minute(since), "+inf")
        return sorted(_VERSIONS_DECODER.decode(_json_array(members)))

    # -- upkeep ----------------------------------------------------------------------

    def prune(self, now: float) -> int:
        """Drop labelled leads and counts older than their retentions; return how many.

        The count is of labelled leads and per-minute count rows; leads without an
        outcome expire by themselves and are not counted. Removes at most
        ``PRUNE_CHUNK`` labelled leads per script call, so Redis is never busy long.

        Raises:
            StoreUnavailable: Redis cannot be reached (what was pruned stays pruned).
        """
        oldest = repr(float(now - self.retention_seconds))
        oldest_minute = epoch_minute(now - self.counts_retention_seconds)
        removed = 0
        with self._lock:
            self._usable()
            self._replay()
            verticals = self._command("SMEMBERS", f"{self._ns}verticals")
            for raw in sorted(verticals):
                vertical = raw.decode()
                labelled = f"{self._ns}labelled:{vertical}"
                while True:
                    (n,) = self._run_scripts(
                        [("prune_labelled", [labelled], [oldest, str(PRUNE_CHUNK)])]
                    )
                    removed += int(n)
                    if int(n) < PRUNE_CHUNK:
                        break
                series_set = f"{self._ns}series:{vertical}"
                members = self._command("SMEMBERS", series_set)
                calls = [
                    (
                        "prune_series",
                        [f"{self._ns}hours:{series}", series_set],
                        [f"{self._ns}minutes:{series}:", str(oldest_minute), series],
                    )
                    for series in sorted(member.decode() for member in members)
                ]
                removed += sum(int(n) for n in self._run_scripts(calls))
                versions = f"{self._ns}versions:{vertical}"
                self._command("ZREMRANGEBYSCORE", versions, "-inf", f"({oldest_minute}")
        return removed

    def close(self) -> None:
        """Try once more to write the backlog, then close the connections (idempotent).

        What Redis still does not take is dropped and counted.
        """
        with self._lock:
            if self._closed:
                return
            self._replay_quietly()
            self.dropped_leads += len(self._leads)
            self.dropped_count_rows += self._count_rows
            self._leads.clear()
            self._count_chunks.clear()
            self._count_rows = 0
            self._closed = True
            self._client.close()

    # -- opening ---------------------------------------------------------------------

    def check_layout(self) -> OpenReport:
        """Mark an empty namespace with this layout, or check the mark found; report.

        Never raises for an unreachable Redis: the report says so (Redis may come later).
        """
        marker = f"{self.prefix}layout"
        with self._lock:
            self._usable()
            try:
                created, found, *_ = self._execute(
                    lambda pipe: (
                        pipe.set(marker, LAYOUT_VERSION, nx=True),
                        pipe.get(marker),
                        # Loaded now, the scripts need no reload on the first writes.
                        *(pipe.script_load(body) for body in _SCRIPTS.values()),
                    )
                )
            except StoreUnavailable as exc:
                return OpenReport(False, False, f"{exc}; writes wait in a backlog", None)
        if found != str(LAYOUT_VERSION).encode():
            problem = (
                f"the keys under {self.prefix!r} are of monitoring layout {found!r}, this"
                f" store writes layout {LAYOUT_VERSION} under {self._ns!r}"
            )
            return OpenReport(False, False, problem, None)
        return OpenReport(bool(created), False, None, None)

    # -- internals -------------------------------------------------------------------

    def _usable(self) -> None:
        if self._closed:
            raise RuntimeError("monitoring store (redis) is closed")

    def _lead_key(self, lead_id: str) -> str:
        return f"{self._ns}lead:{lead_id}"

    def _encode_lead(self, lead: ScoredLead) -> _LeadWrite:
        scored_at = float(lead.scored_at)
        entry = _json(
            [
                scored_at,
                lead.lead_id,
                lead.version,
                float(lead.score),
                lead.shadow_version,
                None if lead.shadow_score is None else float(lead.shadow_score),
            ]
        )
        return _LeadWrite(self._lead_key(lead.lead_id), scored_at, lead.vertical, entry[:-1])

    def _encode_row(self, row: CountRow) -> _CountWrite:
        series = _json([row.vertical, row.version, row.role, row.name])
        hour = row.minute // 60
        keys = (
            f"{self._ns}minutes:{series.decode()}:{hour}",
            f"{self._ns}hours:{series.decode()}",
            f"{self._ns}versions:{row.vertical}",
            f"{self._ns}series:{row.vertical}",
        )
        counts = _pack(row.counts)
        version_member = _json([row.version, row.role])
        return _CountWrite(keys, row.minute, hour, counts, version_member, series, row.vertical)

    def _expiry_ms(self, end: float, retention: float) -> int:
        """Milliseconds until ``end + retention`` by our clock, plus the grace.

        At most an hour more than the retention, whatever a bad ``end`` says.
        """
        left = min(max(end + retention - self._clock(), 0.0), retention + 3600.0)
        return max(1, math.ceil((left + self.expiry_grace_seconds) * 1000))

    def _replay_quietly(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            self._replay()

    def _replay(self) -> None:
        """Write the backlog, oldest first, removing what Redis took.

        Raises:
            StoreUnavailable: Redis cannot be reached (the rest stays in the backlog).
            RedisError: Redis refused a write for another reason: that round trip's
                writes are dropped (and counted), or they would block the backlog.
        """
        per_trip = LEADS_PER_SCRIPT * SCRIPTS_PER_ROUND_TRIP
        while self._leads:
            batch = list(itertools.islice(self._leads, per_trip))
            oldest = repr(self._clock() - self.retention_seconds)
            calls = []
            for chunk in _chunked(batch, LEADS_PER_SCRIPT):
                args: list[str | bytes] = [oldest]
                for lead in chunk:
                    expiry = self._expiry_ms(lead.scored_at, self.retention_seconds)
                    args += [repr(lead.scored_at), lead.vertical, lead.entry_head, str(expiry)]
                calls.append(("remember", [lead.key for lead in chunk], args))
            try:
                self._run_scripts(calls)
            except RedisError:
                self.dropped_leads += len(batch)
                self._drop(self._leads, len(batch))
                raise
            self._drop(self._leads, len(batch))
        while self._count_chunks:
            chunks = list(itertools.islice(self._count_chunks, SCRIPTS_PER_ROUND_TRIP))
            calls = [self._count_call(chunk) for chunk in chunks]
            rows = sum(len(chunk.rows) for chunk in chunks)
            try:
                self._run_scripts(calls)
            except RedisError:
                self.dropped_count_rows += rows
                self._drop(self._count_chunks, len(chunks))
                self._count_rows -= rows
                raise
            self._drop(self._count_chunks, len(chunks))
            self._count_rows -= rows

    def _count_call(self, chunk: _CountChunk) -> tuple[str, list[str], list[str | bytes]]:
        keys = [f"{self._ns}applied:{chunk.mark}", f"{self._ns}verticals"]
        args: list[str | bytes] = [str(math.ceil(APPLIED_MARK_SECONDS * 1000))]
        for row in chunk.rows:
            keys += row.keys
            expiry = self._expiry_ms((row.hour + 1) * 3600.0, self.counts_retention_seconds)
            args += [
                str(row.minute),
                str(row.hour),
                row.counts,
                row.version_member,
                row.series_member,
                row.vertical,
                str(expiry),
            ]
        return "add_counts", keys, args

    @staticmethod
    def _drop(queue: deque[Any], n: int) -> None:
        for _ in range(n):
            queue.popleft()

    def _labelled_rows(self, key: str, lower: str, upper: str) -> Iterator[_Labelled]:
        """Yield a labelled set's entries in ``[lower, upper]`` by score, page by page.

        Each page covers a range of scores completely (it ends before the last score
        it reached, which the next page starts with), so no entry is skipped or read
        twice while outcomes are being recorded: pages by offset would shift.
        """
        while True:
            page = self._command("ZRANGEBYSCORE", key, lower, upper, "LIMIT", 0, LABELLED_PAGE)
            rows = _LABELLED_DECODER.decode(_json_array(page))
            if len(rows) < LABELLED_PAGE:
                yield from rows
                return
            last = rows[-1][0]
            if rows[0][0] == last:  # a whole page of one scored_at: take all of them
                same = self._command("ZRANGEBYSCORE", key, repr(last), repr(last))
                yield from _LABELLED_DECODER.decode(_json_array(same))
                lower = f"({last!r}"
            else:
                yield from (row for row in rows if row[0] < last)
                lower = repr(last)

    def _run_scripts(self, calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Call scripts by SHA, ``SCRIPTS_PER_ROUND_TRIP`` a round trip; their replies."""
        replies: list[Any] = []
        for group in _chunked(calls, SCRIPTS_PER_ROUND_TRIP):

            def build(
                pipe: Any, group: Sequence[tuple[str, Sequence[str], Sequence[Any]]] = group
            ) -> None:
                for name, keys, args in group:
                    pipe.evalsha(_SHAS[name], len(keys), *keys, *args)

            replies += self._execute(build)
        return replies

    def _command(self, *args: str | bytes | int) -> Any:
        """Run one command (the pipeline's reply parsing and error handling)."""
        (reply,) = self._execute(lambda pipe: pipe.execute_command(*args))
        return reply

    def _execute(self, build: Callable[[Any], object], transaction: bool = False) -> list[Any]:
        """Run the commands ``build`` queues on a pipeline, in one round trip.

        A Redis that has forgotten the scripts (restarted) gets them again and the
        round trip is repeated: no script of it ran, every one failed alike.

        Raises:
            StoreUnavailable: Redis cannot be reached, or cannot take writes now.
        """
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=transaction)
            build(pipe)
            try:
                with _unavailable_as_store_error():
                    return list(pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
                with _unavailable_as_store_error():
                    loader = self._client.pipeline(transaction=False)
                    for body in _SCRIPTS.values():
                        loader.script_load(body)
                    loader.execute()
        raise AssertionError("unreachable")


def open_redis_store(
    url: str,
    retention_seconds: float = 30 * 86400,
    counts_retention_seconds: float = 7 * 86400,
    *,
    timeout_ms: float = DEFAULT_TIMEOUT_MS,
    prefix: str = DEFAULT_PREFIX,
    clock: Callable[[], float] = time.time,
    expiry_grace_seconds: float = EXPIRY_GRACE_SECONDS,
    max_backlog_leads: int = MAX_BACKLOG_LEADS,
    max_backlog_count_rows: int = MAX_BACKLOG_COUNT_ROWS,
) -> tuple[RedisMonitoringStore, OpenReport]:
    """Open the store in the Redis at ``url``, marking or checking its layout.

    Opening never fails for Redis itself: an unreachable Redis (it may come later) or
    keys of another layout are reported in ``OpenReport.problem`` and the store is
    returned all the same. ``created`` is True when no store was there (no layout mark):
    a new Redis, or one restarted empty. ``recovered`` and ``moved_to`` are always
    False and None. Arguments: see ``RedisMonitoringStore``.

    Returns:
        The store (for this process only: open one per worker, after the fork) and what
        opening it found.

    Raises:
        ValueError: A retention or the timeout is not positive, or the URL is not a
            Redis URL.
    """
    store = RedisMonitoringStore(
        url,
        retention_seconds,
        counts_retention_seconds,
        timeout_ms=timeout_ms,
        prefix=prefix,
        clock=clock,
        expiry_grace_seconds=expiry_grace_seconds,
        max_backlog_leads=max_backlog_leads,
        max_backlog_count_rows=max_backlog_count_rows,
    )
    return store, store.check_layout()


@contextlib.contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    """Turn the Redis errors that mean "not now" into ``StoreUnavailable``."""
    try:
        yield
    except RedisError as exc:
        if _is_unavailable(exc):
            raise StoreUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}") from exc
        raise


def _is_unavailable(exc: RedisError) -> bool:
    """Whether Redis cannot serve now (down, frozen, loading, full, a replica, busy)."""
    if isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | OutOfMemoryError
        | ReadOnlyError
        | TryAgainError
        | ClusterDownError,
    ):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(("BUSY", "NOREPLICAS"))


def _chunked(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _json_array(members: Sequence[bytes]) -> bytes:
    """The JSON array of JSON members, decoded in one call."""
    return b"[" + b",".join(members) + b"]"


def _pack(counts: Sequence[int]) -> bytes:
    """Counts as the scripts keep them (see ``_ADD_AND_SUBTRACT``)."""
    values = [int(count) for count in counts]
    if all(_INT32_MIN <= value <= _INT32_MAX for value in values):
        return b"4" + struct.pack(f"<{len(values)}i", *values)
    return b"8" + struct.pack(f"<{len(values)}q", *values)  # beyond int64: struct.error


def _sum(packed: Sequence[bytes]) -> list[int]:
    """The element-wise sum of packed counts, over the longest."""
    arrays = [
        np.frombuffer(item, dtype="<i8" if item[:1] == b"8" else "<i4", offset=1) for item in packed
    ]
    total = np.zeros(max(len(array) for array in arrays), dtype=np.int64)
    for array in arrays:
        total[: len(array)] += array
    return [int(value) for value in total]
