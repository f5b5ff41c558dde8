"""Bearer-token authentication: Ed25519-signed JWTs with a role claim.

Tokens are JWTs signed with EdDSA (Ed25519) whose header ``kid`` names the verifying
key in the token keyring (``api.token_keys``). Required claims: ``sub``, ``role``,
``exp``, ``iss`` and ``aud``; ``nbf`` is honoured when present and ``jti`` (set by
``issue_token``) lets a single token be revoked.

Roles and what each is granted (a route declares the one it needs, ``api.access``):

| role | granted |
| --- | --- |
| ``scorer`` | ``scorer``: score, batch score (and outcome feedback) |
| ``viewer`` | ``viewer``: read model information and reports |
| ``admin`` | ``admin``, ``scorer`` and ``viewer``: everything |

Every refusal is an ``AuthError`` with a stable ``reason`` (``REASONS``) and a fixed
sentence that never echoes the token or the JWT library's internals.

Verifying a signature costs tens of microseconds, so verified claims are cached by
token (bounded, least recently used) until the earlier of the token's ``exp`` and its
key's end of validity; the cache is emptied whenever the keyring is re-read, so a
retired key or a revoked token is refused at once, cached or not.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import jwt

from api.token_keys import TokenKeys, load_token_keys
from engine.store.signing import SigningKey

ROLES = ("scorer", "viewer", "admin")
GRANTS: dict[str, frozenset[str]] = {
    "scorer": frozenset({"scorer"}),
    "viewer": frozenset({"viewer"}),
    "admin": frozenset(ROLES),
}
CACHE_SIZE = 10_000
# An EdDSA token of this service is about 300 bytes; anything far larger is an attack on
# the parser (or a token from elsewhere), refused before it is decoded.
MAX_TOKEN_BYTES = 4096
ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("exp", "sub", "role", "iss", "aud")

# reason -> (status, message). Messages are fixed: they name the category only.
REASONS: dict[str, tuple[int, str]] = {
    "missing": (401, "missing Authorization header (expected 'Bearer <token>')"),
    "scheme": (401, "Authorization must be 'Bearer <token>'"),
    "too_large": (401, f"token is over {MAX_TOKEN_BYTES} bytes"),
    "malformed": (401, "malformed token"),
    "algorithm": (401, f"token algorithm must be {ALGORITHM}"),
    "unknown_key": (401, "token signed by an unknown key"),
    "retired_key": (401, "token signed by a retired key"),
    "bad_signature": (401, "token signature does not verify"),
    "expired": (401, "token expired"),
    "not_yet_valid": (401, "token not valid yet (nbf is in the future)"),
    "audience": (401, "token audience is not accepted"),
    "issuer": (401, "token issuer is not accepted"),
    "missing_claim": (401, f"token must carry the claims {', '.join(REQUIRED_CLAIMS)}"),
    "invalid_claim": (401, "token has a claim of the wrong type"),
    "unknown_role": (401, f"token role must be one of {', '.join(ROLES)}"),
    "revoked": (401, "token revoked"),
    "forbidden": (403, "the token's role may not use this route"),
}


class AuthError(Exception):
    """Authentication or authorisation failed.

    Attributes:
        status: 401 (no or bad credentials) or 403 (valid, but the role is too low).
        reason: The category, a key of ``REASONS`` (a bounded metric label).
        message: The sentence for the error body.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        status, default = REASONS[reason]
        super().__init__(message or default)
        self.status = status
        self.reason = reason
        self.message = message or default


class Principal:
    """Who made a request: the token's subject, role, grants and end of validity."""

    __slots__ = ("expires", "grants", "role", "subject")

    def __init__(self, subject: str, role: str, expires: float) -> None:
        self.subject = subject
        self.role = role
        self.grants = GRANTS[role]
        self.expires = expires


# PyJWT's exceptions by category; subclasses first (InvalidSignatureError is a
# DecodeError, ExpiredSignatureError an InvalidTokenError).
_JWT_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.DecodeError, "malformed"),
)


def _category(exc: jwt.PyJWTError) -> str:
    for kind, reason in _JWT_ERRORS:
        if isinstance(exc, kind):
            return reason
    return "invalid_claim"


class Authenticator:
    """Verifies bearer tokens against the token keyring."""

    def __init__(
        self,
        keys: TokenKeys,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.time,
        source: Path | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._source = source
        self._cache: OrderedDict[str, Principal] = OrderedDict()

    @classmethod
    def from_directory(cls, path: Path, issuer: str, audience: str) -> Authenticator:
        """Load the keyring at ``path`` (see ``api.token_keys``); ``reload`` re-reads it.

        Raises:
            StoreError: No usable key, or a keyring file is unreadable or malformed.
        """
        return cls(load_token_keys(path), issuer, audience, source=path)

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of the keys that verify tokens now."""
        return frozenset(self._keys.keys)

    def reload(self) -> None:
        """Re-read the keyring and revocations, then forget every cached token.

        Raises:
            StoreError: The keyring is unusable; the previous one stays in force.
        """
        if self._source is None:
            return
        self._keys = load_token_keys(self._source)
        self._cache.clear()

    def authenticate(self, authorization: str | None, role: str) -> Principal:
        """Check an ``Authorization`` header and that its role is granted ``role``.

        Raises:
            AuthError: 401 when the header is missing or the token is refused; 403 when
                the token is valid but its role is not granted ``role``.
        """
        if not authorization:
            raise AuthError("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("scheme")
        principal = self._cache.get(token)
        if principal is None or principal.expires <= self._clock():
            principal = self._verify(token)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.popitem(last=False)
            self._cache[token] = principal
        else:
            self._cache.move_to_end(token)
        if role not in principal.grants:
            raise AuthError(
                "forbidden", f"role {principal.role!r} may not use this route; it needs {role!r}"
            )
        return principal

    def _verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthError("too_large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("algorithm")
        kid = header.get("kid")
        keys = self._keys
        if not isinstance(kid, str):
            raise AuthError("unknown_key")
        key = keys.keys.get(kid)
        now = self._clock()
        if key is None or key.valid_until <= now:
            raise AuthError("retired_key" if kid in keys.retired or key else "unknown_key")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(_category(exc)) from None
        role = claims.get("role")
        subject = claims.get("sub")
        if not isinstance(role, str) or role not in GRANTS:
            raise AuthError("unknown_role")
        if not isinstance(subject, str) or not isinstance(claims["exp"], int | float):
            raise AuthError("invalid_claim")
        if subject in keys.revoked_subjects or claims.get("jti") in keys.revoked_ids:
            raise AuthError("revoked")
        expires = min(float(claims["exp"]), key.valid_until)
        if expires <= self._clock():  # the same clock as the cache's expiry check
            raise AuthError("expired")
        return Principal(subject, role, expires)


def issue_token(
    signing_key: SigningKey,
    subject: str,
    role: str,
    ttl_seconds: int,
    issuer: str = "ml-service",
    audience: str = "ml-service",
    now: float | None = None,
    token_id: str | None = None,
) -> str:
    """Sign a token for ``subject`` with ``role``, valid for ``ttl_seconds``.

    Args:
        signing_key: The current token-signing key.
        subject: The ``sub`` claim (who the token is for).
        role: ``scorer``, ``viewer`` or ``admin``.
        ttl_seconds: Lifetime.
        issuer: The ``iss`` claim.
        audience: The ``aud`` claim.
        now: Issue time (epoch seconds); now by default.
        token_id: The ``jti`` claim (for revocation); random by default.

    Raises:
        ValueError: Unknown role or a non-positive lifetime.
    """
    if role not in GRANTS:
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
        "jti": token_id or secrets.token_hex(12),
    }
    return jwt.encode(
        claims, signing_key.private_key, algorithm=ALGORITHM, headers={"kid": signing_key.key_id}
    )
