"""Bulk scoring benchmark: ``ml-service score --input`` against ``Booster.predict`` on a DataFrame.

Trains and activates an auto model in a temporary store, writes one synthetic file of
``--rows`` leads (``engine.training.synth.write_csv``), then times on that same file,
side by side and interleaved in rounds (median) so machine noise hits every contender:

- bulk, 1 worker: the file mode end to end in process (read the CSV, validate, encode,
  LightGBM batch predict, confidence, price, write the scored CSV), through
  ``engine.cli.bulk_score.run_bulk``: the command's code minus argument parsing.
- bulk, N workers: the same over N spawned processes (default: every usable core),
  process start and model loads included.
- ``Booster.predict`` on a pandas DataFrame of the same rows, already encoded (the
  encoding is done before the clock starts): the trees alone behind LightGBM's Python
  wrapper, at its default threads (every core) and at one thread.

Prints rows/s and each ratio, and checks that the scores in the scored file are
bit-identical to ``Booster.predict``'s. Needs the ``bench`` extra (pandas).
Run ``python bench/bench_bulk_score.py --help`` for options.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the engine's processes: one thread each

import numpy as np

from engine.cli.bulk_score import BulkOptions, default_workers, run_bulk
from engine.config import load_config
from engine.scoring.model import load_model
from engine.settings import DEFAULT_CONFIG, resolve_paths
from engine.store.signing import Keyring, SigningKey, generate_keypair

AT = 1795446000.0  # a fixed pricing time: every run writes the same file


def label(workers: int) -> str:
    return f"bulk score, {workers} worker{'s' if workers > 1 else ''}"


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows to score (200000)")
    parser.add_argument("--train-rows", type=int, default=20_000, help="training rows (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="the parallel run's workers"
    )
    args = parser.parse_args()
    # Imported here, not at the top: spawned workers re-import this module, and the
    # trainer, lightgbm's Python package and pandas would slow every worker's start.
    from engine.training.pipeline import train_vertical
    from engine.training.synth import write_csv

    try:
        import lightgbm
        import pandas as pd
    except ImportError:
        print("needs pandas: .venv/bin/pip install -e '.[dev,bench]'", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = load_config(DEFAULT_CONFIG)
        generate_keypair(work / "keys")
        keyring = Keyring.load(work / "keys" / "trusted")
        write_csv("auto", args.train_rows, 7, work / "train.csv")
        report = train_vertical(
            config,
            "auto",
            work / "train.csv",
            "1.0.0",
            work / "models",
            SigningKey.load(work / "keys" / "model-signing.key"),
            activate_with=keyring,
        )
        leads_csv = work / "leads.csv"
        write_csv("auto", args.rows, 8, leads_csv)
        paths, _ = resolve_paths(
            {"MODEL_PATH": str(work / "models"), "MODEL_TRUSTED_KEYS": str(work / "keys/trusted")},
            config=config,
        )

        def bulk(workers: int) -> Callable[[], object]:
            options = BulkOptions(
                str(leads_csv), str(work / f"scored-{workers}.csv"), "auto", workers, now=AT
            )
            return lambda: run_bulk(options, paths, config, err=io.StringIO())

        # The DataFrame contender gets the rows already encoded by the model's encoder:
        # Booster.predict cannot read raw leads (text and category spellings).
        model = load_model(report.path, keyring)
        with leads_csv.open(newline="") as stream:
            records = list(csv.DictReader(stream))
        numerical = set(config.verticals["auto"].feature_config.numerical)
        encoded = np.empty((len(records), model.encoder.num_features))
        for i, record in enumerate(records):
            lead = {
                name: float(cell) if name in numerical else cell
                for name, cell in record.items()
                if cell != ""
            }
            model.encoder.encode_into(lead, encoded[i])
        frame = pd.DataFrame(encoded, columns=list(model.feature_names))
        booster = lightgbm.Booster(model_str=(report.path / "model.txt").read_text())
        threads = os.cpu_count() or 1

        contenders: dict[str, Callable[[], object]] = {
            label(1): bulk(1),
            label(args.workers): bulk(args.workers),
            f"Booster.predict(DataFrame), {threads} threads": lambda: booster.predict(
                frame, num_threads=threads
            ),
            "Booster.predict(DataFrame), 1 thread": lambda: booster.predict(frame, num_threads=1),
        }
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                samples[name].append(timed(run))

        with (work / "scored-1.csv").open(newline="") as stream:
            scores = np.array([float(row["score"]) for row in csv.DictReader(stream)])
        identical = np.array_equal(scores, booster.predict(frame, num_threads=1))
        same_files = (work / "scored-1.csv").read_bytes() == (
            work / f"scored-{args.workers}.csv"
        ).read_bytes()

    rates = {name: args.rows / statistics.median(values) for name, values in samples.items()}
    print(
        f"\n{args.rows:,} auto leads ({report.manifest.metrics.best_iteration} trees, "
        f"{args.train_rows:,} training rows); median of {args.rounds} interleaved rounds; "
        f"{default_workers()} usable cores\n"
    )
    reference = rates["Booster.predict(DataFrame), 1 thread"]
    print(f"{'contender':<42}{'rows/s':>12}{'vs 1-thread predict':>22}")
    for name, rate in rates.items():
        print(f"{name:<42}{rate:>12,.0f}{rate / reference:>21.3f}x")
    for workers in sorted({1, args.workers}):
        bulk_rate = rates[label(workers)]
        for name, rate in rates.items():
            if name.startswith("Booster"):
                print(f"bulk ({workers} w) / {name}: {bulk_rate / rate:.3f}")
    print(f"\nscores bit-identical to Booster.predict: {identical}")
    print(f"1 worker and {args.workers} workers wrote the same file: {same_files}")
    return 0 if identical and same_files else 1


if __name__ == "__main__":
    sys.exit(main())
