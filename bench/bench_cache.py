"""The prediction cache against no cache, in process, for a small and a large model.

Times ``Scorer.score`` per lead (validate, encode, predict or look up, confidence, price),
side by side in one run and interleaved in rounds, for:

- no cache: what the service does with ``CACHE_CONFIG`` unset;
- memory, miss: every lead new to the cache (the key, the lookup, the predict, the insert);
- memory, hit: every lead already cached;

each plain and with ``explain`` (reasons from LightGBM's contributions, the expensive
path), for the demo auto model (trained on ``--rows`` rows, early stopping) and for a
large one: up to 2,000 trees of 255 leaves at a small learning rate (the pipeline keeps
the best iteration, about 1,300 trees and 37 MB of model text here; the table prints
the size). ``--no-large`` skips it; training it takes a few minutes, and ``--workdir``
keeps it for the next run. Prints microseconds per lead, leads per second on one core,
and each against no cache.

The Redis and tiered backends join this table when they exist (issue 9).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import msgspec

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


def per_call_us(run: Callable[[int], object], calls: int) -> float:
    """Microseconds per call of ``run(i)`` for ``i`` in ``range(calls)``."""
    started = time.perf_counter()
    for i in range(calls):
        run(i)
    return (time.perf_counter() - started) / calls * 1e6


def contenders(
    config: ModelConfig, model: LoadedModel, leads: list[dict[str, Any]], explain: bool
) -> dict[str, Callable[[int], object]]:
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
    parser.add_argument("--no-large", action="store_true", help="skip the 2,000-tree model")
    parser.add_argument("--workdir", type=Path, help="keep the models here for the next run")
    args = parser.parse_args()
    config = load_config(DEFAULT_CONFIG)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        models = {"demo": build(workdir, config, "demo", args.rows)}
        if not args.no_large:
            large = build(workdir, large_config(config), "large-2000", args.rows)
            trees = large[0].manifest.training["num_trees"]
            models[f"large ({trees} x {LARGE_LEAVES})"] = large
        print(f"\nPer lead, median of {args.rounds} rounds, one core (leads/s = 1e6 / us):")
        print(f"  {'model':<22}{'mode':<10}{'contender':<16}{'us':>9}{'leads/s':>10}{'vs none':>9}")
        for name, (model, leads) in models.items():
            for explain in (False, True):
                runs = contenders(config, model, leads, explain)
                calls = args.calls if not explain else max(200, args.calls // 10)
                if name != "demo":
                    calls = max(100, calls // 10)
                times: dict[str, list[float]] = {key: [] for key in runs}
                for _ in range(args.rounds):
                    for key, run in runs.items():
                        times[key].append(per_call_us(run, calls))
                base = statistics.median(times["no cache"])
                mode = "explain" if explain else "score"
                for key in runs:
                    us = statistics.median(times[key])
                    print(
                        f"  {name:<22}{mode:<10}{key:<16}{us:>9.1f}{1e6 / us:>10.0f}"
                        f"{base / us:>8.2f}x"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
