"""Cache keys: a keyed hash of what determines a model's output, never the lead itself.

``CacheKeyer.key`` is BLAKE2b in its keyed mode (a MAC, like HMAC, but one pass over the
data instead of two nested hashes) over the vertical, the model version, the number of
reasons asked (0 without ``explain``) and the encoded feature row's bytes: 128 bits.
Without the secret nobody can compute or test a key, so a key
(in Redis, say) reveals nothing about the lead it came from.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_BYTES = 16
SECRET_BYTES = 32


class CacheKeyer:
    """Keys of the prediction cache under one secret."""

    def __init__(self, secret: bytes | None = None) -> None:
        """Use ``secret`` (at least 32 bytes), or a fresh random one (a process-local cache)."""
        secret = secret if secret is not None else secrets.token_bytes(SECRET_BYTES)
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"a cache secret has {SECRET_BYTES} bytes at least")
        self._secret = secret[:64]  # BLAKE2b's key is at most 64 bytes

    def key(self, vertical: str, version: str, detail: int, row: bytes | memoryview) -> bytes:
        """The key of a model's output for an encoded row (``detail``: reasons asked, 0 none)."""
        digest = hashlib.blake2b(digest_size=KEY_BYTES, key=self._secret, person=b"ml-service-v1")
        # The NUL separators keep ("ab", "c") and ("a", "bc") apart; names never hold NUL.
        digest.update(f"{vertical}\x00{version}\x00{detail}\x00".encode())
        digest.update(row)
        return digest.digest()
