"""Bearer tokens for the load test: a scorer's and an admin's.

Issued from the local token-signing key (``var/keys/jwt/jwt-signing.key``, the key
``make run`` issues its demo tokens from) with ``api.auth.issue_token``, the function
behind ``ml-service auth token``; or given (``LOADTEST_SCORER_TOKEN`` and
``LOADTEST_ADMIN_TOKEN``) for a service whose signing key is elsewhere. The runner
issues them once and hands them to locust through those two variables; the locustfile
run by hand issues its own from ``LOADTEST_JWT_KEY`` (default the local key).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JWT_KEY = REPO / "var" / "keys" / "jwt" / "jwt-signing.key"
SCORER_ENV = "LOADTEST_SCORER_TOKEN"
ADMIN_ENV = "LOADTEST_ADMIN_TOKEN"
KEY_ENV = "LOADTEST_JWT_KEY"


@dataclass(frozen=True)
class Tokens:
    """The scorer's token (scoring, feedback) and the admin's (reload)."""

    scorer: str
    admin: str

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` reads them back from."""
        return {SCORER_ENV: self.scorer, ADMIN_ENV: self.admin}


def issue(key_path: Path, ttl_seconds: int = 86400, subject: str = "loadtest") -> Tokens:
    """Issue a scorer and an admin token signed with the key at ``key_path``.

    The issuer and audience follow ``JWT_ISSUER`` / ``JWT_AUDIENCE`` like
    ``ml-service auth token``.

    Raises:
        FileNotFoundError: No key at ``key_path`` (the message says how to make one).
    """
    if not key_path.is_file():
        raise FileNotFoundError(
            f"no token-signing key at {key_path}: create it with "
            "`make var/keys/jwt/jwt-signing.key` (or `ml-service auth keygen`), "
            f"or give the tokens in {SCORER_ENV} and {ADMIN_ENV}"
        )
    from api.auth import issue_token
    from engine.store.signing import SigningKey

    key = SigningKey.load(key_path)
    issuer = os.environ.get("JWT_ISSUER") or "ml-service"
    audience = os.environ.get("JWT_AUDIENCE") or "ml-service"
    return Tokens(
        scorer=issue_token(key, f"{subject}-scorer", "scorer", ttl_seconds, issuer, audience),
        admin=issue_token(key, f"{subject}-admin", "admin", ttl_seconds, issuer, audience),
    )


def from_env(environ: Mapping[str, str]) -> Tokens:
    """The tokens given in the environment, else issued from ``LOADTEST_JWT_KEY``.

    Raises:
        FileNotFoundError: Neither given nor a key to issue them from.
    """
    scorer, admin = environ.get(SCORER_ENV), environ.get(ADMIN_ENV)
    if scorer and admin:
        return Tokens(scorer, admin)
    return issue(Path(environ.get(KEY_ENV) or DEFAULT_JWT_KEY))
