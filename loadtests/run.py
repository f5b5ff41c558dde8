"""Run the locust mix headless against the service, and pass or fail it.

    .venv/bin/python -m loadtests.run                      # a local service, 60 s
    .venv/bin/python -m loadtests.run --host http://10.0.0.5:8000 --duration 300

Without ``--host`` it starts a local service from ``var/`` like ``make run`` does
(``make models`` must have made the models and keys; free ports, its own run directory
under the report directory) and stops it afterwards. Tokens are issued from the local
token-signing key, or given in ``LOADTEST_SCORER_TOKEN`` / ``LOADTEST_ADMIN_TOKEN``.

Locust's CSV and HTML reports go to ``--out`` (default ``var/loadtest``). The exit code
is 0 when every threshold holds (``loadtests.thresholds``: no unexpected failure, p99
within ``--p99-ms``, every kind of request made), 1 when one does not, 2 when the run
could not be made. The mix and its settings: ``loadtests/mix.py`` and docs/loadtests.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtests import mix, thresholds
from loadtests.local_service import VAR, LocalService, StorePaths
from loadtests.locust_process import LocustRun
from loadtests.tokens import DEFAULT_JWT_KEY, KEY_ENV, Tokens, from_env


def add_mix_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the load test and the soak: the mix, the users, the local service."""
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument(
        "--spawn-rate", type=float, default=10.0, help="users started per second (default 10)"
    )
    parser.add_argument(
        "--verticals",
        default=mix.DEFAULT_VERTICALS,
        help=f"share of leads per vertical (default {mix.DEFAULT_VERTICALS})",
    )
    parser.add_argument(
        "--tasks",
        default=mix.DEFAULT_TASKS,
        help=f"share of requests by kind, whole numbers (default {mix.DEFAULT_TASKS})",
    )
    parser.add_argument(
        "--batch-size", default="10-50", help="leads per batch, low-high (default 10-50)"
    )
    parser.add_argument(
        "--wait",
        default="0.05-0.15",
        help="seconds a user waits between requests, low-high (default 0.05-0.15)",
    )
    parser.add_argument("--seed", type=int, default=1001, help="lead generator seed")
    parser.add_argument("--p99-ms", type=float, default=500.0, help="p99 limit (default 500)")
    parser.add_argument(
        "--jwt-key",
        type=Path,
        default=DEFAULT_JWT_KEY,
        help="token-signing key to issue tokens from (default var/keys/jwt/jwt-signing.key)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="workers of the local service (default 2)"
    )
    parser.add_argument(
        "--pin-workers", action="store_true", help="pin the local service's workers to cores"
    )


def mix_settings(args: argparse.Namespace, **extra: object) -> mix.MixSettings:
    """The mix settings the options describe (checked the way locust will read them).

    Raises:
        ValueError: An option has an unusable value.
    """
    env = {
        "LOADTEST_VERTICALS": args.verticals,
        "LOADTEST_TASKS": args.tasks,
        "LOADTEST_BATCH_SIZE": args.batch_size,
        "LOADTEST_WAIT": args.wait,
        "LOADTEST_SEED": str(args.seed),
        **{name: str(value) for name, value in extra.items()},
    }
    return mix.MixSettings.from_env(env)


def tokens_for(args: argparse.Namespace) -> Tokens:
    """The tokens given in the environment, else issued from ``--jwt-key``."""
    return from_env({**os.environ, KEY_ENV: str(args.jwt_key)})


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m loadtests.run``."""
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description="Run the locust mix headless against the service and judge it: "
        "exit 0 if no unexpected failure and p99 within the limit, 1 if not, 2 on error.",
    )
    parser.add_argument("--host", help="URL of a running service (default: start a local one)")
    add_mix_options(parser)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument(
        "--reload-every",
        type=float,
        default=10.0,
        help="seconds between admin reloads, 0 for none (default 10)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=VAR / "loadtest",
        help="report directory (default var/loadtest)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the load test the options describe; print the figures; return the exit code."""
    settings = mix_settings(args, LOADTEST_RELOAD_SECONDS=args.reload_every)
    required = tuple(k for k in mix.TASK_KINDS if settings.tasks.get(k, 0) > 0)
    limits = thresholds.Thresholds(
        p99_ms=args.p99_ms,
        required_kinds=required + ((mix.RELOAD,) if args.reload_every > 0 else ()),
    )
    service: LocalService | None = None
    host = args.host
    if host is None:
        paths = StorePaths(jwt_signing_key=args.jwt_key)
        paths.check()
        service = LocalService(paths, args.out, args.workers, args.pin_workers).start()
        host = service.url
        print(f"local service on {host} (log: {service.log_path})")
    try:
        locust = LocustRun(
            host,
            tokens_for(args),
            args.out,
            seconds=args.duration,
            users=args.users,
            spawn_rate=args.spawn_rate,
            settings=settings,
        )
        print(f"locust: {args.users} users for {args.duration:g} s against {host} ...")
        results = locust.run()
    finally:
        if service is not None:
            service.stop()
    print(f"reports: {locust.prefix}_stats.csv, {locust.html}")
    for line in thresholds.summary(results):
        print(line)
    problems = thresholds.judge(results, limits)
    for problem in problems:
        print(f"FAIL: {problem}")
    print("PASS" if not problems else f"FAIL ({len(problems)} problems)")
    return 0 if not problems else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m loadtests.run``."""
    args = parser().parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
