"""HTTP benchmark: the scoring service against its ceiling and the seed-style service.

Three apps (and ours a second time, over TLS) score the same auto lead
(``examples/leads/auto.json``) with the same model (``auto`` v1.1.0, trained here from
synthetic leads), in one run, one after another (never two at once), each under
gunicorn with the same number of uvicorn workers on a free 127.0.0.1 port:

- ceiling (``bench/baselines/ceiling_app.py``): a minimal Starlette endpoint returning a
  constant JSON body; no app on this stack can be faster.
- seed (``bench/baselines/seed_app.py``): FastAPI + pydantic + a one-row pandas
  DataFrame + ``lightgbm.Booster.predict``, the model loaded per worker after fork.
- ours: ``ml-service serve`` (gunicorn with the repository's ``gunicorn.conf.py``), with
  all four verticals loaded and a JWT on every request.
- ours over TLS 1.3 (right after ours, unless ``--no-tls``): the same service with a
  development certificate (``ml-service tls dev-cert``, ECDSA P-256) in
  ``TLS_CERT_FILE`` / ``TLS_KEY_FILE``, loaded the same way over ``https://``. The
  report compares it with ours over plain HTTP: throughput ratio, p50, p99, and machine
  time per request. Connections are kept alive, so this is the per-request cost of
  encryption; handshakes happen once per connection, at the start.

Each app gets a warm-up (default 2 s), then the same load: ``wrk -t2 -c32 -d10s
--latency`` with ``bench/wrk/post_json.lua`` for the POST body and headers. When ``wrk``
is not installed, a built-in asyncio load generator (keep-alive connections, exact
per-request latencies) stands in; it is slower than wrk, so absolute figures then
understate the fast apps. Printed per app: requests/s, p50, p99, non-2xx/3xx responses
and socket errors, and the RSS of the gunicorn master and of each worker (VmRSS from
``/proc/<pid>/status``). For ours, also a reload window: the same load while
``POST /api/v1/models/reload`` switches auto between 1.0.0 and 1.1.0 every 0.5 s.

Goals, as ratios against baselines measured in the same run (absolute figures on a
shared machine drift from run to run, ratios much less):

- ours / ceiling throughput >= 0.6,
- ours / seed throughput >= 8,
- our p99 <= 5 ms,
- and no failed scoring request, in the main run, in the reload window or over TLS.

Run ``python bench/bench_http.py --help`` for options; ``--check`` exits 1 when a goal is
missed. Needs ``wrk`` (or falls back), the ``bench`` extra (fastapi, pydantic, pandas)
and ``uvicorn-worker``. The load generator shares the machine's cores with the servers,
as in the measured facts of ``DESIGN.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from httpbench.common import (
    APP_KEYS,
    APP_LABELS,
    LEAD_FILE,
    SERVED_VERSION,
    TLS_APP,
    VERTICALS,
    progress,
    stop_servers_on_signals,
)
from httpbench.goals import evaluate_goals
from httpbench.load import Load
from httpbench.report import print_report
from httpbench.runs import AppRun, bench_app, pick_median
from httpbench.servers import baseline_spec, ours_spec
from httpbench.workspace import (
    Workspace,
    activate_served_version,
    command_works,
    make_tls_certificate,
    mint_tokens,
    ml_service,
    prepare_models,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Goals: ours/ceiling >= 0.6, ours/seed >= 8, our p99 <= 5 ms, no errors.",
    )
    cores = len(os.sched_getaffinity(0))
    parser.add_argument(
        "--workers", type=int, default=cores, help=f"gunicorn workers per app (default {cores})"
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds of each measured run (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of warm-up per app (default 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections (default 32)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the apps in turn this many times and report each app's median round "
        "(default 1; the reload window runs in the last round)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    parser.add_argument(
        "--skip-reload", action="store_true", help="skip the reload window of our service"
    )
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="do not run our service a second time over TLS 1.3 (it runs right after ours)",
    )
    parser.add_argument(
        "--apps",
        default=",".join(APP_KEYS),
        help="comma-separated apps to run, in this order (default ceiling,seed,ours)",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or the built-in asyncio one",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep keys, data and models here and reuse them next time (default: a temp dir)",
    )
    parser.add_argument("--verbose", action="store_true", help="echo wrk's output to stderr")
    args = parser.parse_args(argv)
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = sorted(set(apps) - set(APP_KEYS))
    if unknown:
        parser.error(f"unknown app(s) {', '.join(unknown)}; choose from {', '.join(APP_KEYS)}")
    if min(args.workers, args.duration, args.connections, args.rounds) < 1 or args.warmup < 0:
        parser.error("--workers, --duration, --connections and --rounds must be positive")
    args.apps = apps
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_servers_on_signals()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
        if generator == "python":
            progress("wrk not found: using the built-in asyncio load generator (slower)")
    elif generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed")
    apps: list[str] = list(args.apps)
    if "ours" in apps and not (
        command_works([ml_service(), "serve", "--help"])
        and command_works([ml_service(), "auth", "--help"])
    ):
        progress("`ml-service serve` or `ml-service auth` is not available: skipping ours")
        apps = [a for a in apps if a != "ours"]
    if "ours" in apps and not args.no_tls:
        if command_works([ml_service(), "tls", "dev-cert", "--help"]):
            apps.insert(apps.index("ours") + 1, TLS_APP)
        else:
            progress("`ml-service tls dev-cert` is not available: skipping ours over TLS")

    rounds: dict[str, list[AppRun]] = {key: [] for key in apps}
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        else:
            root = args.workdir.resolve()
            root.mkdir(parents=True, exist_ok=True)
        space = Workspace(root)
        prepare_models(space, VERTICALS if "ours" in apps else ("auto",))
        tokens = mint_tokens(space) if "ours" in apps else ("", "")
        if TLS_APP in apps:
            make_tls_certificate(space)
        lead = json.loads(LEAD_FILE.read_text(encoding="utf-8"))
        body_file = root / "score-body.json"
        body_file.write_text(json.dumps({"vertical": "auto", "lead_data": lead}), "utf-8")
        load = Load(body_file, args.duration, args.connections, 2, generator, args.verbose)
        seed_dir = str(space.models / "auto" / f"v{SERVED_VERSION}")
        for number in range(args.rounds):
            for key in apps:
                reload_admin = None
                if key == "ceiling":
                    spec = baseline_spec(key, "ceiling_app", args.workers)
                elif key == "seed":
                    spec = baseline_spec(key, "seed_app", args.workers, SEED_MODEL_DIR=seed_dir)
                else:
                    activate_served_version(space)
                    spec = ours_spec(space, args.workers, tokens[0], tls=key == TLS_APP)
                    if key == "ours" and number == args.rounds - 1 and not args.skip_reload:
                        reload_admin = tokens[1]
                rounds[key].append(
                    bench_app(spec, load, root, args.workers, args.warmup, reload_admin)
                )

    runs = {key: pick_median(values) for key, values in rounds.items() if values}
    # The reload window runs in the last round, whichever round is the median one.
    reload_run = rounds["ours"][-1] if rounds.get("ours") else None
    print_report(runs, reload_run, args, generator)
    if args.rounds > 1:
        print(
            "\nreq/s (p99 ms; server CPU us per request) by round; the table shows each "
            "app's median round:"
        )
        for key, values in rounds.items():
            figures = ", ".join(
                f"{r.rps:.0f} ({r.p99_ms:.1f}; {r.server_cpu_us_per_request:.0f})"
                for r in (run.result for run in values)
            )
            print(f"  {APP_LABELS[key]:<32}{figures}")
    ours = runs.get("ours")
    goals = evaluate_goals(
        runs["ceiling"].result if "ceiling" in runs else None,
        runs["seed"].result if "seed" in runs else None,
        ours.result if ours else None,
        reload_run.reload_window if reload_run else None,
        runs[TLS_APP].result if TLS_APP in runs else None,
    )
    print()
    for goal in goals:
        print(goal.line())
    passed = all(goal.met for goal in goals)
    print("goals met" if passed else "GOAL MISSED")
    return 0 if passed or not args.check else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        progress("interrupted: servers stopped")
        sys.exit(130)
