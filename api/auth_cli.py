"""``ml-service auth``: token keys, their rotation and revocation, and tokens.

- ``auth keygen``: create the first token-signing key (refuses to replace one).
- ``auth rotate``: a new signing key; the previous one verifies for a grace period;
  keys over the maximum age are retired (``api.token_keys.rotate``).
- ``auth keys``: every key with its state and dates.
- ``auth revoke``: refuse tokens by ``jti`` or by subject.
- ``auth token``: print a signed token for a role.

Rotation and revocation change files only; a reload (``POST /api/v1/models/reload`` or
``kill -HUP`` of the master) makes every worker re-read them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from api.settings import DEFAULT_JWT_DIR, JWT_KEY_NAME
from api.token_keys import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_MAX_AGE_DAYS,
    TRUSTED_DIR_NAME,
    read_metadata,
    revoke,
    rotate,
)
from engine.errors import EngineError
from engine.store.signing import Keyring

_RELOAD_HINT = "reload the service (kill -HUP <master pid> or POST /api/v1/models/reload)"


def add_auth_commands(sub: Any) -> None:
    """Add ``auth`` and its actions to the ``ml-service`` subcommands ``sub``."""
    auth = sub.add_parser("auth", help="API token keys: create, rotate, revoke; issue tokens")
    actions = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    directory = {
        "default": str(DEFAULT_JWT_DIR),
        "help": f"token key directory (default {DEFAULT_JWT_DIR})",
    }

    keygen = actions.add_parser("keygen", help="create the first Ed25519 token-signing key")
    keygen.add_argument("--dir", **directory)
    keygen.set_defaults(handler=keygen_command)

    rotation = actions.add_parser(
        "rotate",
        help="new signing key; the previous one verifies for a grace period; old keys retire",
    )
    rotation.add_argument("--dir", **directory)
    rotation.add_argument(
        "--grace-days",
        type=float,
        default=DEFAULT_GRACE_DAYS,
        help=f"how long tokens of the replaced key still verify (default {DEFAULT_GRACE_DAYS})",
    )
    rotation.add_argument(
        "--max-age-days",
        type=float,
        default=DEFAULT_MAX_AGE_DAYS,
        help=f"retire keys older than this (default {DEFAULT_MAX_AGE_DAYS})",
    )
    rotation.set_defaults(handler=rotate_command)

    keys = actions.add_parser("keys", help="list the token keys with their state")
    keys.add_argument("--dir", **directory)
    keys.set_defaults(handler=keys_command)

    revocation = actions.add_parser("revoke", help="refuse tokens by id (jti) or subject")
    revocation.add_argument("--dir", **directory)
    revocation.add_argument("--jti", action="append", default=[], help="a token id (repeatable)")
    revocation.add_argument("--subject", action="append", default=[], help="a subject (repeatable)")
    revocation.set_defaults(handler=revoke_command)

    token = actions.add_parser("token", help="print a signed API token")
    token.add_argument("--role", choices=["scorer", "viewer", "admin"], required=True)
    token.add_argument("--subject", default="cli", help="the token's sub claim (default cli)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--id", dest="token_id", help="the token's jti claim (default random)")
    token.add_argument(
        "--key", help=f"signing key (default $JWT_SIGNING_KEY or {DEFAULT_JWT_DIR / JWT_KEY_NAME})"
    )
    token.set_defaults(handler=token_command)


def keygen_command(args: argparse.Namespace) -> int:
    """Create the first token-signing key (never replaces one: that is ``rotate``)."""
    directory = Path(args.dir)
    if (directory / JWT_KEY_NAME).exists():
        raise EngineError(
            f"a token-signing key already exists at {directory / JWT_KEY_NAME}; "
            "use 'ml-service auth rotate' to replace it"
        )
    done = rotate(directory)
    print(
        f"token key {done.new_key}: private {directory / JWT_KEY_NAME} (keep it secret), "
        f"public {directory / TRUSTED_DIR_NAME} (set JWT_PUBLIC_KEYS to this folder)"
    )
    return 0


def rotate_command(args: argparse.Namespace) -> int:
    """Rotate the token-signing key."""
    try:
        done = rotate(Path(args.dir), args.grace_days, args.max_age_days)
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    print(f"new signing key {done.new_key}")
    for kid, until in sorted(done.verify_only.items()):
        print(f"verify-only until {until}: {kid}")
    for kid in done.retired:
        print(f"retired: {kid}")
    print(f"then {_RELOAD_HINT}")
    return 0


def keys_command(args: argparse.Namespace) -> int:
    """List every token key with its state."""
    trusted = Path(args.dir) / TRUSTED_DIR_NAME
    metadata = read_metadata(trusted)
    present = Keyring.load(trusted).key_ids if any(trusted.glob("*.pub")) else frozenset()
    for kid in sorted(present | set(metadata.keys)):
        record = metadata.keys.get(kid)
        state = record.state if record else "active"
        created = record.created_at if record else "-"
        until = (record.verify_until if record else None) or "-"
        print(f"{kid}  {state:<11}  created {created}  verifies until {until}")
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    """Add token ids and subjects to the revocation list."""
    if not args.jti and not args.subject:
        raise EngineError("name at least one --jti or --subject to revoke")
    updated = revoke(Path(args.dir) / TRUSTED_DIR_NAME, args.jti, args.subject)
    print(f"{len(updated.jti)} token id(s) and {len(updated.sub)} subject(s) revoked")
    print(f"then {_RELOAD_HINT}")
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
            token_id=args.token_id,
        )
    except ValueError as exc:
        raise EngineError(str(exc)) from exc
    print(token)
    return 0
