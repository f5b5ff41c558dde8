"""HTTP with large models: the compiled tree kernel against the LightGBM C-API path.

The real service (``ml-service serve``, ``--workers`` uvicorn workers under the
repository's ``gunicorn.conf.py``) serves one large model per vertical, the ones
``bench_memory.py`` trains (``bench_cache.large_config``: up to 2,000 rounds of 255 leaves;
about 1,100 to 1,700 trees are kept), in two forms, one after another, in alternating
rounds:

- kernel: the versions as training published them, with ``model.layout``: the compiled
  kernel scores from the memory-mapped layout (what serves by default);
- C API: the same versions republished without ``model.layout`` (signed by the same key,
  every other file byte for byte the same), so the same code serves them with LightGBM's
  C-API predictor, the path every version took before the kernel.

Each run: a warm-up, then the same load as ``bench_http.py`` (``wrk`` with the auto lead
of ``examples/leads/auto.json``, keep-alive connections). Printed per round and as
medians: requests/s, p50, p99, server CPU per request, failed requests, and the kernel's
throughput ratio to the C-API path. The large models take several minutes to train once;
``--workdir`` keeps them (the same directory layout as ``bench_memory.py --workdir``, so
one workdir serves both).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import msgspec
from bench_memory import LARGE_VERSION, describe_models, prepare_large
from httpbench.common import LEAD_FILE, VERTICALS, progress, stop_servers_on_signals
from httpbench.load import Load
from httpbench.parsing import LoadResult
from httpbench.runs import bench_app
from httpbench.servers import AppSpec, ours_spec
from httpbench.workspace import Workspace, mint_tokens, open_workspace, prepare_models

from engine.store import pointer
from engine.store.layout import MODEL_LAYOUT_FILE, version_dir
from engine.store.manifest import Manifest, decode_manifest
from engine.store.publish import publish
from engine.store.signing import Keyring, SigningKey

PATHS = ("kernel", "C API")


def with_files(manifest: Manifest, hashes: dict[str, str]) -> Manifest:
    """``manifest`` listing ``hashes`` as its files."""
    return msgspec.structs.replace(manifest, files=hashes)


def republish_without_layout(space: Workspace, source: Path, target: Path) -> None:
    """Copy every vertical's active large version from ``source`` without ``model.layout``."""
    key = SigningKey.load(space.keys / "model-signing.key")
    keyring = Keyring.load(space.keys / "trusted")
    for vertical in VERTICALS:
        if version_dir(target, vertical, LARGE_VERSION).exists():
            continue
        directory = version_dir(source, vertical, LARGE_VERSION)
        manifest = decode_manifest((directory / "manifest.json").read_bytes())
        files = {
            name: (directory / name).read_bytes()
            for name in manifest.files
            if name != MODEL_LAYOUT_FILE
        }
        publish(target, vertical, LARGE_VERSION, files, partial(with_files, manifest), key)
        pointer.activate(target, vertical, LARGE_VERSION, keyring)


def spec_for(space: Workspace, root: Path, path: str, workers: int, token: str) -> AppSpec:
    """The service serving the model root ``root``, labelled by its scoring path."""
    spec = ours_spec(space, workers, token)
    spec.env["MODEL_PATH"] = str(root)
    spec.key = path
    return spec


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--train-jobs", type=int, default=2, help="large models trained at once (default 2)"
    )
    parser.add_argument("--workdir", type=Path, help="keep keys and models here for next time")
    return parser.parse_args(argv)


def row(label: str, result: LoadResult) -> str:
    """One printed line of a run."""
    failed = result.non_2xx + sum(result.socket_errors.values())
    return (
        f"  {label:<20}{result.rps:>10,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
        f"{result.server_cpu_us_per_request:>12.0f}{failed:>8}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Prepare the models, run the rounds, print the table."""
    args = parse_args(argv)
    stop_servers_on_signals()
    if not shutil.which("wrk"):
        progress("wrk not found: using the built-in asyncio load generator (slower)")
    generator = "wrk" if shutil.which("wrk") else "python"
    with contextlib.ExitStack() as stack:
        space = open_workspace(stack, args.workdir, "bench-http-large-")
        prepare_models(space, ())  # the signing keys
        kernel_root = space.root / "large-models"
        capi_root = space.root / "large-models-capi"
        prepare_large(space, kernel_root, args.train_jobs)
        republish_without_layout(space, kernel_root, capi_root)
        roots = {"kernel": kernel_root, "C API": capi_root}
        print(f"large models: {describe_models(kernel_root)}")
        token, _admin = mint_tokens(space)
        lead = json.loads(LEAD_FILE.read_text(encoding="utf-8"))
        body = space.root / "score-body.json"
        body.write_text(json.dumps({"vertical": "auto", "lead_data": lead}), "utf-8")
        load = Load(body, args.duration, args.connections, 2, generator, False)
        results: dict[str, list[LoadResult]] = {path: [] for path in PATHS}
        for _ in range(args.rounds):
            for path in PATHS:
                spec = spec_for(space, roots[path], path, args.workers, token)
                run = bench_app(spec, load, space.root, args.workers, args.warmup)
                if not run.answer.startswith("200 "):
                    sys.exit(f"{path}: the first scoring request failed: {run.answer[:300]}")
                results[path].append(run.result)

    print(f"\n{args.workers} workers, {args.connections} connections, {generator}, auto lead:")
    print(f"  {'run':<20}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'failed':>8}")
    for number in range(args.rounds):
        for path in PATHS:
            print(row(f"{path}, round {number + 1}", results[path][number]))
    medians = {path: statistics.median(r.rps for r in results[path]) for path in PATHS}
    cpu = {
        path: statistics.median(r.server_cpu_us_per_request for r in results[path])
        for path in PATHS
    }
    ratios = [k.rps / c.rps for k, c in zip(results["kernel"], results["C API"], strict=True)]
    print(
        f"\nmedian req/s: kernel {medians['kernel']:,.0f}, C API {medians['C API']:,.0f}; "
        f"kernel / C API per round: {', '.join(f'{r:.2f}x' for r in ratios)} "
        f"(median {statistics.median(ratios):.2f}x); server CPU per request: kernel "
        f"{cpu['kernel']:.0f} us, C API {cpu['C API']:.0f} us"
    )
    failed = sum(
        r.non_2xx + sum(r.socket_errors.values()) for runs in results.values() for r in runs
    )
    print("no failed request" if failed == 0 else f"FAILED REQUESTS: {failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
