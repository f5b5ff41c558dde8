"""Lead ids at rest: a keyed hash (HMAC-SHA256), never the id a client sent.

A ``lead_id`` is the client's own string and may be personal data (an e-mail, a phone
number, a CRM key that leads back to a person). The monitoring store only needs to
recognise the id when the outcome arrives, so it keeps ``HMAC-SHA256(key, lead_id)``
(base64url, 128 bits): the same id always maps to the same key, and without the secret
the stored values cannot be matched against guesses (an unkeyed hash of an e-mail
could be reversed by trying addresses).

The secret (``MONITORING_KEY``, default ``lead-id.key`` beside the store's file, 32
random bytes, mode 0600) is created by the gunicorn master at start if it does not
exist, so every worker reads the same one, and it lives and survives restarts with the
store. Losing it makes the stored leads unmatchable (their outcomes get 404), nothing
worse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from engine.store.layout import atomic_write

KEY_BYTES = 32


def ensure_key(path: Path) -> None:
    """Create the secret (0600, atomically) unless it exists (call in the master)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, secrets.token_bytes(KEY_BYTES), mode=0o600)


class LeadIdHasher:
    """Maps a lead id to the value the store keeps for it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a lead-id key has {KEY_BYTES} bytes at least")
        self._key = key

    @classmethod
    def load(cls, path: Path) -> LeadIdHasher:
        """Read the secret at ``path``.

        Raises:
            OSError: It cannot be read.
            ValueError: It is too short to be one.
        """
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_mode & 0o077:
                path.chmod(0o600)  # a secret: nobody else may read it
            return cls(handle.read())

    def __call__(self, lead_id: str) -> str:
        """The stored form of ``lead_id``."""
        digest = hmac.new(self._key, lead_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
