"""Bearer-token authentication: Ed25519-signed JWTs with a role claim.

Tokens are JWTs signed with EdDSA (Ed25519) whose header ``kid`` names the verifying
key: the key id of the public key (first 16 hex digits of the SHA-256 of its raw
bytes, as for model signing). Required claims: ``sub``, ``role`` (``scorer`` or
``admin``), ``exp``, ``iss`` and ``aud``. ``admin`` may do everything ``scorer`` may.

Verifying a signature costs tens of microseconds, so verified claims are cached by
token (bounded, least recently used) until the token's ``exp``; a cached token is still
refused the moment it expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.store.signing import Keyring, SigningKey

ROLES = ("scorer", "admin")
_ROLE_RANK = {"scorer": 1, "admin": 2}
CACHE_SIZE = 10_000


class AuthError(Exception):
    """Authentication or authorisation failed.

    Attributes:
        status: 401 (no or bad credentials) or 403 (valid, but the role is too low).
        reason: What was wrong, for the error body.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Principal:
    """Who made a request: the token's subject and role."""

    __slots__ = ("expires", "role", "subject")

    def __init__(self, subject: str, role: str, expires: float) -> None:
        self.subject = subject
        self.role = role
        self.expires = expires


class Authenticator:
    """Verifies bearer tokens against a set of Ed25519 public keys."""

    def __init__(
        self,
        keys: dict[str, Ed25519PublicKey],
        issuer: str,
        audience: str,
        clock: Any = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    @classmethod
    def from_directory(cls, path: Path, issuer: str, audience: str) -> Authenticator:
        """Load every ``*.pub`` Ed25519 key of ``path`` (or the one file ``path``).

        Raises:
            StoreError: No key found, or a file is not an Ed25519 public key.
        """
        return cls(Keyring.load(path).keys, issuer, audience)

    def authenticate(self, authorization: str | None, role: str) -> Principal:
        """Check an ``Authorization`` header and that its role allows ``role``.

        Raises:
            AuthError: 401 when the header is missing or the token invalid, expired or
                signed by an unknown key; 403 when the role is insufficient.
        """
        if not authorization:
            raise AuthError(401, "missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError(401, "Authorization must be 'Bearer <token>'")
        principal = self._cache.get(token)
        now = self._clock()
        if principal is None or principal.expires <= now:
            principal = self._verify(token)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.popitem(last=False)
            self._cache[token] = principal
        else:
            self._cache.move_to_end(token)
        if _ROLE_RANK[principal.role] < _ROLE_RANK[role]:
            raise AuthError(403, f"role {principal.role!r} may not do this; it needs {role!r}")
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"malformed token: {exc}") from None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError(401, "token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "role", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid token: {exc}") from None
        role = claims.get("role")
        if role not in _ROLE_RANK:
            raise AuthError(401, f"token role must be one of {', '.join(ROLES)}")
        expires = float(claims["exp"])
        if expires <= self._clock():  # the same clock as the cache's expiry check
            raise AuthError(401, "token expired")
        return Principal(str(claims["sub"]), role, expires)


def issue_token(
    signing_key: SigningKey,
    subject: str,
    role: str,
    ttl_seconds: int,
    issuer: str = "ml-service",
    audience: str = "ml-service",
    now: float | None = None,
) -> str:
    """Sign a token for ``subject`` with ``role``, valid for ``ttl_seconds``.

    Raises:
        ValueError: Unknown role or a non-positive lifetime.
    """
    if role not in _ROLE_RANK:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if ttl_seconds <= 0:
        raise ValueError("ttl must be positive")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(
        claims, signing_key.private_key, algorithm="EdDSA", headers={"kid": signing_key.key_id}
    )
