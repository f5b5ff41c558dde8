"""``ml-service``: the engine's commands plus ``serve`` and ``auth`` (the service's own).

``engine.cli`` knows nothing of HTTP; this module extends its parser with:

- ``serve``: run the service under gunicorn with the repository's ``gunicorn.conf.py``,
  after checking its settings (``api.preflight``: a mistake is one line and exit 1).
- ``auth``: token keys (create, rotate, list, revoke) and tokens (``api.auth_cli``).
- ``tls dev-cert``: a self-signed certificate and key for local HTTPS (``api.tls_cli``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from api.auth_cli import add_auth_commands
from api.tls_cli import add_tls_commands
from engine.cli.main import build_parser as build_engine_parser
from engine.cli.main import main as engine_main
from engine.errors import EngineError

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


def build_parser() -> argparse.ArgumentParser:
    """Return the full ``ml-service`` parser."""
    parser = build_engine_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    serve = sub.add_parser("serve", help="run the HTTP service (gunicorn + uvicorn workers)")
    serve.add_argument("--bind", help="HOST:PORT (default $BIND or 0.0.0.0:8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    serve.set_defaults(handler=serve_command)

    add_auth_commands(sub)
    add_tls_commands(sub)
    return parser


def serve_command(args: argparse.Namespace) -> NoReturn:
    """Check the settings (``api.preflight``), then replace this process with gunicorn.

    Raises:
        PreflightError: A setting would stop the service; the message is one line.
    """
    if not GUNICORN_CONF.exists():
        raise EngineError(f"{GUNICORN_CONF} not found; run the service from its checkout")
    if args.bind:
        os.environ["BIND"] = args.bind
    if args.workers:
        os.environ["WORKERS"] = str(args.workers)
    if args.config:
        os.environ["CONFIG_PATH"] = args.config
    if args.model_path:
        os.environ["MODEL_PATH"] = args.model_path
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from api import preflight  # the service's settings: only serve needs them

    # Here, before gunicorn logs a line: a mistake prints one line (main's "error: ...").
    preflight.check(preflight.settings_from(os.environ), ports=not preflight.inherits_sockets())
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    os.execv(sys.executable, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ml-service`` and return its exit status."""
    return engine_main(argv, parser=build_parser())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
