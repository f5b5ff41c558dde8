"""In-process scoring benchmark: the full engine pipeline against its floor and the naive way.

Trains (or reuses) an auto model from synthetic leads, then times per lead, side by side
in one run, interleaved in rounds so that machine noise hits every contender alike:

- floor: LightGBM's C single-row predict alone (``LGBM_BoosterPredictForMatSingleRowFast``
  through ctypes) on rows that are already encoded.
- engine: ``Scorer.score`` on the raw lead: validate, encode, predict, confidence, price.
- engine, unique text: the same, with every lead's location made unique, so the text
  memo never hits and every text feature is tokenised (the worst case).
- naive: a one-row pandas DataFrame of the encoded lead passed to ``Booster.predict``
  (what a typical FastAPI + pandas service does per request, before any validation).

Goals (issue 2): engine within 3x of the floor, and at least 5x faster than naive.
Run ``python bench/bench_engine.py --help`` for options; ``--check`` exits 1 when a goal
is missed. Needs the ``bench`` extra (pandas) for the naive contender.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from engine.config import load_config
from engine.inference.lgbm_capi import LightGBMPredictor
from engine.scoring.model import LoadedModel, load_model
from engine.scoring.scorer import Scorer
from engine.settings import DEFAULT_CONFIG
from engine.store.signing import Keyring, SigningKey, generate_keypair
from engine.training.pipeline import train_vertical
from engine.training.synth import write_csv

Timed = Callable[[int], None]


def build_model(workdir: Path, rows: int) -> tuple[LoadedModel, list[dict[str, Any]]]:
    """Train and load an auto model; return it with the holdout leads."""
    config = load_config(DEFAULT_CONFIG)
    generate_keypair(workdir / "keys")
    data = workdir / "auto.csv"
    write_csv("auto", rows, 7, data)
    report = train_vertical(
        config,
        "auto",
        data,
        "1.0.0",
        workdir / "models",
        SigningKey.load(workdir / "keys" / "model-signing.key"),
    )
    model = load_model(report.path, Keyring.load(workdir / "keys" / "trusted"))
    return model, report.holdout_leads


def per_call_ns(run: Timed, calls: int) -> float:
    """Return nanoseconds per call of ``run(i)`` over ``calls`` calls."""
    start = time.perf_counter_ns()
    for i in range(calls):
        run(i)
    return (time.perf_counter_ns() - start) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="training rows (default 20000)")
    parser.add_argument("--calls", type=int, default=20000, help="calls per round (fast paths)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model, leads = build_model(Path(tmp), args.rows)
        config = load_config(DEFAULT_CONFIG)
        scorer = Scorer(config)
        scorer.install(model)
        count = len(leads)
        # LightGBM's C-API predictor on the same model.txt: the documented floor.
        predictor = LightGBMPredictor.from_model_string(
            (Path(tmp) / "models" / "auto" / "v1.0.0" / "model.txt").read_bytes()
        )
        encoded = np.empty((count, predictor.num_features))
        for i, lead in enumerate(leads):
            model.encoder.encode_into(lead, encoded[i])
        rows = [list(r) for r in encoded.tolist()]
        unique = [
            {**lead, "location": f"{lead.get('location') or ''} unit {i}"}
            for i, lead in enumerate(leads)
        ]

        def floor(i: int) -> None:
            buffer = predictor.row
            for j, value in enumerate(rows[i % count]):
                buffer[j] = value
            predictor.predict_row()

        def copy_only(i: int) -> None:
            buffer = predictor.row
            for j, value in enumerate(rows[i % count]):
                buffer[j] = value

        def engine(i: int) -> None:
            scorer.score("auto", leads[i % count])

        def engine_unique(i: int) -> None:
            scorer.score("auto", unique[i % count])

        contenders: dict[str, tuple[Timed, int]] = {
            "floor: C single-row predict": (floor, args.calls),
            "engine: Scorer.score (full pipeline)": (engine, args.calls),
            "engine, unique text (memo misses)": (engine_unique, args.calls),
        }
        try:
            import lightgbm
            import pandas as pd

            booster = lightgbm.Booster(
                model_str=(Path(tmp) / "models/auto/v1.0.0/model.txt").read_text()
            )
            names = list(model.feature_names)
            frames = [dict(zip(names, r, strict=True)) for r in rows]

            def naive(i: int) -> None:
                booster.predict(pd.DataFrame([frames[i % count]]))

            contenders["naive: Booster.predict(1-row DataFrame)"] = (
                naive,
                max(200, args.calls // 20),
            )
        except ImportError:
            print("pandas not installed: skipping the naive contender (pip install -e '.[bench]')")

        copy_cost = statistics.median(per_call_ns(copy_only, args.calls) for _ in range(3))
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (run, calls) in contenders.items():
                samples[name].append(per_call_ns(run, calls))
        medians = {name: statistics.median(values) for name, values in samples.items()}

    floor_ns = medians["floor: C single-row predict"] - copy_cost
    engine_ns = medians["engine: Scorer.score (full pipeline)"]
    print(
        f"\nauto model: {predictor.num_features} features, {args.rows} training rows, "
        f"{count} distinct holdout leads; median of {args.rounds} interleaved rounds\n"
    )
    print(f"{'contender':<44}{'µs/lead':>10}{'vs floor':>10}")
    print(
        f"{'floor: C single-row predict (row copy excluded)':<44}{floor_ns / 1000:>10.2f}"
        f"{1.0:>9.2f}x"
    )
    for name, value in medians.items():
        if name.startswith("floor"):
            continue
        print(f"{name:<44}{value / 1000:>10.2f}{value / floor_ns:>9.2f}x")
    ratio_floor = engine_ns / floor_ns
    print(f"\nengine / floor = {ratio_floor:.2f}x (goal <= 3x)")
    passed = ratio_floor <= 3.0
    naive_key = "naive: Booster.predict(1-row DataFrame)"
    if naive_key in medians:
        speedup = medians[naive_key] / engine_ns
        print(f"naive / engine = {speedup:.1f}x faster (goal >= 5x)")
        passed = passed and speedup >= 5.0
    print("goals met" if passed else "GOAL MISSED")
    return 0 if passed or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
