"""The compiled tree kernel against LightGBM's C API, single row and batch, one thread.

For the demo auto model (trained on ``--rows`` rows, early stopping) and a large one (up to
2,000 trees of 255 leaves, ``bench_cache.large_config``; about 1,300 trees are kept),
side by side in one run and interleaved in rounds:

- single row: the encoded lead is copied into the predictor's ``row`` buffer and
  ``predict_row()`` is called: ``TreeKernel`` (layout file mapped with ``mmap``) against
  ``LightGBMPredictor`` (``LGBM_BoosterPredictForMatSingleRowFast``). The copy is the same
  ``memmove`` for both, so the ratio is the predict calls' ratio plus a constant;
- batch: ``predict_matrix`` on ``--batch`` rows (500), per row: the kernel against
  ``LGBM_BoosterPredictForMat`` with ``num_threads=1``;
- explain: ``contributions`` (TreeSHAP, reason codes) per row, on ``--explain`` rows of
  the demo model and a tenth of that of the large one: the kernel against LightGBM's
  ``pred_contrib`` at one thread.

The leads are holdout leads as a client sends them, encoded by the model's own encoder.
In every round each predictor is timed right after an untimed pass over the same rows, so
both are measured warm, as in a worker that scores with one of them all day.
Before timing, every lead is scored and explained both ways and must be bit-identical (the
run stops otherwise). Also printed: layout size against the model text, compile time, and the time
to open (map and checksum) the layout. The issue's goals: large model single row at most
0.5x LightGBM, demo model no slower, batch at least as fast.

Training the large model takes about a minute here; ``--workdir`` keeps both models (the
same directory layout as ``bench_cache.py --workdir``) for the next run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
from bench_cache import LARGE_LEAVES, build, large_config

from engine.config import ModelConfig, load_config
from engine.errors import LeadError
from engine.inference.lgbm_capi import LightGBMPredictor
from engine.inference.tree_kernel import TreeKernel
from engine.inference.tree_layout import compile_model, read_header, write_layout
from engine.settings import DEFAULT_CONFIG

Predictor = LightGBMPredictor | TreeKernel


def encoded_rows(
    model: Any, leads: Sequence[dict[str, Any]], width: int
) -> npt.NDArray[np.float64]:
    """The leads that validate, encoded by the model's encoder, one row each."""
    rows = []
    for lead in leads:
        row = np.empty(width)
        try:
            model.encoder.encode_into(lead, row)
        except LeadError:
            continue
        rows.append(row)
    return np.array(rows)


def single_row_us(predictor: Predictor, sources: Sequence[ctypes.Array[ctypes.c_double]]) -> float:
    """Microseconds per (copy the row into ``predictor.row``, ``predict_row()``)."""
    move, row, predict = ctypes.memmove, predictor.row, predictor.predict_row
    size = ctypes.sizeof(row)
    started = time.perf_counter()
    for source in sources:
        move(row, source, size)
        predict()
    return (time.perf_counter() - started) / len(sources) * 1e6


def batch_us(predictor: Predictor, matrix: npt.NDArray[np.float64]) -> float:
    """Microseconds per row of one ``predict_matrix`` call."""
    started = time.perf_counter()
    predictor.predict_matrix(matrix)
    return (time.perf_counter() - started) / len(matrix) * 1e6


def explain_us(predictor: Predictor, matrix: npt.NDArray[np.float64]) -> float:
    """Microseconds per row of one ``contributions`` call."""
    started = time.perf_counter()
    predictor.contributions(matrix)
    return (time.perf_counter() - started) / len(matrix) * 1e6


def check_identical(
    kernel: TreeKernel,
    capi: LightGBMPredictor,
    rows: npt.NDArray[np.float64],
    explained: npt.NDArray[np.float64],
) -> None:
    """Stop the run unless the kernel and LightGBM agree bit for bit on every row."""
    expected = capi.predict_matrix(rows)
    single = []
    for values in rows:
        kernel.row[:] = values.tolist()
        single.append(kernel.predict_row())
    for got in (kernel.predict_matrix(rows), np.array(single)):
        if not np.array_equal(got.view(np.uint64), expected.view(np.uint64)):
            sys.exit(f"the kernel differs from LightGBM on {np.sum(got != expected)} rows")
    ours, theirs = kernel.contributions(explained), capi.contributions(explained)
    if not np.array_equal(ours.view(np.uint64), theirs.view(np.uint64)):
        sys.exit(f"contributions differ from LightGBM's by up to {np.abs(ours - theirs).max()}")


def measure(
    kernel: TreeKernel,
    capi: LightGBMPredictor,
    rows: npt.NDArray[np.float64],
    calls: int,
    batch: int,
    explained: npt.NDArray[np.float64],
    rounds: int,
) -> dict[str, tuple[float, float, float]]:
    """Per mode: (kernel us, LightGBM us, ratio), medians over interleaved rounds."""
    sources = [(ctypes.c_double * rows.shape[1])(*values) for values in rows[:calls]]
    matrix = np.ascontiguousarray(rows[:batch])
    contests: dict[str, Callable[[Predictor], float]] = {
        "single row": lambda predictor: single_row_us(predictor, sources),
        f"batch of {len(matrix)}": lambda predictor: batch_us(predictor, matrix),
        "explain": lambda predictor: explain_us(predictor, explained),
    }
    results = {}
    for mode, run in contests.items():
        ours, theirs, ratios = [], [], []
        for _ in range(rounds):
            # Each is timed right after an untimed pass over the same rows: the two models
            # do not fit in the last-level cache together, so without it each round would
            # time the other's evictions, which a worker scoring with one model never pays.
            run(kernel)
            a = run(kernel)
            run(capi)
            b = run(capi)
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
        results[mode] = (
            statistics.median(ours),
            statistics.median(theirs),
            statistics.median(ratios),
        )
    return results


def describe(name: str, text: bytes, layout: Path) -> str:
    """One line: trees, nodes, sizes, compile and open times."""
    started = time.perf_counter()
    compile_model(text)
    compile_s = time.perf_counter() - started
    started = time.perf_counter()
    with TreeKernel.open(layout):
        open_ms = (time.perf_counter() - started) * 1e3
    header = read_header(layout.read_bytes())
    return (
        f"{name}: {header.num_trees} trees, {header.num_nodes} nodes; model text "
        f"{len(text) / 1e6:.1f} MB, layout {header.file_size / 1e6:.1f} MB; compile "
        f"{compile_s:.2f} s, open (map + checksum) {open_ms:.1f} ms"
    )


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="training rows (default 20000)")
    parser.add_argument("--calls", type=int, default=1000, help="single-row calls per round")
    parser.add_argument("--batch", type=int, default=500, help="rows per batch (default 500)")
    parser.add_argument("--explain", type=int, default=100, help="rows explained (default 100)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--no-large", action="store_true", help="skip the 2,000-tree model")
    parser.add_argument("--workdir", type=Path, help="keep the models here for the next run")
    args = parser.parse_args()
    config: ModelConfig = load_config(DEFAULT_CONFIG)
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        configs = {"demo": (config, "demo")}
        if not args.no_large:
            configs["large"] = (large_config(config), "large-2000")
        table = []
        for label, (model_config, directory) in configs.items():
            model, leads = build(workdir, model_config, directory, args.rows)
            text = (workdir / directory / "auto" / "v1.0.0" / "model.txt").read_bytes()
            layout = Path(tmp) / f"{directory}.layout"
            write_layout(text, layout)
            print(describe(label, text, layout))
            model.close()  # the service's own kernel; this run maps its own copy
            capi = LightGBMPredictor.from_model_string(text)  # the reference
            rows = encoded_rows(model, leads, capi.num_features)
            scale = 1 if label == "demo" else 10
            explained = np.ascontiguousarray(rows[: max(5, args.explain // scale)])
            with TreeKernel.open(layout) as kernel, capi:
                check_identical(kernel, capi, rows, explained)
                print(f"  {len(rows)} holdout leads: scores and contributions bit-identical")
                calls = max(100, args.calls // scale)
                results = measure(kernel, capi, rows, calls, args.batch, explained, args.rounds)
            name = label
            if label == "large":
                name = f"large ({kernel.num_trees} x {LARGE_LEAVES})"
            table += [(name, mode, *values) for mode, values in results.items()]
    print(f"\nMedians of {args.rounds} interleaved rounds, one thread, microseconds per row:")
    print(f"  {'model':<20}{'mode':<16}{'kernel':>10}{'LightGBM':>10}{'ratio':>8}")
    for label, mode, ours, theirs, ratio in table:
        print(f"  {label:<20}{mode:<16}{ours:>10.2f}{theirs:>10.2f}{ratio:>7.2f}x")
    print("\nGoals: large single row <= 0.50x, demo single row <= 1.00x, batch <= 1.00x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
