"""``ml-service``: the engine's commands plus ``serve`` and ``auth`` (the service's own).

``engine.cli`` knows nothing of HTTP; this module extends its parser with:

- ``serve``: run the service under gunicorn with the repository's ``gunicorn.conf.py``.
- ``auth keygen``: create the Ed25519 key pair that signs API tokens.
- ``auth token``: print a signed token for a role (``scorer`` or ``admin``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from api.settings import DEFAULT_JWT_DIR, JWT_KEY_NAME
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

    auth = sub.add_parser("auth", help="API token keys and tokens")
    auth_sub = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    keygen = auth_sub.add_parser("keygen", help="create the Ed25519 token-signing key pair")
    keygen.add_argument(
        "--dir", default=str(DEFAULT_JWT_DIR), help=f"key directory (default {DEFAULT_JWT_DIR})"
    )
    keygen.set_defaults(handler=keygen_command)
    token = auth_sub.add_parser("token", help="print a signed API token")
    token.add_argument("--role", choices=["scorer", "admin"], required=True)
    token.add_argument("--subject", default="cli", help="the token's sub claim (default cli)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument(
        "--key", help=f"signing key (default $JWT_SIGNING_KEY or {DEFAULT_JWT_DIR / JWT_KEY_NAME})"
    )
    token.set_defaults(handler=token_command)
    return parser


def serve_command(args: argparse.Namespace) -> NoReturn:
    """Replace this process with gunicorn running the service."""
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
    argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    os.execv(sys.executable, argv)


def keygen_command(args: argparse.Namespace) -> int:
    """Create the token-signing key pair."""
    from engine.store.signing import generate_keypair

    directory = Path(args.dir)
    kid = generate_keypair(directory, private_name=JWT_KEY_NAME)
    print(
        f"token key {kid}: private {directory / JWT_KEY_NAME} (keep it secret), "
        f"public {directory / 'trusted' / (kid + '.pub')} (set JWT_PUBLIC_KEYS to its folder)"
    )
    return 0


def token_command(args: argparse.Namespace) -> int:
    """Print a signed token."""
    from api.auth import issue_token
    from engine.store.signing import SigningKey

    key_path = Path(args.key or os.environ.get("JWT_SIGNING_KEY") or DEFAULT_JWT_DIR / JWT_KEY_NAME)
    try:
        token = issue_token(
            SigningKey.load(key_path),
            args.subject,
            args.role,
            args.ttl,
            issuer=os.environ.get("JWT_ISSUER") or "ml-service",
            audience=os.environ.get("JWT_AUDIENCE") or "ml-service",
        )
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    print(token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ml-service`` and return its exit status."""
    return engine_main(argv, parser=build_parser())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
