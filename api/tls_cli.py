"""``ml-service tls``: certificates for the service's TLS 1.3 listener.

- ``tls dev-cert``: a self-signed ECDSA P-256 certificate and key for local use
  (``api.devcert``); production certificates come from a CA (see ``docs/security.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import EngineError


def _days(text: str) -> int:
    from api.devcert import MAX_DAYS

    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{days} is not between 1 and {MAX_DAYS}")
    return days


def add_tls_commands(sub: Any) -> None:
    """Add ``tls`` and its actions to the ``ml-service`` subcommands ``sub``."""
    from api.devcert import ALWAYS_NAMES, CERT_NAME, DEFAULT_DAYS, DEFAULT_DIR, KEY_NAME, MAX_DAYS

    tls = sub.add_parser("tls", help="TLS certificates for the HTTPS listener")
    actions = tls.add_subparsers(dest="tls_command", required=True, metavar="ACTION")
    dev = actions.add_parser(
        "dev-cert",
        help="create a self-signed ECDSA P-256 certificate and key for local use",
        description=(
            f"Write {KEY_NAME} (private key, mode 0600) and {CERT_NAME} (self-signed "
            f"certificate) for {', '.join(ALWAYS_NAMES)} and any --host. Serve them with "
            f"TLS_CERT_FILE=<dir>/{CERT_NAME} TLS_KEY_FILE=<dir>/{KEY_NAME}; clients must "
            f"trust {CERT_NAME} explicitly (e.g. curl --cacert). For local use only."
        ),
    )
    dev.add_argument(
        "--dir", default=str(DEFAULT_DIR), help=f"output directory (default {DEFAULT_DIR})"
    )
    dev.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME",
        help="another DNS name or IP address for the certificate (repeatable)",
    )
    dev.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        help=f"validity in days, 1 to {MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    dev.add_argument(
        "--force", action="store_true", help=f"replace an existing {KEY_NAME} and {CERT_NAME}"
    )
    dev.set_defaults(handler=dev_cert_command)


def dev_cert_command(args: argparse.Namespace) -> int:
    """Create the development certificate and say how to use it."""
    from api.devcert import DevCertError, make_dev_certificate

    try:
        made = make_dev_certificate(Path(args.dir), args.host, args.days, args.force)
    except DevCertError as exc:
        raise EngineError(str(exc)) from exc
    except OSError as exc:
        raise EngineError(f"cannot write the certificate in {args.dir}: {exc}") from exc
    print(
        f"TLS certificate {made.cert_path} (self-signed, for {', '.join(made.names)}; "
        f"valid until {made.not_after:%Y-%m-%d %H:%M} UTC; "
        f"SHA-256 {made.fingerprint})\n"
        f"private key {made.key_path} (mode 0600, keep it secret)\n"
        f"serve it: TLS_CERT_FILE={made.cert_path} TLS_KEY_FILE={made.key_path} "
        f"ml-service serve\n"
        f"trust it: curl --cacert {made.cert_path} https://localhost:8000/health"
    )
    return 0
