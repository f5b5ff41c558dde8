"""The prediction cache against no cache, in process, for a small and a large model.

Times ``Scorer.score`` per lead (validate, encode, predict or look up, confidence, price),
side by side in one run and interleaved in rounds, for:

- no cache: what the service does with ``CACHE_CONFIG`` unset;
- memory, miss: every lead new to the cache (the key, the lookup, the predict, the insert);
- memory, hit: every lead already cached;

- redis, miss / hit: the Redis tier alone (``Scorer.score_async`` awaiting a ``GET`` on a
  local ``redis-server`` this run starts on a free port; a miss also queues a ``SET``);
- tiered, redis hit: the memory tier misses (it holds one entry), Redis has the lead;
- tiered, memory hit: the memory tier has it (the async path, no round trip);

each plain and with ``explain`` (reasons from LightGBM's contributions, the expensive
path), for the demo auto model (trained on ``--rows`` rows, early stopping) and for a
large one: up to 2,000 trees of 255 leaves at a small learning rate (the pipeline keeps
the best iteration, about 1,300 trees and 37 MB of model text here; the table prints
the size). ``--no-large`` skips it; training it takes a few minutes, and ``--workdir``
keeps it for the next run.

Prints microseconds per lead one at a time (the latency a request sees), leads per
second on one event loop with ``--in-flight`` leads awaiting at once (what one worker
sustains: Redis waits overlap, Redis's own CPU shares the machine), and the per-lead
time against no cache. ``--no-hiredis`` runs the Redis rows with redis-py's pure-Python
parser, to measure what ``hiredis`` buys. Without ``redis-server`` installed the Redis
rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
if "--no-hiredis" in sys.argv:
    sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py falls back

import msgspec
import uvloop
from local_redis import LocalRedis
from redis import utils as redis_utils

from api.redis_cache import RedisCache
from api.redis_link import RedisLink
from engine.cache.keys import CacheKeyer
from engine.cache.memory import MemoryCache
from engine.config import ModelConfig, feature_specs, load_config
from engine.scoring.model import LoadedModel, load_model
from engine.scoring.scorer import Scorer
from engine.settings import DEFAULT_CONFIG
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.training.csvdata import read_training_csv
from engine.training.pipeline import train_vertical
from engine.training.synth import write_csv

LARGE_TREES = 2000
LARGE_LEAVES = 255


def large_config(config: ModelConfig) -> ModelConfig:
    """The demo config with auto trained to 2,000 trees of 255 leaves.

    The pipeline publishes the best iteration only, so the learning rate is made small
    enough that validation AUC still improves at the last round: the full size is kept.
    """
    auto = config.verticals["auto"]
    training = msgspec.structs.replace(
        auto.training,
        num_boost_round=LARGE_TREES,
        early_stopping_rounds=LARGE_TREES,
        params={
            **auto.training.params,
            "num_leaves": LARGE_LEAVES,
            "min_data_in_leaf": 5,
            "learning_rate": 0.002,
        },
    )
    verticals = {**config.verticals, "auto": msgspec.structs.replace(auto, training=training)}
    return msgspec.structs.replace(config, verticals=verticals)


def build(
    workdir: Path, config: ModelConfig, name: str, rows: int
) -> tuple[LoadedModel, list[dict[str, Any]]]:
    """Train (or reuse) an auto model under ``workdir/name``; return it and holdout leads."""
    keys = workdir / "keys"
    if not (keys / "model-signing.key").exists():
        generate_keypair(keys)
    data = workdir / f"auto-{rows}.csv"
    if not data.exists():
        write_csv("auto", rows, 7, data)
    root = workdir / name
    version = root / "auto" / "v1.0.0"
    if not version.exists():
        print(f"training the {name} model ...", flush=True)
        train_vertical(
            config, "auto", data, "1.0.0", root, SigningKey.load(keys / "model-signing.key")
        )
    model = load_model(version, Keyring.load(keys / "trusted"))
    # Leads as a client sends them (JSON-typed), from the generator with another seed.
    other = workdir / "leads.csv"
    if not other.exists():
        write_csv("auto", 2000, 11, other)
    auto = config.verticals["auto"]
    parsed = read_training_csv(other, feature_specs(auto), auto.training)
    return model, [dict(lead) for lead in parsed.leads]


Run = Callable[[int], object]
AsyncRun = Callable[[int], Awaitable[object]]


def per_call_us(run: Run, calls: int) -> float:
    """Microseconds per call of ``run(i)`` for ``i`` in ``range(calls)``."""
    started = time.perf_counter()
    for i in range(calls):
        run(i)
    return (time.perf_counter() - started) / calls * 1e6


def async_per_call_us(loop: asyncio.AbstractEventLoop, run: AsyncRun, calls: int) -> float:
    """Microseconds per awaited call, one at a time."""

    async def sequence() -> float:
        started = time.perf_counter()
        for i in range(calls):
            await run(i)
        return time.perf_counter() - started

    return loop.run_until_complete(sequence()) / calls * 1e6


def async_rate(loop: asyncio.AbstractEventLoop, run: AsyncRun, calls: int, in_flight: int) -> float:
    """Calls per second with ``in_flight`` calls awaiting at once."""

    async def lane(start: int) -> None:
        for i in range(start, calls, in_flight):
            await run(i)

    async def together() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(lane(k) for k in range(in_flight)))
        return time.perf_counter() - started

    return calls / loop.run_until_complete(together())


class RedisRows:
    """The Redis contenders' server and links, for one run."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workdir: Path) -> None:
        self.server = LocalRedis(workdir)
        self.url = self.server.url
        self.loop = loop
        self.links: list[RedisLink] = []

    def cache(self, ttl: float) -> RedisCache:
        """A Redis tier on its own link (generous timeout: a bench measures, never sheds)."""
        link = RedisLink(self.url, "bench", timeout_ms=2000)
        self.links.append(link)
        return RedisCache(link, ttl)

    def close(self) -> None:
        """Close the links and stop the server."""
        for link in self.links:
            self.loop.run_until_complete(link.close())
        self.server.stop()


def redis_contenders(
    config: ModelConfig,
    model: LoadedModel,
    leads: list[dict[str, Any]],
    explain: bool,
    redis: RedisRows,
) -> dict[str, AsyncRun]:
    """The awaited contenders: the Redis tier alone, and tiered."""
    keyer = CacheKeyer(b"b" * 32)
    clock = lambda: 1_800_000_000.0  # noqa: E731

    def scorer(
        remote: RedisCache, memory: MemoryCache | None = None, keys: CacheKeyer = keyer
    ) -> Scorer:
        made = Scorer(config, clock=clock, cache=memory, keyer=keys, remote=remote)
        made.install(model)
        return made

    warm_remote = redis.cache(3600)
    warm = scorer(warm_remote)

    async def fill() -> None:
        for lead in leads:
            await warm.score_async("auto", lead, explain=explain)
        await warm_remote.drain()

    redis.loop.run_until_complete(fill())
    # Misses: entries live a millisecond, so a lead asked again a lap later is gone;
    # their own secret keeps them apart from the warm entries.
    cold = scorer(redis.cache(0.001), keys=CacheKeyer(b"c" * 32))
    tier_miss = scorer(warm_remote, MemoryCache(1, 3600))
    tier_hit = scorer(warm_remote, MemoryCache(100_000, 3600))
    redis.loop.run_until_complete(fill_memory(tier_hit, leads, explain))
    n = len(leads)
    return {
        "redis, miss": lambda i: cold.score_async("auto", leads[i % n], explain=explain),
        "redis, hit": lambda i: warm.score_async("auto", leads[i % n], explain=explain),
        "tiered, redis hit": lambda i: tier_miss.score_async("auto", leads[i % n], explain=explain),
        "tiered, mem hit": lambda i: tier_hit.score_async("auto", leads[i % n], explain=explain),
    }


async def fill_memory(scorer: Scorer, leads: list[dict[str, Any]], explain: bool) -> None:
    """Score every lead once so the scorer's memory tier holds them all."""
    for lead in leads:
        await scorer.score_async("auto", lead, explain=explain)


def contenders(
    config: ModelConfig, model: LoadedModel, leads: list[dict[str, Any]], explain: bool
) -> dict[str, Run]:
    """The timed functions for one model and mode."""
    plain = Scorer(config, clock=lambda: 1_800_000_000.0)
    plain.install(model)
    warm = Scorer(config, clock=lambda: 1_800_000_000.0, cache=MemoryCache(100_000, 3600))
    warm.install(model)
    for lead in leads:
        warm.score("auto", lead, explain=explain)
    # Misses: a cache too small to keep anything the next call asks for.
    cold = Scorer(config, clock=lambda: 1_800_000_000.0, cache=MemoryCache(1, 3600))
    cold.install(model)
    n = len(leads)
    return {
        "no cache": lambda i: plain.score("auto", leads[i % n], explain=explain),
        "memory, miss": lambda i: cold.score("auto", leads[i % n], explain=explain),
        "memory, hit": lambda i: warm.score("auto", leads[i % n], explain=explain),
    }


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="training rows (default 20000)")
    parser.add_argument("--calls", type=int, default=4000, help="calls per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--in-flight", type=int, default=16, help="awaiting at once (default 16)")
    parser.add_argument("--no-large", action="store_true", help="skip the 2,000-tree model")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis rows")
    parser.add_argument(
        "--no-hiredis", action="store_true", help="redis-py's Python parser, not hiredis"
    )
    parser.add_argument("--workdir", type=Path, help="keep the models here for the next run")
    args = parser.parse_args()
    config = load_config(DEFAULT_CONFIG)
    loop = uvloop.new_event_loop()
    print(f"redis parser: {'hiredis' if redis_utils.HIREDIS_AVAILABLE else 'python'}")
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        redis: RedisRows | None = None
        if not args.no_redis:
            try:
                redis = RedisRows(loop, Path(tmp))
            except FileNotFoundError as missing:
                print(f"Redis rows skipped: install {missing}")
        models = {"demo": build(workdir, config, "demo", args.rows)}
        if not args.no_large:
            large = build(workdir, large_config(config), "large-2000", args.rows)
            trees = large[0].manifest.training["num_trees"]
            models[f"large ({trees} x {LARGE_LEAVES})"] = large
        print(
            f"\nPer lead, median of {args.rounds} rounds, one event loop; leads/s with "
            f"{args.in_flight} in flight for the awaited rows (1e6 / us for the others):"
        )
        print(
            f"  {'model':<22}{'mode':<10}{'contender':<19}{'us':>10}{'leads/s':>10}{'vs none':>10}"
        )
        try:
            for name, (model, leads) in models.items():
                for explain in (False, True):
                    calls = args.calls if not explain else max(200, args.calls // 10)
                    if name != "demo":
                        calls = max(100, calls // 10)
                    table = measure(config, model, leads, explain, calls, args, redis, loop)
                    base = table["no cache"][0]
                    mode = "explain" if explain else "score"
                    for key, (us, rate) in table.items():
                        print(
                            f"  {name:<22}{mode:<10}{key:<19}{us:>10.1f}{rate:>10.0f}"
                            f"{base / us:>9.2f}x"
                        )
        finally:
            if redis is not None:
                redis.close()
    return 0


def measure(
    config: ModelConfig,
    model: LoadedModel,
    leads: list[dict[str, Any]],
    explain: bool,
    calls: int,
    args: argparse.Namespace,
    redis: RedisRows | None,
    loop: asyncio.AbstractEventLoop,
) -> dict[str, tuple[float, float]]:
    """Contender -> (median us per lead, leads/s), rounds interleaved."""
    runs = contenders(config, model, leads, explain)
    awaited = redis_contenders(config, model, leads, explain, redis) if redis else {}
    times: dict[str, list[float]] = {key: [] for key in (*runs, *awaited)}
    rates: dict[str, list[float]] = {key: [] for key in awaited}
    for _ in range(args.rounds):
        for key, run in runs.items():
            times[key].append(per_call_us(run, calls))
        for key, arun in awaited.items():
            times[key].append(async_per_call_us(loop, arun, calls))
            rates[key].append(async_rate(loop, arun, calls, args.in_flight))
    table = {}
    for key, samples in times.items():
        us = statistics.median(samples)
        table[key] = (us, statistics.median(rates[key]) if key in rates else 1e6 / us)
    return table


if __name__ == "__main__":
    raise SystemExit(main())
